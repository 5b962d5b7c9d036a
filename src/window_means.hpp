#pragma once
// Class means over trailing windows for every snapshot of a sweep: the one pass over a residual
// stream behind RepresentationStats::class_means.

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace icgt::detail {

/// Window s covers positions starts[s]..ends[s]-1; both lists are non-decreasing, so that every
/// position enters the sliding window once and leaves it at most once.
struct TrailingWindows {
  std::vector<std::int64_t> starts;
  std::vector<std::int64_t> ends;
};

/// How many positions of each node each window holds: int64 [groups, snapshots, num_nodes], one
/// group pooling the batch or one group per sequence. nodes: int64 [batch, length], kNotANode
/// skipped; the result is on nodes' device.
torch::Tensor window_counts(const torch::Tensor& nodes, std::int64_t num_nodes, bool per_sequence,
                            const TrailingWindows& windows);

/// means[l, c, s, k, :]: the mean of source[l, b, p, :] over the positions p of window s and the
/// sequences b of group c where nodes[b, p] == k; NaN where counts[c, s, k] is 0.
/// source: floating [leading, batch, length, hidden]; nodes: int64 [batch, length] and counts (from
/// window_counts) on source's device. Returns [leading, groups, snapshots, num_nodes, hidden] in
/// float32 (float64 for float64 source), window sums kept in float64. Sets `finite` to false when
/// a NaN or infinite activation entered a window. On the CPU a fused loop does it in one parallel
/// pass; elsewhere window_means_by_tensor_ops.
torch::Tensor window_means(const torch::Tensor& source, const torch::Tensor& nodes, std::int64_t num_nodes,
                           bool per_sequence, const TrailingWindows& windows, const torch::Tensor& counts,
                           bool& finite);

/// The same from LibTorch operations alone, for any device: per-segment sums (index_add_) between
/// the distinct window boundaries, a running sum over segments, and differences of running sums.
torch::Tensor window_means_by_tensor_ops(const torch::Tensor& source, const torch::Tensor& nodes,
                                         std::int64_t num_nodes, bool per_sequence, const TrailingWindows& windows,
                                         const torch::Tensor& counts, bool& finite);

}  // namespace icgt::detail
