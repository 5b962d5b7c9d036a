#pragma once
// RepresentationStats: class means of node representations over trailing context windows, and
// their principal components.

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "icgt/export.hpp"

namespace icgt {

/// Class means of a residual stream over trailing windows, for every snapshot position of a
/// sequence from one pass over its activations, and the PCA of those means.
///
/// Tensors are read and results computed on the device they live on (CPU or CUDA); results stay
/// there. Activations of any floating dtype are reduced in float32 (float64 stays float64): short
/// runs of positions are summed in that precision and the window sums built from them in float64,
/// so that a window late in a long sequence loses no precision to everything before it. Results
/// carry no autograd history.
///
/// Example:
///   icgt::RepresentationStats stats(16);  // a 4x4 grid
///   // residuals: [layers, batch, length, hidden]; walks: [batch, length] node ids (kNotANode = -1)
///   auto curve = stats.class_means(residuals, walks, /*window=*/20,
///                                  icgt::RepresentationStats::strided_positions(1400, 10));
///   // curve.means: [layers, 140, 16, hidden]; curve.counts: [140, 16]
///   auto pcs = stats.principal_components(curve.means, 2);  // PCA of every (layer, snapshot)
///   auto steady = icgt::RepresentationStats::align_snapshots(pcs, icgt::RepresentationStats::Alignment::Procrustes);
class ICGT_API RepresentationStats {
 public:
  /// Class means at a list of snapshot positions.
  struct ClassMeans {
    /// [..., snapshots, nodes, hidden] pooled over the batch, or [..., batch, snapshots, nodes,
    /// hidden] per sequence; float32 (float64 for float64 input). NaN where the count is 0.
    torch::Tensor means;
    /// int64 [snapshots, nodes] pooled, or [batch, snapshots, nodes] per sequence: how many
    /// activations each mean averages. The same for every leading (layer) index.
    torch::Tensor counts;
    /// int64 [snapshots]: the snapshot positions t.
    torch::Tensor positions;
  };

  /// Principal components of the class means of one or many snapshots (leading dimensions "...").
  struct PrincipalComponents {
    /// [..., k, hidden]: orthonormal rows, the directions of largest variance first. The sign of
    /// each is fixed so that its entry of largest magnitude is positive.
    torch::Tensor components;
    /// [..., k]: the fraction of the total variance of the present nodes' means along each row of
    /// components.
    torch::Tensor explained_variance_ratio;
    /// [..., nodes, k]: the centred means in the coordinates of components; NaN rows for absent
    /// nodes.
    torch::Tensor projections;
    /// [..., hidden]: the centre, the mean of the present nodes' means.
    torch::Tensor mean;
  };

  /// How align_snapshots turns one snapshot's components to match the one before.
  enum class Alignment {
    SignFlip,    ///< flip each component whose projections point away from the previous one's
    Procrustes,  ///< the orthogonal k x k map (rotation or reflection) nearest the previous one
  };

  /// num_nodes: the number of nodes of the graph; node ids run over 0..num_nodes-1.
  explicit RepresentationStats(std::int64_t num_nodes);

  /// The number of nodes: class means have one row per node id 0..num_nodes-1.
  std::int64_t num_nodes() const { return num_nodes_; }

  /// Positions first, first + stride, ... up to length - 1: every position (stride 1) or every
  /// k-th (stride k).
  static std::vector<std::int64_t> strided_positions(std::int64_t length, std::int64_t stride,
                                                     std::int64_t first = 0);

  /// Class means pooled over the batch. The mean of node k at snapshot position t averages the
  /// activations at every position s in [max(0, t - window), t] of every sequence where node k
  /// stands. Cost O(batch * length * hidden + snapshots * nodes * hidden) per leading index,
  /// whatever the window.
  ///
  /// residuals: floating [..., batch, length, hidden], "..." any leading dimensions (layers).
  /// nodes: integer [batch, length], values in 0..num_nodes-1 or kNotANode (BOS, separators),
  ///        on any device (moved to the residuals' device).
  /// window: 0..length-1. positions: strictly increasing, each in 0..length-1.
  /// NaN or infinite activations at positions that enter a mean are a ValueError.
  ClassMeans class_means(const torch::Tensor& residuals, const torch::Tensor& nodes, std::int64_t window,
                         const std::vector<std::int64_t>& positions) const;

  /// As class_means, without pooling over the batch: means [..., batch, snapshots, nodes, hidden],
  /// counts [batch, snapshots, nodes]. Holds batch times more running sums.
  ClassMeans class_means_per_sequence(const torch::Tensor& residuals, const torch::Tensor& nodes,
                                      std::int64_t window, const std::vector<std::int64_t>& positions) const;

  /// PCA of class means [..., nodes, hidden] (each leading index on its own): centred on the mean
  /// of the present nodes (rows that are all NaN are absent; other non-finite values are a
  /// ValueError). num_components: 1..min(nodes - 1, hidden). A snapshot with fewer than
  /// num_components + 1 present nodes cannot span num_components directions: its results are NaN,
  /// so that a sweep over early, sparse windows never stops.
  PrincipalComponents principal_components(const torch::Tensor& class_means, std::int64_t num_components) const;

  /// Turns the components of consecutive snapshots so that an animation does not flip: the
  /// snapshot dimension is the one before nodes in projections ([..., snapshots, nodes, k]); each
  /// snapshot is mapped by an orthogonal k x k matrix R to best match the last aligned snapshot
  /// that had results, over the nodes present in both (the first is kept). Projections become
  /// P R, components R^T C, and explained_variance_ratio the variance along the new axes.
  static PrincipalComponents align_snapshots(const PrincipalComponents& components, Alignment alignment);

 private:
  ClassMeans sweep(const torch::Tensor& residuals, const torch::Tensor& nodes, std::int64_t window,
                   const std::vector<std::int64_t>& positions, bool per_sequence, const char* method) const;

  std::int64_t num_nodes_;
};

}  // namespace icgt
