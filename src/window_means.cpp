#include "window_means.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "tensor_checks.hpp"
#include "vector_loops.hpp"

namespace icgt::detail {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

torch::Tensor empty_means(const torch::Tensor& source, std::int64_t num_groups, std::int64_t num_snapshots,
                          std::int64_t num_nodes) {
  return torch::empty({source.size(0), num_groups, num_snapshots, num_nodes, source.size(3)},
                      source.options().dtype(compute_dtype(source)));
}

// Segments: the runs of positions between consecutive distinct window boundaries of all sweeps,
// cut further so that none is longer than kMaxSegmentLength (a float32 segment sum then adds at
// most that many rows per node and sequence). Every window is a run of whole segments.
constexpr std::int64_t kMaxSegmentLength = 32;

struct SegmentPlan {
  std::vector<std::int64_t> begin, end;  // positions [begin[j], end[j]) of segment j
  // Window s of sweep r is segments [first_segment[r][s], end_segment[r][s]).
  std::vector<std::vector<std::int64_t>> first_segment, end_segment;
};

SegmentPlan plan_segments(const std::vector<WindowSweep>& sweeps) {
  std::vector<std::int64_t> boundaries;
  for (const WindowSweep& sweep : sweeps) {
    boundaries.insert(boundaries.end(), sweep.windows.starts.begin(), sweep.windows.starts.end());
    boundaries.insert(boundaries.end(), sweep.windows.ends.begin(), sweep.windows.ends.end());
  }
  std::sort(boundaries.begin(), boundaries.end());
  boundaries.erase(std::unique(boundaries.begin(), boundaries.end()), boundaries.end());
  SegmentPlan plan;
  std::vector<std::int64_t> segment_at_boundary;
  for (std::size_t i = 0; i + 1 < boundaries.size(); ++i) {
    segment_at_boundary.push_back(static_cast<std::int64_t>(plan.begin.size()));
    for (std::int64_t p = boundaries[i]; p < boundaries[i + 1]; p += kMaxSegmentLength) {
      plan.begin.push_back(p);
      plan.end.push_back(std::min(boundaries[i + 1], p + kMaxSegmentLength));
    }
  }
  segment_at_boundary.push_back(static_cast<std::int64_t>(plan.begin.size()));
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
  return plan;
}

// The inner loops of the sweep; the float32 ones, the common case, have AVX2 copies.
ICGT_WITH_AVX2_CLONE void add_row(float* __restrict__ sum, const float* __restrict__ row, std::int64_t width) {
  for (std::int64_t h = 0; h < width; ++h) sum[h] += row[h];
}

template <typename sum_t, typename scalar_t>
void add_row(sum_t* __restrict__ sum, const scalar_t* __restrict__ row, std::int64_t width) {
  for (std::int64_t h = 0; h < width; ++h) sum[h] += static_cast<sum_t>(row[h]);
}

// window += sign * segment, in float64.
ICGT_WITH_AVX2_CLONE void add_segment(double* __restrict__ window, const float* __restrict__ segment, double sign,
                                      std::int64_t size) {
  for (std::int64_t i = 0; i < size; ++i) window[i] += sign * static_cast<double>(segment[i]);
}

void add_segment(double* __restrict__ window, const double* __restrict__ segment, double sign, std::int64_t size) {
  for (std::int64_t i = 0; i < size; ++i) window[i] += sign * segment[i];
}

// window = (from_zero ? 0 : window) + sign * (the sum of the segments), in one pass over the
// window by blocks that stay in the L1 cache, instead of one pass over it per segment.
constexpr std::int64_t kMaxSegmentsAtOnce = 8;

template <typename sum_t>
void add_segments(double* window, bool from_zero, const std::vector<const sum_t*>& segments, double sign,
                  std::int64_t size) {
  constexpr std::int64_t kBlock = 256;
  double block[kBlock];
  for (std::int64_t lo = 0; lo < size; lo += kBlock) {
    const std::int64_t width = std::min(kBlock, size - lo);
    if (from_zero) {
      std::fill(block, block + width, 0.0);
    } else {
      std::copy(window + lo, window + lo + width, block);
    }
    for (const sum_t* segment : segments) add_segment(block, segment + lo, sign, width);
    std::copy(block, block + width, window + lo);
  }
}

// mean = sum * (1 / count), or NaN for a node the window does not hold. A multiplication, not a
// division per element: division is the slowest step of this loop, and the two differ by at most
// one unit in the last place of a float64.
ICGT_WITH_AVX2_CLONE void write_mean(float* __restrict__ mean, const double* __restrict__ sum, std::int64_t count,
                                     std::int64_t width) {
  const double scale = count > 0 ? 1.0 / static_cast<double>(count) : kNaN;
  for (std::int64_t h = 0; h < width; ++h) mean[h] = static_cast<float>(sum[h] * scale);
}

void write_mean(double* __restrict__ mean, const double* __restrict__ sum, std::int64_t count, std::int64_t width) {
  const double scale = count > 0 ? 1.0 / static_cast<double>(count) : kNaN;
  for (std::int64_t h = 0; h < width; ++h) mean[h] = sum[h] * scale;
}

// out = scale * in; centre += share * in.
ICGT_WITH_AVX2_CLONE void scale_into(double* __restrict__ out, double* __restrict__ centre,
                                     const double* __restrict__ in, double scale, double share, std::int64_t width) {
  for (std::int64_t h = 0; h < width; ++h) {
    out[h] = scale * in[h];
    centre[h] += share * out[h];
  }
}

// Rows of activations ahead of the one being summed: about the memory latency's worth of work.
constexpr std::int64_t kRowsAhead = 8;

inline void prefetch(const char* address) {
#if defined(__GNUC__)
  __builtin_prefetch(address);
#else
  (void)address;
#endif
}

bool all_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

// Tasks split the hidden dimension too when there are fewer leading indices than threads, so that
// one layer still uses every core; each task owns its slice of the output.
std::int64_t hidden_slices(std::int64_t num_leading, std::int64_t hidden) {
  const std::int64_t target_tasks = 4 * at::get_num_threads();
  return std::clamp<std::int64_t>((target_tasks + num_leading - 1) / num_leading, 1, (hidden + 63) / 64);
}

// The energy sums of one window's class means over one slice of the hidden dimension, from the
// window sums of its nodes (rows of `width` at `stride`); scratch holds num_nodes + 1 rows.
void add_energy_sums(double* __restrict__ out, const double* sums, std::int64_t stride, const std::int64_t* count,
                     std::int64_t num_nodes, std::int64_t width, const std::vector<std::pair<int, int>>& edges,
                     std::vector<double>& scratch) {
  double* means = scratch.data();
  double* centre = means + num_nodes * width;
  std::fill(centre, centre + width, 0.0);
  for (std::int64_t k = 0; k < num_nodes; ++k) {
    scale_into(means + k * width, centre, sums + k * stride, 1.0 / static_cast<double>(count[k]),
               1.0 / static_cast<double>(num_nodes), width);
  }
  double edge_squares = 0, squared_norms = 0, squared_deviations = 0;
  for (auto [i, j] : edges) edge_squares += squared_distance(means + i * width, means + j * width, width);
  for (std::int64_t k = 0; k < num_nodes; ++k) {
    squared_norms += dot(means + k * width, means + k * width, width);
    squared_deviations += squared_distance(means + k * width, centre, width);
  }
  out[kEdgeSquares] += edge_squares;
  out[kSquaredNorms] += squared_norms;
  out[kSquaredDeviations] += squared_deviations;
}

// One task per (leading index, slice of the hidden dimension), serving every sweep as the
// segments go by. Segment sums are taken once each, in the activations' precision (float32 for
// float32, as numpy would), and kept in a small cache; each sweep's window sum, in float64, adds a
// segment's sum when it enters and subtracts the same stored value when it leaves, so nothing
// drifts. A segment that has left the cache is summed again, in the same order, giving the same
// value; a window is summed afresh instead when that adds fewer segments than sliding it. Each
// activation row is read once (twice only on a cache miss), the whole pass is one
// parallel region, and the only memory written is the results: class means, or for an energy
// sweep a few numbers per window (energy_sums holds them per slice, summed afterwards).
template <typename scalar_t>
void fused_sweep(const torch::Tensor& source, const std::int64_t* node, std::int64_t num_nodes, bool per_sequence,
                 const std::vector<WindowSweep>& sweeps, const SegmentPlan& plan, std::int64_t slices,
                 std::vector<torch::Tensor>& results, bool& finite) {
  using sum_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
  const std::int64_t num_leading = source.size(0), batch = source.size(1), length = source.size(2),
                     hidden = source.size(3);
  const std::int64_t num_groups = per_sequence ? batch : 1;
  const std::int64_t slice_width = (hidden + slices - 1) / slices;
  const std::int64_t slots = num_groups * num_nodes * slice_width;  // one sum per (group, node, dim)
  const auto num_sweeps = static_cast<std::int64_t>(sweeps.size());
  const auto num_segments = static_cast<std::int64_t>(plan.begin.size());

  // Every window of every sweep, in the order its last segment goes by.
  struct Snapshot {
    std::int64_t end_segment, sweep, index;
  };
  // The cache holds the segments from the oldest that a window may still have to drop to the
  // newest: a window that slides drops the segments of the window before it.
  std::vector<Snapshot> order;
  std::int64_t lookback = 1;
  for (std::int64_t r = 0; r < num_sweeps; ++r) {
    const std::vector<std::int64_t>&first = plan.first_segment[r], &last = plan.end_segment[r];
    for (std::size_t s = 0; s < last.size(); ++s) {
      order.push_back({last[s], r, static_cast<std::int64_t>(s)});
      const bool slides = s > 0 && first[s] < last[s - 1];
      lookback = std::max(lookback, last[s] - (slides ? first[s - 1] : first[s]));
    }
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const Snapshot& a, const Snapshot& b) { return a.end_segment < b.end_segment; });
  const std::int64_t cache_size = std::clamp<std::int64_t>(
      (std::int64_t{4} << 20) / (slots * static_cast<std::int64_t>(sizeof(sum_t))), 1, lookback);
  std::vector<torch::Tensor> contiguous_counts;
  std::vector<const std::int64_t*> counts;
  for (const WindowSweep& sweep : sweeps) {
    contiguous_counts.push_back(sweep.counts.contiguous());
    counts.push_back(contiguous_counts.back().data_ptr<std::int64_t>());
  }
  const std::int64_t max_terms = std::min<std::int64_t>(kMaxSegmentsAtOnce, cache_size);
  const scalar_t* in = source.data_ptr<scalar_t>();
  std::atomic<bool> every_sum_finite{true};
  at::parallel_for(0, num_leading * slices, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<std::vector<double>> window_sum(num_sweeps, std::vector<double>(slots));
    std::vector<sum_t> cache(cache_size * slots);
    std::vector<std::int64_t> cached_segment(cache_size, -1);
    std::vector<double> scratch((num_nodes + 1) * slice_width);
    for (std::int64_t task = begin; task < end; ++task) {
      const std::int64_t leading = task / slices, slice = task % slices;
      const std::int64_t lo = slice * slice_width;
      const std::int64_t width = std::max<std::int64_t>(0, std::min(hidden, lo + slice_width) - lo);
      std::fill(cached_segment.begin(), cached_segment.end(), -1);
      const auto prefetch_rows = [&](std::int64_t leading_index, std::int64_t b, std::int64_t j) {
        const std::int64_t row_bytes = width * static_cast<std::int64_t>(sizeof(scalar_t));
        for (std::int64_t p = plan.begin[j]; p < plan.end[j]; ++p) {
          const char* row = reinterpret_cast<const char*>(in + ((leading_index * batch + b) * length + p) * hidden + lo);
          for (std::int64_t byte = 0; byte < row_bytes; byte += 64) prefetch(row + byte);
        }
      };
      // The sum of segment j for every (group, node), from the cache or summed afresh.
      const auto segment_sum = [&](std::int64_t j) {
        sum_t* sum = cache.data() + (j % cache_size) * slots;
        if (cached_segment[j % cache_size] == j) return static_cast<const sum_t*>(sum);
        std::fill(sum, sum + slots, sum_t{0});
        // A segment is a short run of rows in each sequence, too short for the hardware to see a
        // stream: ask for the rows about kRowsAhead ahead ourselves, through into the next segment.
        const std::int64_t run = plan.end[j] - plan.begin[j];
        const std::int64_t ahead = std::min(batch, (kRowsAhead + run - 1) / run);
        if (j == 0 || cached_segment[(j - 1) % cache_size] != j - 1) {  // no segment before asked for these
          for (std::int64_t b = 0; b < ahead; ++b) prefetch_rows(leading, b, j);
        }
        for (std::int64_t b = 0; b < batch; ++b) {
          const std::int64_t group = per_sequence ? b : 0;
          if (b + ahead < batch) {
            prefetch_rows(leading, b + ahead, j);
          } else if (j + 1 < num_segments) {
            prefetch_rows(leading, b + ahead - batch, j + 1);
          }
          for (std::int64_t p = plan.begin[j]; p < plan.end[j]; ++p) {
            const std::int64_t k = node[b * length + p];
            if (k < 0) continue;
            add_row(sum + (group * num_nodes + k) * slice_width,
                    in + ((leading * batch + b) * length + p) * hidden + lo, width);
          }
        }
        cached_segment[j % cache_size] = j;
        return static_cast<const sum_t*>(sum);
      };
      std::vector<const sum_t*> terms;
      std::vector<std::int64_t> entered(num_sweeps, 0), left(num_sweeps, 0);  // [left, entered) are in
      bool sums_finite = true;
      for (auto& sum : window_sum) std::fill(sum.begin(), sum.end(), 0.0);
      for (const Snapshot& snapshot : order) {
        const std::int64_t r = snapshot.sweep, s = snapshot.index;
        const std::int64_t first = plan.first_segment[r][s];
        std::vector<double>& sum = window_sum[r];
        bool from_zero = snapshot.end_segment - first < (first - left[r]) + (snapshot.end_segment - entered[r]);
        if (from_zero) {
          // Summing the window afresh, from an exact zero, adds fewer segments than sliding the
          // last one here (always so when they do not overlap). A NaN or infinity that entered a
          // window stays in its sum (x - x is NaN for both) until then.
          sums_finite = sums_finite && all_finite(sum);
          entered[r] = left[r] = first;
        }
        // Segments go in by runs of consecutive ones, at most as many as the cache holds, so
        // that fetching one never evicts another of its run.
        const auto update = [&](std::int64_t& next, std::int64_t stop, double sign) {
          while (next < stop || from_zero) {
            terms.clear();
            for (; next < stop && static_cast<std::int64_t>(terms.size()) < max_terms; ++next) {
              terms.push_back(segment_sum(next));
            }
            add_segments(sum.data(), from_zero, terms, sign, slots);
            from_zero = false;
          }
        };
        update(left[r], first, -1.0);
        update(entered[r], snapshot.end_segment, 1.0);
        const std::int64_t num_snapshots = static_cast<std::int64_t>(plan.end_segment[r].size());
        for (std::int64_t group = 0; group < num_groups; ++group) {
          const std::int64_t* count = counts[r] + (group * num_snapshots + s) * num_nodes;
          const double* group_sum = sum.data() + group * num_nodes * slice_width;
          if (sweeps[r].output == WindowSweep::Output::ClassMeans) {
            sum_t* means = results[r].data_ptr<sum_t>();
            for (std::int64_t k = 0; k < num_nodes; ++k) {
              // Sums of absent nodes are only nearly 0 after rounding: their means are NaN.
              write_mean(means + (((leading * num_groups + group) * num_snapshots + s) * num_nodes + k) * hidden + lo,
                         group_sum + k * slice_width, count[k], width);
            }
          } else if (std::all_of(count, count + num_nodes, [](std::int64_t n) { return n > 0; })) {
            double* energy_sums = results[r].data_ptr<double>() +
                                  (((leading * slices + slice) * num_groups + group) * num_snapshots + s) * kNumEnergySums;
            add_energy_sums(energy_sums, group_sum, slice_width, count, num_nodes, width, sweeps[r].edges, scratch);
          }
        }
      }
      for (const auto& sum : window_sum) sums_finite = sums_finite && all_finite(sum);
      if (!sums_finite) every_sum_finite = false;
    }
  });
  finite = every_sum_finite;
}

// Energy sums [leading, groups, snapshots, kNumEnergySums] are NaN where a window lacks a node.
torch::Tensor nan_where_a_node_is_absent(torch::Tensor sums, const torch::Tensor& counts) {
  return sums.masked_fill_((counts == 0).any(-1).unsqueeze(-1), kNaN);
}

}  // namespace

torch::Tensor window_counts(const torch::Tensor& nodes, std::int64_t num_nodes, bool per_sequence,
                            const TrailingWindows& windows) {
  const std::int64_t batch = nodes.size(0), length = nodes.size(1);
  torch::Tensor occurs = torch::zeros({batch, length, num_nodes}, nodes.options());
  occurs.scatter_(2, nodes.clamp_min(0).unsqueeze(-1), (nodes >= 0).unsqueeze(-1).to(torch::kInt64));
  if (!per_sequence) occurs = occurs.sum(0, /*keepdim=*/true);
  const torch::Tensor before = torch::cat({torch::zeros({occurs.size(0), 1, num_nodes}, nodes.options()),
                                           occurs.cumsum(1)},
                                          1);
  return before.index_select(1, int64_tensor(windows.ends, nodes.device())) -
         before.index_select(1, int64_tensor(windows.starts, nodes.device()));
}

std::vector<torch::Tensor> sweep_windows(const torch::Tensor& source, const torch::Tensor& nodes,
                                         std::int64_t num_nodes, bool per_sequence,
                                         const std::vector<WindowSweep>& sweeps, bool& finite) {
  if (!source.device().is_cpu()) {
    return sweep_windows_by_tensor_ops(source, nodes, num_nodes, per_sequence, sweeps, finite);
  }
  const std::int64_t num_leading = source.size(0), num_groups = per_sequence ? source.size(1) : 1;
  finite = true;
  std::vector<torch::Tensor> results;
  const torch::Tensor rows = source.contiguous(), node_ids = nodes.contiguous();
  // Residuals with no leading entries (a run that captured no layer) have nothing to sweep.
  const std::int64_t slices = num_leading > 0 ? hidden_slices(num_leading, source.size(3)) : 1;
  for (const WindowSweep& sweep : sweeps) {
    const auto num_snapshots = static_cast<std::int64_t>(sweep.windows.ends.size());
    results.push_back(sweep.output == WindowSweep::Output::ClassMeans
                          ? empty_means(source, num_groups, num_snapshots, num_nodes)
                          : torch::zeros({num_leading, slices, num_groups, num_snapshots, kNumEnergySums},
                                         source.options().dtype(torch::kFloat64)));
  }
  if (source.numel() == 0) {
    // No sequence (batch 0): every node is absent from every window.
    for (torch::Tensor& result : results) result.fill_(kNaN);
  } else {
    const SegmentPlan plan = plan_segments(sweeps);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rows.scalar_type(), "sweep_windows", [&] {
      fused_sweep<scalar_t>(rows, node_ids.data_ptr<std::int64_t>(), num_nodes, per_sequence, sweeps, plan,
                            slices, results, finite);
    });
  }
  for (std::size_t r = 0; r < sweeps.size(); ++r) {
    if (sweeps[r].output == WindowSweep::Output::EnergySums) {
      results[r] = nan_where_a_node_is_absent(results[r].sum(1), sweeps[r].counts);
    }
  }
  return results;
}

std::vector<torch::Tensor> sweep_windows_by_tensor_ops(const torch::Tensor& source, const torch::Tensor& nodes,
                                                       std::int64_t num_nodes, bool per_sequence,
                                                       const std::vector<WindowSweep>& sweeps, bool& finite) {
  finite = true;
  std::vector<torch::Tensor> results;
  for (const WindowSweep& sweep : sweeps) {
    bool sweep_finite = true;
    const torch::Tensor means = window_means_by_tensor_ops(source, nodes, num_nodes, per_sequence, sweep.windows,
                                                           sweep.counts, sweep_finite);
    finite = finite && sweep_finite;
    results.push_back(sweep.output == WindowSweep::Output::ClassMeans
                          ? means
                          : nan_where_a_node_is_absent(energy_sums_by_tensor_ops(means, sweep.edges), sweep.counts));
  }
  return results;
}

torch::Tensor window_means_by_tensor_ops(const torch::Tensor& source, const torch::Tensor& nodes,
                                         std::int64_t num_nodes, bool per_sequence, const TrailingWindows& windows,
                                         const torch::Tensor& counts, bool& finite) {
  const torch::Device device = source.device();
  const std::int64_t num_leading = source.size(0), batch = source.size(1), length = source.size(2),
                     hidden = source.size(3);
  const std::int64_t num_groups = per_sequence ? batch : 1;
  const auto num_snapshots = static_cast<std::int64_t>(windows.ends.size());
  if (source.numel() == 0) return empty_means(source, num_groups, num_snapshots, num_nodes).fill_(kNaN);

  // Every window is a run of whole segments between consecutive distinct boundaries. Entry j of
  // the running sum holds segments 0..j-1, so window s is entry end minus entry start.
  std::vector<std::int64_t> boundaries(windows.starts);
  boundaries.insert(boundaries.end(), windows.ends.begin(), windows.ends.end());
  std::sort(boundaries.begin(), boundaries.end());
  boundaries.erase(std::unique(boundaries.begin(), boundaries.end()), boundaries.end());
  const auto num_entries = static_cast<std::int64_t>(boundaries.size());
  std::vector<std::int64_t> entry_after(length, -1);  // segment s of position p, plus 1
  for (std::int64_t s = 0; s + 1 < num_entries; ++s) {
    std::fill(entry_after.begin() + boundaries[s], entry_after.begin() + boundaries[s + 1], s + 1);
  }
  const auto entry_at = [&](const std::vector<std::int64_t>& positions) {
    std::vector<std::int64_t> entries;
    for (std::int64_t p : positions) {
      entries.push_back(std::lower_bound(boundaries.begin(), boundaries.end(), p) - boundaries.begin());
    }
    return int64_tensor(entries, device);
  };
  const torch::Tensor start_entry = entry_at(windows.starts), end_entry = entry_at(windows.ends);

  const torch::Tensor entry = int64_tensor(entry_after, device).unsqueeze(0);
  const torch::Tensor group = per_sequence ? torch::arange(batch, nodes.options()).unsqueeze(1)
                                           : torch::zeros({1, 1}, nodes.options());
  const torch::Tensor bucket = ((group * num_entries + entry) * num_nodes + nodes).flatten();
  const torch::Tensor used_rows = ((nodes >= 0) & (entry >= 0)).flatten().nonzero().squeeze(-1);
  const torch::Tensor used_buckets = bucket.index_select(0, used_rows);
  const std::int64_t num_buckets = num_groups * num_entries * num_nodes;

  // Leading indices go through in chunks of at most ~32 MiB of running sums, to bound memory.
  const torch::Tensor rows = source.reshape({num_leading, batch * length, hidden});
  torch::Tensor means = empty_means(source, num_groups, num_snapshots, num_nodes);
  const std::int64_t chunk = std::clamp<std::int64_t>(
      (std::int64_t{32} << 20) / std::max<std::int64_t>(1, num_buckets * hidden * 8), 1, num_leading);
  const torch::Tensor absent = (counts == 0).unsqueeze(-1);
  finite = true;
  for (std::int64_t first = 0; first < num_leading; first += chunk) {
    const std::int64_t size = std::min(chunk, num_leading - first);
    torch::Tensor running = torch::zeros({size, num_buckets, hidden}, source.options().dtype(torch::kFloat64));
    running.index_add_(1, used_buckets, rows.narrow(0, first, size).index_select(1, used_rows).to(torch::kFloat64));
    // Running sums in float64: a late window, the difference of two sums over everything before
    // it, keeps about 1e-14 of its relative precision.
    running = running.view({size, num_groups, num_entries, num_nodes, hidden}).cumsum(2);
    // A NaN or infinity anywhere makes the last running sum non-finite.
    finite = finite && torch::isfinite(running.select(2, num_entries - 1)).all().item<bool>();
    const torch::Tensor sums = running.index_select(2, end_entry) - running.index_select(2, start_entry);
    means.narrow(0, first, size).copy_((sums / counts.unsqueeze(-1)).masked_fill_(absent, kNaN));
  }
  return means;
}

torch::Tensor energy_sums_by_tensor_ops(const torch::Tensor& means, const std::vector<std::pair<int, int>>& edges) {
  const torch::Tensor x = means.to(torch::kFloat64);
  torch::Tensor edge_squares = torch::zeros(x.sizes().slice(0, x.dim() - 2), x.options());
  for (auto [i, j] : edges) edge_squares.add_((x.select(-2, i) - x.select(-2, j)).square().sum(-1));
  const torch::Tensor squared_norms = x.square().sum({-2, -1});
  const torch::Tensor squared_deviations = (x - x.mean(-2, /*keepdim=*/true)).square().sum({-2, -1});
  return torch::stack({edge_squares, squared_norms, squared_deviations}, -1);
}

}  // namespace icgt::detail
