#include "vector_loops.hpp"

namespace icgt::detail {

namespace {

constexpr int kLanes = 8;

double total(const double (&lanes)[kLanes]) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// The cloned loops have internal linkage, behind plain functions: GCC gives the load-time chooser
// (ifunc) of a cloned function with external linkage default visibility whatever -fvisibility or
// the function's own attribute say, so libicgt would export them.
ICGT_WITH_AVX2_CLONE double dot_by_lanes(const double* __restrict__ a, const double* __restrict__ b,
                                         std::int64_t size) {
  double lanes[kLanes] = {};
  std::int64_t h = 0;
  for (; h + kLanes <= size; h += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += a[h + l] * b[h + l];
  }
  for (; h < size; ++h) lanes[0] += a[h] * b[h];
  return total(lanes);
}

ICGT_WITH_AVX2_CLONE double squared_distance_by_lanes(const double* __restrict__ a, const double* __restrict__ b,
                                                      std::int64_t size) {
  double lanes[kLanes] = {};
  std::int64_t h = 0;
  for (; h + kLanes <= size; h += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += (a[h + l] - b[h + l]) * (a[h + l] - b[h + l]);
  }
  for (; h < size; ++h) lanes[0] += (a[h] - b[h]) * (a[h] - b[h]);
  return total(lanes);
}

}  // namespace

double dot(const double* a, const double* b, std::int64_t size) { return dot_by_lanes(a, b, size); }

double squared_distance(const double* a, const double* b, std::int64_t size) {
  return squared_distance_by_lanes(a, b, size);
}

}  // namespace icgt::detail
