#include "segment_plan.hpp"

#include <algorithm>

namespace icgt::detail {
namespace {

// The distinct window boundaries of all sweeps, ascending.
std::vector<std::int64_t> window_boundaries(const std::vector<WindowSweep>& sweeps) {
  std::vector<std::int64_t> boundaries;
  for (const WindowSweep& sweep : sweeps) {
    boundaries.insert(boundaries.end(), sweep.windows.starts.begin(), sweep.windows.starts.end());
    boundaries.insert(boundaries.end(), sweep.windows.ends.begin(), sweep.windows.ends.end());
  }
  std::sort(boundaries.begin(), boundaries.end());
  boundaries.erase(std::unique(boundaries.begin(), boundaries.end()), boundaries.end());
  return boundaries;
}

void order_windows(const std::vector<WindowSweep>& sweeps, SegmentPlan& plan) {
  for (std::size_t r = 0; r < sweeps.size(); ++r) {
    const std::vector<std::int64_t>&first = plan.first_segment[r], &last = plan.end_segment[r];
    for (std::size_t s = 0; s < last.size(); ++s) {
      plan.closing_order.push_back({last[s], static_cast<std::int64_t>(r), static_cast<std::int64_t>(s)});
      const bool slides = s > 0 && first[s] < last[s - 1];
      plan.lookback = std::max(plan.lookback, last[s] - (slides ? first[s - 1] : first[s]));
    }
  }
  std::stable_sort(
      plan.closing_order.begin(), plan.closing_order.end(),
      [](const SegmentPlan::Window& a, const SegmentPlan::Window& b) { return a.end_segment < b.end_segment; });
}

}  // namespace

SegmentPlan plan_segments(const std::vector<WindowSweep>& sweeps) {
  const std::vector<std::int64_t> boundaries = window_boundaries(sweeps);
  SegmentPlan plan;
  std::vector<std::int64_t> segment_at_boundary;
  for (std::size_t i = 0; i + 1 < boundaries.size(); ++i) {
    segment_at_boundary.push_back(plan.num_segments());
    for (std::int64_t p = boundaries[i]; p < boundaries[i + 1]; p += kMaxSegmentLength) {
      plan.begin.push_back(p);
      plan.end.push_back(std::min(boundaries[i + 1], p + kMaxSegmentLength));
    }
  }
  segment_at_boundary.push_back(plan.num_segments());
  const auto segments_at = [&](const std::vector<std::int64_t>& positions) {
    std::vector<std::int64_t> segments;
    for (std::int64_t position : positions) {
      segments.push_back(segment_at_boundary[std::lower_bound(boundaries.begin(), boundaries.end(), position) -
                                             boundaries.begin()]);
    }
    return segments;
  };
  for (const WindowSweep& sweep : sweeps) {
    plan.first_segment.push_back(segments_at(sweep.windows.starts));
    plan.end_segment.push_back(segments_at(sweep.windows.ends));
  }
  order_windows(sweeps, plan);
  return plan;
}

}  // namespace icgt::detail
