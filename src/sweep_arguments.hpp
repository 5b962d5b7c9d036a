#pragma once
// The arguments of every sweep over a residual stream (RepresentationStats::class_means,
// EnergyMetrics::energy_over_context), checked, and the error for activations that are not
// finite: one message for one mistake wherever it is made.

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "window_sweep.hpp"

namespace icgt::detail {

/// A residual stream and its node labels, checked.
struct SweepInput {
  torch::Tensor rows;                       ///< the residuals as [leading, batch, length, hidden]
  torch::Tensor node_ids;                   ///< int64 [batch, length] on the residuals' device
  std::vector<std::int64_t> leading_shape;  ///< the residuals' "..." dimensions
};

/// TypeError or ValueError unless residuals is floating [..., batch, length, hidden] and nodes an
/// integer [batch, length] of node ids in 0..num_nodes-1 or kNotANode.
SweepInput check_sweep_input(const torch::Tensor& residuals, const torch::Tensor& nodes, std::int64_t num_nodes,
                             const std::string& function);

/// The windows [max(0, t - window), t] for t in positions, after a ValueError unless window is in
/// 0..length-1 and positions strictly increasing in 0..length-1. `owner` prefixes the argument
/// names in messages ("" or e.g. "class_means_at[1].").
TrailingWindows trailing_windows(std::int64_t window, const std::vector<std::int64_t>& positions, std::int64_t length,
                                 const std::string& function, const std::string& owner = "");

/// The ValueError for a pass that met a NaN or infinite sum: names the first node position, inside
/// any window of the sweeps, whose activations are not finite (or says the sums overflowed).
[[noreturn]] void throw_non_finite(const SweepInput& input, const std::vector<WindowSweep>& sweeps,
                                   const std::string& function);

}  // namespace icgt::detail
