// The window sweep (window_sweep.hpp) from LibTorch operations alone, for any device: one sweep at
// a time, class means from per-segment sums, energy sums from those means.

#include <algorithm>

#include "nan.hpp"
#include "tensor_checks.hpp"
#include "window_sweep.hpp"

namespace icgt::detail {
namespace {

struct WindowMeans {
  torch::Tensor means;
  bool finite = true;  // false when a NaN or infinity entered a running sum
};

// The class means of one sweep: per-segment sums (index_add_) between the distinct window
// boundaries, a running sum over segments, and differences of running sums.
WindowMeans window_means(const torch::Tensor& source, const torch::Tensor& nodes, std::int64_t num_nodes,
                         bool per_sequence, const TrailingWindows& windows, const torch::Tensor& counts) {
  const torch::Device device = source.device();
  const std::int64_t num_leading = source.size(0), batch = source.size(1), length = source.size(2),
                     hidden = source.size(3);
  const std::int64_t num_groups = per_sequence ? batch : 1;
  const auto num_snapshots = static_cast<std::int64_t>(windows.ends.size());
  if (source.numel() == 0) return {empty_means(source, num_groups, num_snapshots, num_nodes).fill_(kNaN)};

  // Every window is a run of whole segments between consecutive distinct boundaries. Entry j of
  // the running sum holds segments 0..j-1, so window s is entry end minus entry start.
  std::vector<std::int64_t> boundaries(windows.starts);
  boundaries.insert(boundaries.end(), windows.ends.begin(), windows.ends.end());
  std::sort(boundaries.begin(), boundaries.end());
  boundaries.erase(std::unique(boundaries.begin(), boundaries.end()), boundaries.end());
  const auto num_entries = static_cast<std::int64_t>(boundaries.size());
  std::vector<std::int64_t> entry_after(length, -1);  // segment s of position p, plus 1
  for (std::int64_t s = 0; s + 1 < num_entries; ++s) {
    std::fill(entry_after.begin() + boundaries[s], entry_after.begin() + boundaries[s + 1], s + 1);
  }
  const auto entry_at = [&](const std::vector<std::int64_t>& positions) {
    std::vector<std::int64_t> entries;
    for (std::int64_t p : positions) {
      entries.push_back(std::lower_bound(boundaries.begin(), boundaries.end(), p) - boundaries.begin());
    }
    return int64_tensor(entries, device);
  };
  const torch::Tensor start_entry = entry_at(windows.starts), end_entry = entry_at(windows.ends);

  const torch::Tensor entry = int64_tensor(entry_after, device).unsqueeze(0);
  const torch::Tensor group = per_sequence ? torch::arange(batch, nodes.options()).unsqueeze(1)
                                           : torch::zeros({1, 1}, nodes.options());
  const torch::Tensor bucket = ((group * num_entries + entry) * num_nodes + nodes).flatten();
  const torch::Tensor used_rows = ((nodes >= 0) & (entry >= 0)).flatten().nonzero().squeeze(-1);
  const torch::Tensor used_buckets = bucket.index_select(0, used_rows);
  const std::int64_t num_buckets = num_groups * num_entries * num_nodes;

  // Leading indices go through in chunks of at most ~32 MiB of running sums, to bound memory.
  const torch::Tensor rows = source.reshape({num_leading, batch * length, hidden});
  WindowMeans result{empty_means(source, num_groups, num_snapshots, num_nodes)};
  const std::int64_t chunk = std::clamp<std::int64_t>(
      (std::int64_t{32} << 20) / std::max<std::int64_t>(1, num_buckets * hidden * 8), 1, num_leading);
  const torch::Tensor absent = (counts == 0).unsqueeze(-1);
  for (std::int64_t first = 0; first < num_leading; first += chunk) {
    const std::int64_t size = std::min(chunk, num_leading - first);
    torch::Tensor running = torch::zeros({size, num_buckets, hidden}, source.options().dtype(torch::kFloat64));
    running.index_add_(1, used_buckets, rows.narrow(0, first, size).index_select(1, used_rows).to(torch::kFloat64));
    // Running sums in float64: a late window, the difference of two sums over everything before
    // it, keeps about 1e-14 of its relative precision.
    running = running.view({size, num_groups, num_entries, num_nodes, hidden}).cumsum(2);
    // A NaN or infinity anywhere makes the last running sum non-finite.
    result.finite = result.finite && torch::isfinite(running.select(2, num_entries - 1)).all().item<bool>();
    const torch::Tensor sums = running.index_select(2, end_entry) - running.index_select(2, start_entry);
    result.means.narrow(0, first, size).copy_((sums / counts.unsqueeze(-1)).masked_fill_(absent, kNaN));
  }
  return result;
}

// The energy sums of class means [..., nodes, hidden] (all present) on the sweep's graph, and the
// squared projections on its spectral basis when it has one: float64 [..., energy_sums_width].
torch::Tensor energy_sums(const torch::Tensor& means, const WindowSweep& sweep) {
  const torch::Tensor x = means.to(torch::kFloat64);
  torch::Tensor edge_squares = torch::zeros(x.sizes().slice(0, x.dim() - 2), x.options());
  for (auto [i, j] : sweep.edges) edge_squares.add_((x.select(-2, i) - x.select(-2, j)).square().sum(-1));
  const torch::Tensor squared_norms = x.square().sum({-2, -1});
  const torch::Tensor deviations = x - x.mean(-2, /*keepdim=*/true);
  const torch::Tensor sums = torch::stack({edge_squares, squared_norms, deviations.square().sum({-2, -1})}, -1);
  if (sweep.spectral_basis.empty()) return sums;
  const std::int64_t num_nodes = x.size(-2);
  const torch::Tensor basis =
      torch::tensor(sweep.spectral_basis, x.options()).view({num_nodes, -1});
  return torch::cat({sums, torch::matmul(basis.t(), deviations).square().sum(-1)}, -1);
}

}  // namespace

SweepResults sweep_windows_by_tensor_ops(const torch::Tensor& source, const torch::Tensor& nodes,
                                         std::int64_t num_nodes, bool per_sequence,
                                         const std::vector<WindowSweep>& sweeps) {
  SweepResults results;
  for (const WindowSweep& sweep : sweeps) {
    const WindowMeans means = window_means(source, nodes, num_nodes, per_sequence, sweep.windows, sweep.counts);
    results.finite = results.finite && means.finite;
    results.outputs.push_back(sweep.output == WindowSweep::Output::ClassMeans
                                  ? means.means
                                  : nan_where_a_node_is_absent(energy_sums(means.means, sweep), sweep.counts));
  }
  return results;
}

}  // namespace icgt::detail
