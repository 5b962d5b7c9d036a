#include "window_means.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "tensor_checks.hpp"

namespace icgt::detail {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

torch::Tensor int64_tensor(const std::vector<std::int64_t>& values, const torch::Device& device) {
  return torch::tensor(values, torch::dtype(torch::kInt64)).to(device);
}

torch::Tensor empty_means(const torch::Tensor& source, std::int64_t num_groups, std::int64_t num_snapshots,
                          std::int64_t num_nodes) {
  return torch::empty({source.size(0), num_groups, num_snapshots, num_nodes, source.size(3)},
                      source.options().dtype(compute_dtype(source)));
}

// Segments: the runs of positions between consecutive distinct window boundaries, cut further
// so that none is longer than kMaxSegmentLength (a float32 segment sum then adds at most that many
// rows per node and sequence). Every window is a run of whole segments.
constexpr std::int64_t kMaxSegmentLength = 32;

struct SegmentPlan {
  std::vector<std::int64_t> begin, end;                // positions [begin[j], end[j]) of segment j
  std::vector<std::int64_t> first_segment, end_segment;  // window s is segments [first, end)
};

SegmentPlan plan_segments(const TrailingWindows& windows) {
  std::vector<std::int64_t> boundaries(windows.starts);
  boundaries.insert(boundaries.end(), windows.ends.begin(), windows.ends.end());
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
  const auto segment_at = [&](std::int64_t position) {
    return segment_at_boundary[std::lower_bound(boundaries.begin(), boundaries.end(), position) -
                               boundaries.begin()];
  };
  for (std::size_t s = 0; s < windows.ends.size(); ++s) {
    plan.first_segment.push_back(segment_at(windows.starts[s]));
    plan.end_segment.push_back(segment_at(windows.ends[s]));
  }
  return plan;
}

// The inner loops of the sweep. For float32 activations, the common case, GCC also builds AVX2
// copies and picks one when the library loads (an ifunc, hence glibc): wider vectors halve the
// time of these loops.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define ICGT_WITH_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define ICGT_WITH_AVX2_CLONE
#endif

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

// mean = sum / count, or NaN for a node the window does not hold.
ICGT_WITH_AVX2_CLONE void write_mean(float* __restrict__ mean, const double* __restrict__ sum, std::int64_t count,
                                     std::int64_t width) {
  for (std::int64_t h = 0; h < width; ++h) {
    mean[h] = count > 0 ? static_cast<float>(sum[h] / static_cast<double>(count)) : std::numeric_limits<float>::quiet_NaN();
  }
}

void write_mean(double* __restrict__ mean, const double* __restrict__ sum, std::int64_t count, std::int64_t width) {
  for (std::int64_t h = 0; h < width; ++h) mean[h] = count > 0 ? sum[h] / static_cast<double>(count) : kNaN;
}

// One task per (leading index, slice of the hidden dimension). Segment sums are taken once each,
// in the activations' precision (float32 for float32, as numpy would), and kept in a small cache;
// the window sum, in float64, adds a segment's sum when it enters and subtracts the same stored
// value when it leaves, so nothing drifts. A segment that has left the cache is summed again, in
// the same order, giving the same value. Each activation row is read once (twice only on a cache
// miss), the whole sweep is one parallel region, and the only memory written is the result.
template <typename scalar_t>
void fused_window_means(const torch::Tensor& source, const std::int64_t* node, std::int64_t num_nodes,
                        bool per_sequence, const SegmentPlan& plan, const std::int64_t* count, torch::Tensor& means,
                        bool& finite) {
  using sum_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
  const std::int64_t num_leading = source.size(0), batch = source.size(1), length = source.size(2),
                     hidden = source.size(3);
  const std::int64_t num_groups = per_sequence ? batch : 1;
  const auto num_snapshots = static_cast<std::int64_t>(plan.end_segment.size());
  // Tasks split the hidden dimension too when there are fewer leading indices than threads, so
  // that one layer still uses every core; each task owns its slice of the output.
  const std::int64_t target_tasks = 4 * at::get_num_threads();
  const std::int64_t slices =
      std::clamp<std::int64_t>((target_tasks + num_leading - 1) / num_leading, 1, (hidden + 63) / 64);
  const std::int64_t slice_width = (hidden + slices - 1) / slices;
  const std::int64_t slots = num_groups * num_nodes * slice_width;  // one sum per (group, node, dim)
  std::int64_t widest_window = 1;
  for (std::int64_t s = 0; s < num_snapshots; ++s) {
    widest_window = std::max(widest_window, plan.end_segment[s] - plan.first_segment[s]);
  }
  const std::int64_t cache_size =
      std::clamp<std::int64_t>((std::int64_t{4} << 20) / (slots * static_cast<std::int64_t>(sizeof(sum_t))), 1,
                               widest_window);
  const scalar_t* in = source.data_ptr<scalar_t>();
  sum_t* out = means.data_ptr<sum_t>();
  std::atomic<bool> all_finite{true};
  at::parallel_for(0, num_leading * slices, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> window_sum(slots);
    std::vector<sum_t> cache(cache_size * slots);
    std::vector<std::int64_t> cached_segment(cache_size, -1);
    for (std::int64_t task = begin; task < end; ++task) {
      const std::int64_t leading = task / slices;
      const std::int64_t lo = (task % slices) * slice_width;
      const std::int64_t width = std::min(hidden, lo + slice_width) - lo;
      std::fill(cached_segment.begin(), cached_segment.end(), -1);
      // The sum of segment j for every (group, node), from the cache or summed afresh.
      const auto segment_sum = [&](std::int64_t j) {
        sum_t* sum = cache.data() + (j % cache_size) * slots;
        if (cached_segment[j % cache_size] == j) return static_cast<const sum_t*>(sum);
        std::fill(sum, sum + slots, sum_t{0});
        for (std::int64_t b = 0; b < batch; ++b) {
          const std::int64_t group = per_sequence ? b : 0;
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
      const auto update_window = [&](std::int64_t j, double sign) {
        add_segment(window_sum.data(), segment_sum(j), sign, slots);
      };
      std::fill(window_sum.begin(), window_sum.end(), 0.0);
      std::int64_t entered = 0, left = 0;  // segments [left, entered) are in the window sum
      for (std::int64_t s = 0; s < num_snapshots; ++s) {
        if (plan.first_segment[s] >= entered) {
          // No overlap with the window before: start afresh, from an exact zero.
          std::fill(window_sum.begin(), window_sum.end(), 0.0);
          entered = left = plan.first_segment[s];
        }
        for (; left < plan.first_segment[s]; ++left) update_window(left, -1.0);
        for (; entered < plan.end_segment[s]; ++entered) update_window(entered, 1.0);
        for (std::int64_t group = 0; group < num_groups; ++group) {
          for (std::int64_t k = 0; k < num_nodes; ++k) {
            const std::int64_t n = count[(group * num_snapshots + s) * num_nodes + k];
            // Sums of absent nodes are only nearly 0 after rounding: their means are NaN.
            write_mean(out + (((leading * num_groups + group) * num_snapshots + s) * num_nodes + k) * hidden + lo,
                       window_sum.data() + (group * num_nodes + k) * slice_width, n, width);
          }
        }
      }
      // A NaN or infinity that entered the window stays in its sum (x - x is NaN for both).
      if (!std::all_of(window_sum.begin(), window_sum.end(), [](double v) { return std::isfinite(v); })) {
        all_finite = false;
      }
    }
  });
  finite = all_finite;
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

torch::Tensor window_means(const torch::Tensor& source, const torch::Tensor& nodes, std::int64_t num_nodes,
                           bool per_sequence, const TrailingWindows& windows, const torch::Tensor& counts,
                           bool& finite) {
  if (!source.device().is_cpu()) {
    return window_means_by_tensor_ops(source, nodes, num_nodes, per_sequence, windows, counts, finite);
  }
  torch::Tensor means = empty_means(source, per_sequence ? source.size(1) : 1,
                                    static_cast<std::int64_t>(windows.ends.size()), num_nodes);
  finite = true;
  if (means.numel() == 0) return means;
  const torch::Tensor rows = source.contiguous(), node_ids = nodes.contiguous(), node_counts = counts.contiguous();
  const SegmentPlan plan = plan_segments(windows);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rows.scalar_type(), "window_means", [&] {
    fused_window_means<scalar_t>(rows, node_ids.data_ptr<std::int64_t>(), num_nodes, per_sequence, plan,
                                 node_counts.data_ptr<std::int64_t>(), means, finite);
  });
  return means;
}

torch::Tensor window_means_by_tensor_ops(const torch::Tensor& source, const torch::Tensor& nodes,
                                         std::int64_t num_nodes, bool per_sequence, const TrailingWindows& windows,
                                         const torch::Tensor& counts, bool& finite) {
  const torch::Device device = source.device();
  const std::int64_t num_leading = source.size(0), batch = source.size(1), length = source.size(2),
                     hidden = source.size(3);
  const std::int64_t num_groups = per_sequence ? batch : 1;
  const auto num_snapshots = static_cast<std::int64_t>(windows.ends.size());

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

}  // namespace icgt::detail
