#include "window_sweep.hpp"

#include <algorithm>

#include "nan.hpp"
#include "tensor_checks.hpp"

namespace icgt::detail {

torch::Tensor window_counts(const torch::Tensor& nodes, std::int64_t num_nodes, bool per_sequence,
                            const TrailingWindows& windows) {
  const std::int64_t batch = nodes.size(0), length = nodes.size(1);
  torch::Tensor occurs = torch::zeros({batch, length, num_nodes}, nodes.options());
  occurs.scatter_(2, nodes.clamp_min(0).unsqueeze(-1), (nodes >= 0).unsqueeze(-1).to(torch::kInt64));
  if (!per_sequence) occurs = occurs.sum(0, /*keepdim=*/true);
  const torch::Tensor before = torch::cat({torch::zeros({occurs.size(0), 1, num_nodes}, nodes.options()),
                                           occurs.cumsum(1)},
                                          1);
  return before.index_select(1, int64_tensor(windows.ends, nodes.device())) -
         before.index_select(1, int64_tensor(windows.starts, nodes.device()));
}

SweepResults sweep_windows(const torch::Tensor& source, const torch::Tensor& nodes, std::int64_t num_nodes,
                           bool per_sequence, const std::vector<WindowSweep>& sweeps) {
  if (source.device().is_cpu()) return sweep_windows_on_cpu(source, nodes, num_nodes, per_sequence, sweeps);
  return sweep_windows_by_tensor_ops(source, nodes, num_nodes, per_sequence, sweeps);
}

torch::Tensor empty_means(const torch::Tensor& source, std::int64_t num_groups, std::int64_t num_snapshots,
                          std::int64_t num_nodes) {
  return torch::empty({source.size(0), num_groups, num_snapshots, num_nodes, source.size(3)},
                      source.options().dtype(compute_dtype(source)));
}

std::int64_t energy_sums_width(const WindowSweep& sweep, std::int64_t num_nodes) {
  return kNumEnergySums + (sweep.spectral_basis.empty() ? 0 : static_cast<std::int64_t>(sweep.spectral_basis.size()) /
                                                                  std::max<std::int64_t>(1, num_nodes));
}

torch::Tensor nan_where_a_node_is_absent(torch::Tensor sums, const torch::Tensor& counts) {
  return sums.masked_fill_((counts == 0).any(-1).unsqueeze(-1), kNaN);
}

}  // namespace icgt::detail
