#include "sweep_arguments.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "icgt/errors.hpp"
#include "tensor_checks.hpp"

namespace icgt::detail {

SweepInput check_sweep_input(const torch::Tensor& residuals, const torch::Tensor& nodes, std::int64_t num_nodes,
                             const std::string& function) {
  check_floating(residuals, 3, function, "residuals", "[..., batch, length, hidden]");
  check_integer(nodes, 2, function, "nodes", "[batch, length]");
  const std::int64_t batch = residuals.size(-3), length = residuals.size(-2), hidden = residuals.size(-1);
  if (nodes.size(0) != batch || nodes.size(1) != length) {
    throw ValueError(fmt::format("{}: nodes has shape {} but residuals {} needs nodes [batch, length] = [{}, {}]",
                                 function, shape_of(nodes), shape_of(residuals), batch, length));
  }
  if (hidden == 0) {
    throw ValueError(fmt::format("{}: residuals has shape {}, hidden size 0; expected at least one dimension",
                                 function, shape_of(residuals)));
  }
  const torch::Tensor node_ids = nodes.to(residuals.device(), torch::kInt64);
  check_node_ids(node_ids, num_nodes, function, "nodes");
  const auto leading = residuals.sizes().slice(0, residuals.dim() - 3);
  return {residuals.reshape({c10::multiply_integers(leading), batch, length, hidden}), node_ids,
          std::vector<std::int64_t>(leading.begin(), leading.end())};
}

TrailingWindows trailing_windows(std::int64_t window, const std::vector<std::int64_t>& positions, std::int64_t length,
                                 const std::string& function, const std::string& owner) {
  if (window < 0 || window >= length) {
    throw ValueError(fmt::format("{}: {}window is {}, outside the sequence of {} positions; expected 0..{}", function,
                                 owner, window, length, length - 1));
  }
  if (positions.empty()) {
    throw ValueError(
        fmt::format("{}: {}positions is empty; expected at least one snapshot position", function, owner));
  }
  TrailingWindows windows;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    if (positions[i] < 0 || positions[i] >= length) {
      throw ValueError(fmt::format("{}: {}positions[{}] is {}, outside the sequence; expected 0..{}", function, owner,
                                   i, positions[i], length - 1));
    }
    if (i > 0 && positions[i] <= positions[i - 1]) {
      throw ValueError(fmt::format("{}: {}positions must be strictly increasing, but positions[{}] = {} follows {}",
                                   function, owner, i, positions[i], positions[i - 1]));
    }
    windows.starts.push_back(std::max<std::int64_t>(0, positions[i] - window));
    windows.ends.push_back(positions[i] + 1);
  }
  return windows;
}

void throw_non_finite(const SweepInput& input, const std::vector<WindowSweep>& sweeps, const std::string& function) {
  const std::int64_t length = input.rows.size(2);
  std::vector<std::int64_t> in_a_window(length, 0);
  for (const WindowSweep& sweep : sweeps) {
    for (std::size_t s = 0; s < sweep.windows.ends.size(); ++s) {
      std::fill(in_a_window.begin() + sweep.windows.starts[s], in_a_window.begin() + sweep.windows.ends[s], 1);
    }
  }
  const torch::Tensor counted = (input.node_ids >= 0) & int64_tensor(in_a_window, input.rows.device()).gt(0);
  const torch::Tensor bad = (~torch::isfinite(input.rows)).any(-1) & counted;
  const std::string where = first_true_index(bad.reshape([&] {
    std::vector<std::int64_t> shape(input.leading_shape);
    shape.insert(shape.end(), {input.rows.size(1), length});
    return shape;
  }()));
  if (where.empty()) {
    throw ValueError(fmt::format("{}: the sums of residuals overflow float32; scale the activations down", function));
  }
  throw ValueError(fmt::format("{}: residuals holds a NaN or infinite value at index {} (..., batch, position), "
                               "which enters a class mean; activations must be finite",
                               function, where));
}

}  // namespace icgt::detail
