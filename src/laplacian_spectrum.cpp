#include "laplacian_spectrum.hpp"

#include <algorithm>

#include "tensor_checks.hpp"

namespace icgt::detail {

LaplacianSpectrum laplacian_spectrum(const Graph& graph) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(graph.laplacian());
  const Eigen::VectorXd& values = solver.eigenvalues();
  LaplacianSpectrum spectrum{solver.eigenvectors(), {}, {}, {}};
  const double tolerance =
      EnergyMetrics::kEigenvalueTolerance * std::max(1.0, values.size() > 0 ? values.maxCoeff() : 0.0);
  std::vector<double> group_sums;
  for (Eigen::Index k = 0; k < values.size(); ++k) {
    if (k == 0 || values(k) - values(k - 1) > tolerance) {
      group_sums.push_back(0.0);
      spectrum.multiplicities.push_back(0);
    }
    group_sums.back() += values(k);
    ++spectrum.multiplicities.back();
    spectrum.eigenspace.push_back(static_cast<std::int64_t>(group_sums.size()) - 1);
  }
  for (std::size_t group = 0; group < group_sums.size(); ++group) {
    spectrum.eigenvalues.push_back(group_sums[group] / static_cast<double>(spectrum.multiplicities[group]));
  }
  return spectrum;
}

EnergyMetrics::SpectralProfile spectral_profile_of(const LaplacianSpectrum& spectrum,
                                                   const torch::Tensor& squared_projections, torch::ScalarType dtype) {
  const torch::Device device = squared_projections.device();
  // 0 / 0 = NaN where all means coincide; NaN projections (an absent node) stay NaN.
  const torch::Tensor eigenvector_shares = squared_projections / squared_projections.sum(-1, /*keepdim=*/true);
  std::vector<std::int64_t> shares_shape(squared_projections.sizes().vec());
  shares_shape.back() = static_cast<std::int64_t>(spectrum.eigenvalues.size());
  const torch::Tensor shares =
      torch::zeros(shares_shape, eigenvector_shares.options())
          .index_add_(-1, int64_tensor(spectrum.eigenspace, device), eigenvector_shares);
  const std::vector<double> eigenvectors = row_major(spectrum.eigenvectors);
  return {torch::tensor(spectrum.eigenvalues, torch::kFloat64).to(device),
          int64_tensor(spectrum.multiplicities, device),
          shares.to(dtype),
          torch::tensor(eigenvectors, torch::kFloat64)
              .view({spectrum.eigenvectors.rows(), spectrum.eigenvectors.cols()})
              .to(device),
          eigenvector_shares.to(dtype)};
}

std::vector<double> row_major(const Eigen::MatrixXd& matrix) {
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows = matrix;
  return {rows.data(), rows.data() + rows.size()};
}

}  // namespace icgt::detail
