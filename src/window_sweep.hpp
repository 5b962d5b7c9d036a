#pragma once
// Class means over trailing windows for every snapshot of a sweep, or the sums behind their
// Dirichlet energies: the one pass over a residual stream behind RepresentationStats::class_means
// and EnergyMetrics::energy_over_context. This header is the pass's interface; the work is done by
// the fused CPU kernel (cpu_sweep.cpp, planned by segment_plan) or by LibTorch operations on any
// other device (tensor_op_sweep.cpp).

#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace icgt::detail {

/// Window s covers positions starts[s]..ends[s]-1; both lists are non-decreasing, so that every
/// position enters the sliding window once and leaves it at most once.
struct TrailingWindows {
  std::vector<std::int64_t> starts;
  std::vector<std::int64_t> ends;
};

/// One set of windows that a sweep serves, and what it makes of each window.
struct WindowSweep {
  /// Each window's class means, or the sums behind the Dirichlet energies of those means on a
  /// graph (without the means themselves).
  enum class Output { ClassMeans, EnergySums };

  TrailingWindows windows;
  /// From window_counts for these windows.
  torch::Tensor counts;
  Output output = Output::ClassMeans;
  /// For EnergySums: the graph's edges, each undirected edge once.
  std::vector<std::pair<int, int>> edges;
  /// For EnergySums, optional: an orthonormal basis of R^nodes, row-major [nodes, basis vectors]
  /// (the Laplacian's eigenvectors as columns), whose squared projections of the centred class
  /// means the sweep adds after the energy sums. Empty: none.
  std::vector<double> spectral_basis;
};

/// The three numbers every Dirichlet energy of class means m_0..m_(n-1) is made of, in this order
/// along the last dimension of an energy sweep's result.
enum EnergySum : std::int64_t {
  kEdgeSquares = 0,       ///< sum over the edges of ||m_i - m_j||^2
  kSquaredNorms = 1,      ///< sum over the nodes of ||m_k||^2
  kSquaredDeviations = 2  ///< sum over the nodes of ||m_k - (the mean of the m)||^2
};
constexpr std::int64_t kNumEnergySums = 3;

/// The length of the last dimension of an energy sweep's result: the kNumEnergySums energy sums,
/// then, with a spectral basis, sum_h (u_k^T (m - mean of the m))_h^2 for each basis vector u_k.
std::int64_t energy_sums_width(const WindowSweep& sweep, std::int64_t num_nodes);

/// What one pass gives.
struct SweepResults {
  /// One per sweep, in order: for a ClassMeans sweep, means[l, c, s, k, :] is the mean of
  /// source[l, b, p, :] over the positions p of window s and the sequences b of group c where
  /// nodes[b, p] == k, NaN where its count is 0: [leading, groups, snapshots, num_nodes, hidden]
  /// in float32 (float64 for float64 source). For an EnergySums sweep: float64 [leading, groups,
  /// snapshots, energy_sums_width] of the same means, NaN where any node's count is 0.
  std::vector<torch::Tensor> outputs;
  /// False when a NaN or infinite activation entered a window (the outputs are then unusable).
  bool finite = true;
};

/// How many positions of each node each window holds: int64 [groups, snapshots, num_nodes], one
/// group pooling the batch or one group per sequence. nodes: int64 [batch, length], kNotANode
/// skipped; the result is on nodes' device.
torch::Tensor window_counts(const torch::Tensor& nodes, std::int64_t num_nodes, bool per_sequence,
                            const TrailingWindows& windows);

/// Every sweep from one pass over source: floating [leading, batch, length, hidden]; nodes: int64
/// [batch, length] on source's device. Window sums are kept in float64. On the CPU
/// sweep_windows_on_cpu, elsewhere sweep_windows_by_tensor_ops.
SweepResults sweep_windows(const torch::Tensor& source, const torch::Tensor& nodes, std::int64_t num_nodes,
                           bool per_sequence, const std::vector<WindowSweep>& sweeps);

/// The same for a CPU source, in one fused parallel loop that reads each activation once
/// (cpu_sweep.cpp).
SweepResults sweep_windows_on_cpu(const torch::Tensor& source, const torch::Tensor& nodes, std::int64_t num_nodes,
                                  bool per_sequence, const std::vector<WindowSweep>& sweeps);

/// The same from LibTorch operations, for any device, one sweep at a time (tensor_op_sweep.cpp).
SweepResults sweep_windows_by_tensor_ops(const torch::Tensor& source, const torch::Tensor& nodes,
                                         std::int64_t num_nodes, bool per_sequence,
                                         const std::vector<WindowSweep>& sweeps);

/// An uninitialised ClassMeans output for source [leading, batch, length, hidden]: [leading,
/// num_groups, num_snapshots, num_nodes, hidden] in the statistics' dtype, on source's device.
torch::Tensor empty_means(const torch::Tensor& source, std::int64_t num_groups, std::int64_t num_snapshots,
                          std::int64_t num_nodes);

/// Energy sums [..., snapshots, energy_sums_width] set to NaN, in place, where a window lacks a node
/// (counts [..., snapshots, nodes] == 0).
torch::Tensor nan_where_a_node_is_absent(torch::Tensor sums, const torch::Tensor& counts);

}  // namespace icgt::detail
