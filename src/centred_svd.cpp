#include "centred_svd.hpp"

namespace icgt::detail {

CentredSvd centred_svd(const torch::Tensor& means, const torch::Tensor& present, std::int64_t num_components) {
  const torch::Tensor absent = ~present.unsqueeze(-1);
  // A copy even of float64 means (they are the caller's), then centred in place.
  torch::Tensor centred = means.to(torch::kFloat64, /*non_blocking=*/false, /*copy=*/true).masked_fill_(absent, 0.0);
  const torch::Tensor mean = centred.sum(-2) / present.sum(-1, /*keepdim=*/true);
  centred.sub_(mean.unsqueeze(-2)).masked_fill_(absent, 0.0);
  // Through the nodes x nodes Gram matrix, in float64: nodes are few and hidden sizes large, so
  // this is a batch of tiny eigenproblems instead of tall SVDs (LAPACK's gesdd on each snapshot
  // costs far more), and float64 keeps the squared singular values exact to ~1e-16 relative.
  const std::int64_t rank = std::min(means.size(-2), means.size(-1));
  auto [eigenvalues, eigenvectors] = torch::linalg_eigh(torch::matmul(centred, centred.transpose(-1, -2)));
  const torch::Tensor singular = eigenvalues.flip(-1).narrow(-1, 0, rank).clamp_min(0).sqrt();
  torch::Tensor u = eigenvectors.flip(-1).narrow(-1, 0, num_components);
  torch::Tensor vh =
      torch::matmul(u.transpose(-1, -2), centred) / singular.narrow(-1, 0, num_components).unsqueeze(-1);
  const torch::Tensor sign = torch::where(vh.gather(-1, vh.abs().argmax(-1, /*keepdim=*/true)) < 0, -1.0, 1.0);
  const torch::ScalarType dtype = means.scalar_type();
  return {mean.to(dtype), (u * sign.squeeze(-1).unsqueeze(-2)).to(dtype), singular.to(dtype), (vh * sign).to(dtype)};
}

}  // namespace icgt::detail
