#pragma once
// Class means centred over the present nodes: their Gram matrix (pairwise distances for the
// energy null baseline and the distance correlation) and their top singular vectors (PCA in
// RepresentationStats, spectral alignment in EnergyMetrics).

#include <torch/types.h>

#include <cstdint>

namespace icgt::detail {

/// For means [..., nodes, d] and the mask of present nodes [..., nodes]: the centre, the mean of
/// the present rows, and the Gram matrix of the rows minus that centre with absent rows zero, both
/// in float64 (the centre NaN where no row is present). Centring first removes the large mean that
/// residual streams share, which would otherwise cancel away the digits of small differences.
struct CentredGram {
  torch::Tensor gram;  ///< float64 [..., nodes, nodes]
  torch::Tensor mean;  ///< float64 [..., d]
};

/// On the CPU one fused parallel loop reads the means once and holds one snapshot's centred rows
/// at a time; elsewhere centred_gram_by_tensor_ops.
CentredGram centred_gram(const torch::Tensor& means, const torch::Tensor& present);

/// The same from LibTorch operations, for any device (a centred float64 copy, then matmul).
CentredGram centred_gram_by_tensor_ops(const torch::Tensor& means, const torch::Tensor& present);

/// The centred means U diag(S) Vh, with the same centre and absent rows zero (a zero row adds no
/// variance, so the factors are those of the present rows alone). Only the top num_components
/// singular vectors are formed. Each row of Vh has its entry of largest magnitude positive (U's
/// columns follow), so results do not depend on the solver; a row of Vh for a zero singular value
/// is NaN (no direction carries that variance). Results are in means' dtype.
struct CentredSvd {
  torch::Tensor mean;      ///< [..., d]
  torch::Tensor u;         ///< [..., nodes, num_components]
  torch::Tensor singular;  ///< [..., min(nodes, d)], all of them, descending
  torch::Tensor vh;        ///< [..., num_components, d]
};

/// Through the nodes x nodes Gram matrix, in float64: nodes are few and hidden sizes large, so this
/// is a batch of tiny eigenproblems instead of tall SVDs (LAPACK's gesdd on each snapshot costs far
/// more), and float64 keeps the squared singular values exact to ~1e-16 relative. On the CPU one
/// fused parallel loop (Eigen's solver for each small eigenproblem); elsewhere
/// centred_svd_by_tensor_ops.
CentredSvd centred_svd(const torch::Tensor& means, const torch::Tensor& present, std::int64_t num_components);

/// The same from LibTorch operations, for any device.
CentredSvd centred_svd_by_tensor_ops(const torch::Tensor& means, const torch::Tensor& present,
                                     std::int64_t num_components);

}  // namespace icgt::detail
