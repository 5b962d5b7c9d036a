#include "vector_loops.hpp"

namespace icgt::detail {

namespace {

constexpr int kLanes = 8;

double total(const double (&lanes)[kLanes]) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

}  // namespace

ICGT_WITH_AVX2_CLONE double dot(const double* __restrict__ a, const double* __restrict__ b, std::int64_t size) {
  double lanes[kLanes] = {};
  std::int64_t h = 0;
  for (; h + kLanes <= size; h += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += a[h + l] * b[h + l];
  }
  for (; h < size; ++h) lanes[0] += a[h] * b[h];
  return total(lanes);
}

ICGT_WITH_AVX2_CLONE double squared_distance(const double* __restrict__ a, const double* __restrict__ b,
                                             std::int64_t size) {
  double lanes[kLanes] = {};
  std::int64_t h = 0;
  for (; h + kLanes <= size; h += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += (a[h + l] - b[h + l]) * (a[h + l] - b[h + l]);
  }
  for (; h < size; ++h) lanes[0] += (a[h] - b[h]) * (a[h] - b[h]);
  return total(lanes);
}

}  // namespace icgt::detail
