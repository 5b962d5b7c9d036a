#pragma once
// The plan of the fused CPU sweep (cpu_sweep.cpp): positions cut into segments such that every
// window of every sweep is a run of whole segments, and the order in which the windows close.

#include <cstdint>
#include <vector>

#include "window_sweep.hpp"

namespace icgt::detail {

/// No segment is longer than this, so that a float32 segment sum adds at most that many rows per
/// node and sequence.
constexpr std::int64_t kMaxSegmentLength = 32;

struct SegmentPlan {
  /// One window of one sweep, by the segment after its last.
  struct Window {
    std::int64_t end_segment;
    std::int64_t sweep;
    std::int64_t index;
  };

  /// Segment j covers positions [begin[j], end[j]).
  std::vector<std::int64_t> begin, end;
  /// Window s of sweep r is segments [first_segment[r][s], end_segment[r][s]).
  std::vector<std::vector<std::int64_t>> first_segment, end_segment;
  /// Every window of every sweep, in the order its last segment goes by (sweeps in their order
  /// where windows close together).
  std::vector<Window> closing_order;
  /// The most segments a window spans from the oldest that it may still drop (a window that
  /// slides drops those of the window before it) to its newest: the most a segment cache needs.
  std::int64_t lookback = 1;

  std::int64_t num_segments() const { return static_cast<std::int64_t>(begin.size()); }
};

/// Segments: the runs of positions between consecutive distinct window boundaries of all sweeps,
/// cut further so that none is longer than kMaxSegmentLength.
SegmentPlan plan_segments(const std::vector<WindowSweep>& sweeps);

}  // namespace icgt::detail
