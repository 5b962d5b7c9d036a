#pragma once
// The results of a window sweep as the public types that callers receive.

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "icgt/representation_stats.hpp"
#include "sweep_arguments.hpp"
#include "window_sweep.hpp"

namespace icgt::detail {

/// A ClassMeans sweep's output as the public type: means [..., (batch,) snapshots, nodes, hidden],
/// counts [(batch,) snapshots, nodes], positions [snapshots], on the residuals' device.
RepresentationStats::ClassMeans class_means_result(const SweepInput& input, const WindowSweep& sweep,
                                                   const torch::Tensor& means, const std::vector<std::int64_t>& positions,
                                                   bool per_sequence);

}  // namespace icgt::detail
