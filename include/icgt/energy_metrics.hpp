#pragma once
// EnergyMetrics: how well node representations fit a graph (Dirichlet energy, spectral alignment)
// and how well a model follows its edges (rule-following accuracy).

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "icgt/export.hpp"
#include "icgt/graph.hpp"
#include "icgt/representation_stats.hpp"

namespace icgt {

/// Metrics of node representations and next-token predictions against one Graph.
///
/// Representations are [..., nodes, d] with any leading dimensions ([layers, snapshots, nodes,
/// hidden] from RepresentationStats::class_means gives energy over context length for every layer
/// in one call); a row that is all NaN is an absent node and makes the results of its leading
/// index NaN. Work happens on the tensors' device; the graph's matrices (from Eigen) are moved
/// there once per call. Results are float32 (float64 for float64 input) and carry no autograd
/// history.
///
/// Example:
///   icgt::EnergyMetrics metrics(icgt::Graph::square_grid(4, 4));
///   torch::Tensor curve = metrics.dirichlet_energy(class_means.means);  // [layers, snapshots]
///   auto null = metrics.energy_null_baseline(class_means.means.select(1, -1),
///                                            icgt::EnergyMetrics::Energy::ScaleInvariant);
class ICGT_API EnergyMetrics {
 public:
  /// Which Dirichlet energy. All sum over ordered node pairs (i, j) with A_ij the adjacency.
  enum class Energy {
    /// E = sum_ij A_ij ||x_i - x_j||^2: each undirected edge counted twice (the paper's formula).
    Raw,
    /// The paper's plotted variant: X / ||X||_F (no centring), then 0.5 * sum_ij A_ij * mean over
    /// dimensions of (x_i - x_j)^2 = Raw / (2 d ||X||_F^2). Collapsing all nodes lowers it.
    Normalized,
    /// Mean squared edge length over mean squared distance between distinct nodes:
    /// (Raw / sum_ij A_ij) / (sum_{i != j} ||x_i - x_j||^2 / (n (n - 1))). Invariant to scaling,
    /// translation and rotation, so shrinking or collapsing cannot lower it. All nodes at one point
    /// give 0 / 0 = NaN, the value an absent node also gives: a collapse has every count above 0
    /// and a Raw energy of 0, an absence a count of 0. Its mean under random relabelling of the nodes is exactly 1, and it is at
    /// least lambda_2 (n - 1) / (2 |E|), lambda_2 the second-smallest eigenvalue of D - A, reached
    /// when every dimension of X lies in the eigenspace of lambda_2 (z2 for the 4x4 grid: z2, z3).
    ScaleInvariant,
  };

  /// The energy beside its distribution under random relabellings of the nodes.
  struct NullBaseline {
    torch::Tensor observed;  ///< [...]: dirichlet_energy of the representations
    torch::Tensor mean;      ///< [...]: mean energy over the relabellings
    torch::Tensor sd;        ///< [...]: their standard deviation (n - 1 denominator)
    torch::Tensor z_score;   ///< [...]: (observed - mean) / sd; large and negative = graph-like
    /// [...]: the empirical one-sided p-value (1 + #relabellings with energy <= observed) / (1 +
    /// num_relabellings): small = lower than relabelled nodes almost always are; at least
    /// 1 / (1 + num_relabellings).
    torch::Tensor p_value;
  };

  /// Probability mass on the valid next nodes (the neighbours of the node at each position).
  struct RuleFollowing {
    torch::Tensor full_vocabulary;       ///< [batch, length] under the full-vocabulary softmax; NaN unscored
    torch::Tensor renormalized;          ///< [batch, length] over the node tokens' total; NaN unscored or 0 / 0
    torch::Tensor mean_full_vocabulary;  ///< [length]: mean over the scored sequences; NaN where none
    torch::Tensor mean_renormalized;     ///< [length]: likewise
    torch::Tensor scored;                ///< bool [batch, length]: the positions that count
  };

  /// How far the top principal components of class means lie in the span of z2..z(k+1).
  struct SpectralAlignment {
    /// [..., k], descending: cosines of the principal angles between the span of the top-k PC
    /// scores and the span of z2..z(k+1), two k-dimensional subspaces of R^nodes. 1 = same plane.
    torch::Tensor principal_angle_cosines;
    /// [..., k]: R^2 of the least-squares fit of each PC's scores from z2..z(k+1) (with an
    /// intercept, which is zero since both are centred).
    torch::Tensor r_squared;
  };

  /// Where the variance of class means lies on the graph's spectrum: the centred class means X_c
  /// [nodes, d] (each node's mean less the mean over nodes) decomposed on the eigenvectors u_1..u_n
  /// of the combinatorial Laplacian D - A (the Laplacian of Graph::spectral_embedding and
  /// spectral_alignment), as the share ||u_k^T X_c||^2 / ||X_c||_F^2 of each. Low eigenvalues are
  /// smooth on the graph (neighbours alike), high ones rough; the shares sum to 1, and the constant
  /// eigenvector of a connected graph holds none, since the means are centred.
  ///
  /// Eigenvalues that repeat (the 4x4 grid has several) span an eigenspace in which the solver's
  /// choice of basis is arbitrary, so the share per distinct eigenvalue (`shares`, summed over its
  /// eigenspace) is the number to report; the share per eigenvector is kept beside it. Eigenvalues
  /// within kEigenvalueTolerance * max(1, largest eigenvalue) of the one before are one eigenvalue:
  /// the solver is accurate to about machine epsilon times the largest, and distinct eigenvalues of
  /// graphs this small are orders of magnitude further apart.
  struct SpectralProfile {
    /// float64 [K]: the distinct eigenvalues of D - A, ascending (the first is 0).
    torch::Tensor eigenvalues;
    /// int64 [K]: how many eigenvectors share each eigenvalue (its eigenspace's dimension).
    torch::Tensor multiplicities;
    /// [..., K]: the share of the centred means' variance in each eigenspace; sums to 1. NaN where a
    /// node is absent, or where all means coincide (no variance to share).
    torch::Tensor shares;
    /// float64 [nodes, nodes]: the eigenvectors u_k as columns, ascending eigenvalues, the first
    /// multiplicities[0] of them spanning the eigenspace of eigenvalues[0], and so on.
    torch::Tensor eigenvectors;
    /// [..., nodes]: the share on each eigenvector; within a repeated eigenvalue it depends on the
    /// basis the solver chose.
    torch::Tensor eigenvector_shares;
  };

  /// Laplacian eigenvalues closer than this, relative to max(1, the largest), count as one.
  static constexpr double kEigenvalueTolerance = 1e-9;

  /// A window and the snapshot positions it is taken at, as RepresentationStats::class_means takes them.
  struct Snapshots {
    std::int64_t window = 0;
    std::vector<std::int64_t> positions;
  };

  /// The energy of class means over context length, and the class means asked for beside it.
  struct EnergyOverContext {
    torch::Tensor energy;     ///< [..., snapshots]; NaN where a node is absent from the window
    torch::Tensor counts;     ///< int64 [snapshots, nodes]: activations behind each class mean
    torch::Tensor positions;  ///< int64 [snapshots]: the snapshot positions t
    /// One RepresentationStats::ClassMeans per entry of class_means_at, in that order.
    std::vector<RepresentationStats::ClassMeans> class_means;
    /// When asked for: the spectral profile of the same class means, shares [..., snapshots, K]
    /// and eigenvector_shares [..., snapshots, nodes], NaN where the energy is.
    std::optional<SpectralProfile> spectral_profile;
  };

  /// Keeps the graph and its adjacency and shortest-path matrices (on the CPU, moved to the
  /// tensors' device per call).
  explicit EnergyMetrics(Graph graph);

  /// The graph the metrics measure against.
  const Graph& graph() const { return graph_; }

  /// Dirichlet energy of representations [..., nodes, d] -> [...], computed from the differences
  /// x_i - x_j along the edges (no cancellation against a large common mean). Cost O(edges * d)
  /// per leading index.
  torch::Tensor dirichlet_energy(const torch::Tensor& representations, Energy energy = Energy::Normalized) const;

  /// Dirichlet energy over context length straight from a residual stream: the energy of the class
  /// means of RepresentationStats::class_means(residuals, nodes, window, positions) at every
  /// snapshot and for every leading (layer) index, computed from the window sums as they go by,
  /// without writing the means out (dirichlet_energy of class_means gives the same numbers, to
  /// float32 rounding, at the cost of [..., snapshots, nodes, hidden] in memory and a second read
  /// of it). The same pass also returns the class means of any other windows in class_means_at
  /// (say, a wider window at a few snapshots for PCA), so that the activations are read once in
  /// all. Arguments as for class_means (each entry of class_means_at checked like window and
  /// positions); energy computed in float64 from float64 window sums. Cost O(batch * length *
  /// hidden + snapshots * (nodes + edges) * hidden) per leading index.
  ///
  /// With with_spectral_profile, the same pass also decomposes each snapshot's class means on the
  /// Laplacian eigenvectors (see SpectralProfile; spectral_profile of the class means gives the
  /// same numbers), at a further O(nodes^3) once and O(snapshots * nodes^2 * hidden) per leading
  /// index.
  ///
  /// Example:
  ///   auto sweep = metrics.energy_over_context(residuals, walks, 20,
  ///                                            icgt::RepresentationStats::strided_positions(1400, 10),
  ///                                            Energy::Normalized, {{200, {200, 600, 1000, 1399}}}, true);
  ///   // sweep.energy: [layers, 140]; sweep.class_means[0].means: [layers, 4, nodes, hidden];
  ///   // sweep.spectral_profile->shares: [layers, 140, distinct eigenvalues]
  EnergyOverContext energy_over_context(const torch::Tensor& residuals, const torch::Tensor& nodes,
                                        std::int64_t window, const std::vector<std::int64_t>& positions,
                                        Energy energy = Energy::Normalized,
                                        const std::vector<Snapshots>& class_means_at = {},
                                        bool with_spectral_profile = false) const;

  /// The energy of the representations against the same energy after num_relabellings random
  /// permutations of the node labels (the graph's edges moved to random node pairs), drawn with
  /// icgt's seeded generator (one draw per call, shared by all leading indices), so that a seed
  /// gives the same baseline everywhere. num_relabellings >= 2. Cost O(nodes^2 d) per leading
  /// index for the pairwise distances, then O(nodes^2) per relabelling.
  NullBaseline energy_null_baseline(const torch::Tensor& representations, Energy energy,
                                    std::int64_t num_relabellings = 1000, std::uint64_t seed = 0) const;

  /// Rule-following accuracy. node_probabilities: [batch, length, nodes], the next-token
  /// probabilities of the node tokens (node k's token at index k) under the full-vocabulary
  /// softmax at each position; nodes: integer [batch, length], the node at each position or
  /// kNotANode. Position t scores the mass on the neighbours of nodes[b, t]. Positions whose node
  /// is kNotANode do not count, nor, when scored (bool [batch, length]) is given, positions where
  /// it is false (neighbour-pair mode: see WalkSampler::NeighbourPairs). Probabilities must be
  /// finite and non-negative with at most 1 (+1e-3) in total at each position.
  RuleFollowing rule_following_accuracy(const torch::Tensor& node_probabilities, const torch::Tensor& nodes,
                                        const std::optional<torch::Tensor>& scored = std::nullopt) const;

  /// The energy-minimisation hypothesis: num_components principal components of class means
  /// [..., nodes, hidden], from the (first_component + 1)-th on (0: the top ones), against the
  /// Laplacian (D - A) eigenvectors z2..z(k+1) of Graph::spectral_embedding. NaN where a node is
  /// absent. num_components must not split a repeated eigenvalue (z(k+1) and z(k+2) with one
  /// eigenvalue would make the target subspace an arbitrary choice): that is a ValueError.
  SpectralAlignment spectral_alignment(const torch::Tensor& class_means, std::int64_t num_components,
                                       std::int64_t first_component = 0) const;

  /// The spectral profile (SpectralProfile) of class means [..., nodes, d]: shares [..., K] and
  /// eigenvector_shares [..., nodes], float32 (float64 for float64 input), computed in float64. NaN
  /// where a node is absent (an all-NaN row) or all means coincide. Cost O(nodes^3) for the
  /// eigendecomposition (Eigen's self-adjoint solver), then O(nodes^2 d) per leading index.
  ///
  /// Example:
  ///   auto profile = metrics.spectral_profile(class_means.means);  // [layers, snapshots, K]
  ///   // profile.shares[..., 1]: the share at the smallest non-zero eigenvalue (z2, z3 for the grid)
  SpectralProfile spectral_profile(const torch::Tensor& class_means) const;

  /// Pearson correlation between the Euclidean distances ||x_i - x_j|| and the shortest-path
  /// lengths over all node pairs i < j joined by a path: representations [..., nodes, d] -> [...].
  torch::Tensor graph_distance_correlation(const torch::Tensor& representations) const;

 private:
  Graph graph_;
  torch::Tensor adjacency_;           // float64 [n, n]
  torch::Tensor path_lengths_;        // float64 [n, n]; -1 where no path
  std::int64_t num_connected_components_ = 0;
};

}  // namespace icgt
