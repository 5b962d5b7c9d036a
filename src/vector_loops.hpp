#pragma once
// Reductions over float64 vectors for the fused CPU kernels. Each keeps eight partial sums, so
// that it vectorises (a compiler may not reorder one floating-point sum by itself), and GCC also
// builds an AVX2 copy that is picked when the library loads.

#include <cstdint>

namespace icgt::detail {

/// sum_h a[h] * b[h]
double dot(const double* a, const double* b, std::int64_t size);

/// sum_h (a[h] - b[h])^2
double squared_distance(const double* a, const double* b, std::int64_t size);

}  // namespace icgt::detail
