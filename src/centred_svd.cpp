#include "centred_svd.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "nan.hpp"
#include "vector_loops.hpp"

namespace icgt::detail {
namespace {

// --- the fused CPU loops: one task per snapshot, its centred rows in a scratch buffer ----------

// centre: the mean of the present rows of x [n, d] (NaN if none); centred: x minus it, absent
// rows zero.
template <typename scalar_t>
void centre_rows(const scalar_t* x, const bool* present, std::int64_t n, std::int64_t d, double* centre,
                 double* centred) {
  std::fill(centre, centre + d, 0.0);
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!present[i]) continue;
    ++count;
    for (std::int64_t h = 0; h < d; ++h) centre[h] += static_cast<double>(x[i * d + h]);
  }
  const double scale = count > 0 ? 1.0 / static_cast<double>(count) : kNaN;
  for (std::int64_t h = 0; h < d; ++h) centre[h] *= scale;
  for (std::int64_t i = 0; i < n; ++i) {
    double* row = centred + i * d;
    if (present[i]) {
      for (std::int64_t h = 0; h < d; ++h) row[h] = static_cast<double>(x[i * d + h]) - centre[h];
    } else {
      std::fill(row, row + d, 0.0);
    }
  }
}

void gram_of_rows(const double* rows, std::int64_t n, std::int64_t d, double* gram) {
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j <= i; ++j) gram[i * n + j] = gram[j * n + i] = dot(rows + i * d, rows + j * d, d);
  }
}

std::vector<std::int64_t> snapshot_shape_with(const torch::Tensor& means, std::initializer_list<std::int64_t> trailing) {
  std::vector<std::int64_t> sizes(means.sizes().begin(), means.sizes().end() - 2);
  sizes.insert(sizes.end(), trailing);
  return sizes;
}

std::int64_t num_snapshots(const torch::Tensor& means) {
  return c10::multiply_integers(means.sizes().slice(0, means.dim() - 2));
}

// The unsigned factors of the centred means: the centre, the singular values (all, descending),
// the top num_components columns of U and rows of Vh, in float64.
struct Factors {
  torch::Tensor mean, singular, u, vh;
};

template <typename scalar_t>
void fused_factors(const scalar_t* in, const bool* present, std::int64_t snapshots, std::int64_t n, std::int64_t d,
                   std::int64_t num_components, Factors& out) {
  const std::int64_t rank = std::min(n, d);
  double *mean = out.mean.data_ptr<double>(), *singular = out.singular.data_ptr<double>(),
         *u = out.u.data_ptr<double>(), *vh = out.vh.data_ptr<double>();
  at::parallel_for(0, snapshots, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> centred(n * d);
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> gram(n, n);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(n);
    for (std::int64_t g = begin; g < end; ++g) {
      centre_rows(in + g * n * d, present + g * n, n, d, mean + g * d, centred.data());
      gram_of_rows(centred.data(), n, d, gram.data());
      solver.compute(gram);  // eigenvalues ascending: the largest last
      for (std::int64_t r = 0; r < rank; ++r) {
        singular[g * rank + r] = std::sqrt(std::max(0.0, solver.eigenvalues()(n - 1 - r)));
      }
      for (std::int64_t c = 0; c < num_components; ++c) {
        const auto vector = solver.eigenvectors().col(n - 1 - c);
        double* row = vh + (g * num_components + c) * d;
        std::fill(row, row + d, 0.0);
        for (std::int64_t i = 0; i < n; ++i) {
          u[(g * n + i) * num_components + c] = vector(i);
          const double weight = vector(i) / singular[g * rank + c];
          for (std::int64_t h = 0; h < d; ++h) row[h] += weight * centred[i * d + h];
        }
      }
    }
  });
}

// --- the same from LibTorch operations, for any device -----------------------------------------

// A centred float64 copy of the means (absent rows zero) and the centre.
std::pair<torch::Tensor, torch::Tensor> centred_copy(const torch::Tensor& means, const torch::Tensor& present) {
  const torch::Tensor absent = ~present.unsqueeze(-1);
  torch::Tensor centred = means.to(torch::kFloat64, /*non_blocking=*/false, /*copy=*/true).masked_fill_(absent, 0.0);
  const torch::Tensor mean = centred.sum(-2) / present.sum(-1, /*keepdim=*/true);
  centred.sub_(mean.unsqueeze(-2)).masked_fill_(absent, 0.0);
  return {centred, mean};
}

}  // namespace

CentredGram centred_gram(const torch::Tensor& means, const torch::Tensor& present) {
  if (!means.device().is_cpu()) return centred_gram_by_tensor_ops(means, present);
  const std::int64_t n = means.size(-2), d = means.size(-1);
  const auto options = means.options().dtype(torch::kFloat64);
  CentredGram result{torch::empty(snapshot_shape_with(means, {n, n}), options),
                     torch::empty(snapshot_shape_with(means, {d}), options)};
  const torch::Tensor rows = means.contiguous(), mask = present.to(torch::kBool).contiguous();
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "centred_gram", [&] {
    const scalar_t* in = rows.data_ptr<scalar_t>();
    const bool* here = mask.data_ptr<bool>();
    double *gram = result.gram.data_ptr<double>(), *mean = result.mean.data_ptr<double>();
    at::parallel_for(0, num_snapshots(means), 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<double> centred(n * d);
      for (std::int64_t g = begin; g < end; ++g) {
        centre_rows(in + g * n * d, here + g * n, n, d, mean + g * d, centred.data());
        gram_of_rows(centred.data(), n, d, gram + g * n * n);
      }
    });
  });
  return result;
}

CentredGram centred_gram_by_tensor_ops(const torch::Tensor& means, const torch::Tensor& present) {
  const auto [centred, mean] = centred_copy(means, present);
  return {torch::matmul(centred, centred.transpose(-1, -2)), mean};
}

namespace {

// Each row of Vh with its entry of largest magnitude positive, U's columns to match, in means'
// dtype.
CentredSvd with_fixed_signs(const Factors& factors, torch::ScalarType dtype) {
  const torch::Tensor& vh = factors.vh;
  const torch::Tensor sign = torch::where(vh.gather(-1, vh.abs().argmax(-1, /*keepdim=*/true)) < 0, -1.0, 1.0);
  return {factors.mean.to(dtype), (factors.u * sign.squeeze(-1).unsqueeze(-2)).to(dtype), factors.singular.to(dtype),
          (vh * sign).to(dtype)};
}

}  // namespace

CentredSvd centred_svd(const torch::Tensor& means, const torch::Tensor& present, std::int64_t num_components) {
  if (!means.device().is_cpu()) return centred_svd_by_tensor_ops(means, present, num_components);
  const std::int64_t n = means.size(-2), d = means.size(-1);
  const auto options = means.options().dtype(torch::kFloat64);
  Factors factors{torch::empty(snapshot_shape_with(means, {d}), options),
                  torch::empty(snapshot_shape_with(means, {std::min(n, d)}), options),
                  torch::empty(snapshot_shape_with(means, {n, num_components}), options),
                  torch::empty(snapshot_shape_with(means, {num_components, d}), options)};
  const torch::Tensor rows = means.contiguous(), mask = present.to(torch::kBool).contiguous();
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "centred_svd", [&] {
    fused_factors<scalar_t>(rows.data_ptr<scalar_t>(), mask.data_ptr<bool>(), num_snapshots(means), n, d,
                            num_components, factors);
  });
  return with_fixed_signs(factors, means.scalar_type());
}

CentredSvd centred_svd_by_tensor_ops(const torch::Tensor& means, const torch::Tensor& present,
                                     std::int64_t num_components) {
  const auto [centred, mean] = centred_copy(means, present);
  const std::int64_t rank = std::min(means.size(-2), means.size(-1));
  auto [eigenvalues, eigenvectors] = torch::linalg_eigh(torch::matmul(centred, centred.transpose(-1, -2)));
  const torch::Tensor singular = eigenvalues.flip(-1).narrow(-1, 0, rank).clamp_min(0).sqrt();
  const torch::Tensor u = eigenvectors.flip(-1).narrow(-1, 0, num_components);
  const torch::Tensor vh =
      torch::matmul(u.transpose(-1, -2), centred) / singular.narrow(-1, 0, num_components).unsqueeze(-1);
  return with_fixed_signs({mean, singular, u, vh}, means.scalar_type());
}

}  // namespace icgt::detail
