#pragma once
// Reductions over float64 vectors for the fused CPU kernels. Each keeps eight partial sums, so
// that it vectorises (a compiler may not reorder one floating-point sum by itself), and each has
// an AVX2 copy.

#include <cstdint>

// The fused CPU kernels' inner loops: GCC also builds an AVX2 copy of a function so marked and
// picks one when the library loads (an ifunc, hence glibc); wider vectors halve their time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define ICGT_WITH_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define ICGT_WITH_AVX2_CLONE
#endif

namespace icgt::detail {

/// sum_h a[h] * b[h]
double dot(const double* a, const double* b, std::int64_t size);

/// sum_h (a[h] - b[h])^2
double squared_distance(const double* a, const double* b, std::int64_t size);

}  // namespace icgt::detail
