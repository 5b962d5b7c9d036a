#pragma once
// The sum over a graph's edges of squared distances between node representations: the core of
// every Dirichlet energy.

#include <torch/types.h>

#include <utility>
#include <vector>

namespace icgt::detail {

/// sum over the edges (i, j) (each undirected edge once) of ||x_i - x_j||^2, for x [..., nodes, d]
/// in float32 or float64 -> [...] in x's dtype. On the CPU one fused parallel loop reads x once;
/// elsewhere edge_square_sums_by_tensor_ops.
torch::Tensor edge_square_sums(const torch::Tensor& x, const std::vector<std::pair<int, int>>& edges);

/// The same from LibTorch operations, for any device: one edge at a time into one buffer.
torch::Tensor edge_square_sums_by_tensor_ops(const torch::Tensor& x, const std::vector<std::pair<int, int>>& edges);

}  // namespace icgt::detail
