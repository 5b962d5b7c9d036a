#pragma once
// The eigendecomposition of a graph's Laplacian behind EnergyMetrics::SpectralProfile, and the
// profile made from squared projections on its eigenvectors.

#include <Eigen/Dense>
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "icgt/energy_metrics.hpp"
#include "icgt/graph.hpp"

namespace icgt::detail {

/// The combinatorial Laplacian D - A decomposed by Eigen's self-adjoint solver, its eigenvalues
/// grouped into distinct ones (within EnergyMetrics::kEigenvalueTolerance * max(1, the largest) of
/// the one before).
struct LaplacianSpectrum {
  Eigen::MatrixXd eigenvectors;              ///< [nodes, nodes], columns by ascending eigenvalue
  std::vector<double> eigenvalues;           ///< distinct, ascending: the mean of each group
  std::vector<std::int64_t> multiplicities;  ///< of each distinct eigenvalue
  std::vector<std::int64_t> eigenspace;      ///< of each eigenvector: the index of its eigenvalue
};

LaplacianSpectrum laplacian_spectrum(const Graph& graph);

/// The profile from the squared projections of centred class means on every eigenvector, float64
/// [..., nodes]: each over their sum (the means' total squared deviation, the basis being
/// orthonormal), and those shares summed within each eigenspace; shares in `dtype`, on the
/// projections' device.
EnergyMetrics::SpectralProfile spectral_profile_of(const LaplacianSpectrum& spectrum,
                                                   const torch::Tensor& squared_projections, torch::ScalarType dtype);

/// A matrix's entries in row-major order (a window sweep's spectral basis).
std::vector<double> row_major(const Eigen::MatrixXd& matrix);

}  // namespace icgt::detail
