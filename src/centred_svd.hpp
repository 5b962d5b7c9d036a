#pragma once
// The top singular vectors of class means centred over the present nodes: PCA
// (RepresentationStats) and spectral alignment (EnergyMetrics) both read principal components
// from it.

#include <torch/types.h>

#include <cstdint>

namespace icgt::detail {

/// For means [..., nodes, d] and the mask of present nodes [..., nodes]: centred = U diag(S) Vh,
/// the centre being the mean of the present rows and absent rows set to zero (a zero row adds no
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

CentredSvd centred_svd(const torch::Tensor& means, const torch::Tensor& present, std::int64_t num_components);

}  // namespace icgt::detail
