// The fused CPU kernel of the window sweep (window_sweep.hpp): one task per (leading index, slice
// of the hidden dimension), serving every sweep as the segments of segment_plan go by.
//
// Segment sums are taken once each, in the activations' precision (float32 for float32, as numpy
// would), and kept in a small cache (SegmentCache); each sweep's window sum, in float64, adds a
// segment's sum when it enters and subtracts the same stored value when it leaves, so nothing
// drifts. A segment that has left the cache is summed again, in the same order, giving the same
// value; a window is summed afresh instead when that adds fewer segments than sliding it. Each
// activation row is read once (twice only on a cache miss), the whole pass is one parallel
// region, and the only memory written is the results: class means, or for an energy sweep a few
// numbers per window, one per node more with a spectral basis (kept per slice, summed afterwards).

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <Eigen/Dense>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>

#include "nan.hpp"
#include "segment_plan.hpp"
#include "vector_loops.hpp"
#include "window_sweep.hpp"

namespace icgt::detail {
namespace {

// --- the inner loops; the float32 ones, the common case, have AVX2 copies ----------------------

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

// window += sign * (the sum of the segments), in one pass over the window by blocks that stay in
// the L1 cache, instead of one pass over it per segment.
template <typename sum_t>
void add_segments(double* window, const std::vector<const sum_t*>& segments, double sign, std::int64_t size) {
  constexpr std::int64_t kBlock = 256;
  double block[kBlock];
  for (std::int64_t lo = 0; lo < size; lo += kBlock) {
    const std::int64_t width = std::min(kBlock, size - lo);
    std::copy(window + lo, window + lo + width, block);
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

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The energy sums of one window's class means over one slice of the hidden dimension, from the
// window sums of its nodes (rows of `width` at `stride`), and with a spectral basis the squared
// projections of the centred means on it (energy_sums_width); scratch holds 2 num_nodes + 1 rows.
void add_energy_sums(double* __restrict__ out, const double* sums, std::int64_t stride, const std::int64_t* count,
                     std::int64_t num_nodes, std::int64_t width, const WindowSweep& sweep,
                     std::vector<double>& scratch) {
  double* means = scratch.data();
  double* centre = means + num_nodes * width;
  std::fill(centre, centre + width, 0.0);
  for (std::int64_t k = 0; k < num_nodes; ++k) {
    scale_into(means + k * width, centre, sums + k * stride, 1.0 / static_cast<double>(count[k]),
               1.0 / static_cast<double>(num_nodes), width);
  }
  double edge_squares = 0, squared_norms = 0, squared_deviations = 0;
  for (auto [i, j] : sweep.edges) edge_squares += squared_distance(means + i * width, means + j * width, width);
  for (std::int64_t k = 0; k < num_nodes; ++k) {
    squared_norms += dot(means + k * width, means + k * width, width);
    squared_deviations += squared_distance(means + k * width, centre, width);
  }
  out[kEdgeSquares] += edge_squares;
  out[kSquaredNorms] += squared_norms;
  out[kSquaredDeviations] += squared_deviations;
  if (sweep.spectral_basis.empty()) return;
  // The squared norm of each basis vector's projection sums over the hidden dimension, so the
  // slices' shares add up like the energy sums.
  Eigen::Map<RowMajorMatrix> deviations(means, num_nodes, width);
  deviations.rowwise() -= Eigen::Map<const Eigen::RowVectorXd>(centre, width);
  const auto num_vectors = static_cast<Eigen::Index>(sweep.spectral_basis.size()) / num_nodes;
  const Eigen::Map<const RowMajorMatrix> basis(sweep.spectral_basis.data(), num_nodes, num_vectors);
  Eigen::Map<RowMajorMatrix> projections(centre + width, num_vectors, width);
  projections.noalias() = basis.transpose() * deviations;
  Eigen::Map<Eigen::VectorXd>(out + kNumEnergySums, num_vectors) += projections.rowwise().squaredNorm();
}

bool all_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

inline void prefetch(const char* address) {
#if defined(__GNUC__)
  __builtin_prefetch(address);
#else
  (void)address;
#endif
}

// --- the kernel ----------------------------------------------------------------------------------

// Segment sums are float32 for every narrower type too, float64 for float64.
template <typename scalar_t>
using SumType = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// What every task reads and where it writes: the activations, their labels and the sizes.
template <typename scalar_t>
struct SweepSource {
  const scalar_t* rows;       // [leading, batch, length, hidden]
  const std::int64_t* nodes;  // [batch, length], kNotANode skipped
  std::int64_t batch, length, hidden, num_nodes;
  bool per_sequence;
  std::int64_t num_groups;   // batch per sequence, else 1
  std::int64_t slices;       // slices of the hidden dimension, one task each
  std::int64_t slice_width;  // hidden / slices, rounded up
  std::int64_t slots;        // one sum per (group, node, dimension of a slice)
};

// One task's columns: a leading index and a slice [lo, lo + width) of the hidden dimension.
struct Task {
  std::int64_t leading, slice, lo, width;
};

// Rows of activations ahead of the one being summed: about the memory latency's worth of work.
constexpr std::int64_t kRowsAhead = 8;

// The sums of the most recent segments of one task for every (group, node): a ring of `capacity`
// segments, each [groups, nodes, slice_width]. A segment is a short run of rows in each sequence,
// too short for the hardware to see a stream, so summing one asks for the rows about kRowsAhead
// ahead itself, through into the next segment.
template <typename scalar_t>
class SegmentCache {
 public:
  using sum_t = SumType<scalar_t>;

  SegmentCache(const SweepSource<scalar_t>& source, const SegmentPlan& plan, std::int64_t capacity)
      : source_(source), plan_(plan), capacity_(capacity), sums_(capacity * source.slots), held_(capacity, -1) {}

  std::int64_t capacity() const { return capacity_; }

  // Forgets every segment: the next ones are of another task.
  void start(const Task& task) {
    task_ = task;
    std::fill(held_.begin(), held_.end(), -1);
  }

  // The sum of segment j for every (group, node), from the cache or summed afresh.
  const sum_t* segment_sum(std::int64_t j) {
    sum_t* sum = sums_.data() + (j % capacity_) * source_.slots;
    if (held_[j % capacity_] == j) return sum;
    std::fill(sum, sum + source_.slots, sum_t{0});
    const std::int64_t batch = source_.batch, length = source_.length, num_nodes = source_.num_nodes;
    const std::int64_t run = plan_.end[j] - plan_.begin[j];
    const std::int64_t ahead = std::min(batch, (kRowsAhead + run - 1) / run);
    if (j == 0 || held_[(j - 1) % capacity_] != j - 1) {  // no segment before asked for these
      for (std::int64_t b = 0; b < ahead; ++b) prefetch_rows(b, j);
    }
    const std::int64_t* nodes = source_.nodes;
    const std::int64_t slice_width = source_.slice_width, width = task_.width, hidden = source_.hidden;
    for (std::int64_t b = 0; b < batch; ++b) {
      const std::int64_t group = source_.per_sequence ? b : 0;
      if (b + ahead < batch) {
        prefetch_rows(b + ahead, j);
      } else if (j + 1 < plan_.num_segments()) {
        prefetch_rows(b + ahead - batch, j + 1);
      }
      const scalar_t* sequence = row(b, 0);
      for (std::int64_t p = plan_.begin[j]; p < plan_.end[j]; ++p) {
        const std::int64_t k = nodes[b * length + p];
        if (k < 0) continue;
        add_row(sum + (group * num_nodes + k) * slice_width, sequence + p * hidden, width);
      }
    }
    held_[j % capacity_] = j;
    return sum;
  }

 private:
  const scalar_t* row(std::int64_t b, std::int64_t p) const {
    return source_.rows + ((task_.leading * source_.batch + b) * source_.length + p) * source_.hidden + task_.lo;
  }

  void prefetch_rows(std::int64_t b, std::int64_t j) const {
    const std::int64_t row_bytes = task_.width * static_cast<std::int64_t>(sizeof(scalar_t));
    for (std::int64_t p = plan_.begin[j]; p < plan_.end[j]; ++p) {
      const char* start = reinterpret_cast<const char*>(row(b, p));
      for (std::int64_t byte = 0; byte < row_bytes; byte += 64) prefetch(start + byte);
    }
  }

  const SweepSource<scalar_t>& source_;
  const SegmentPlan& plan_;
  std::int64_t capacity_;
  std::vector<sum_t> sums_;
  std::vector<std::int64_t> held_;  // the segment each cache entry holds, -1 for none
  Task task_{};
};

// At most this many segments are added to a window in one pass over it.
constexpr std::int64_t kMaxSegmentsAtOnce = 8;

// One sweep's window sum [groups, nodes, slice_width] in float64, holding segments [left, entered).
struct SlidingWindow {
  std::vector<double> sum;
  std::int64_t left = 0, entered = 0;
};

// window += sign * (segments from..to-1), by runs of consecutive segments no longer than the cache,
// so that fetching one never evicts another of its run.
template <typename scalar_t>
void add_segment_range(std::vector<double>& window, std::int64_t from, std::int64_t to, double sign,
                       SegmentCache<scalar_t>& cache, std::vector<const SumType<scalar_t>*>& terms) {
  const std::int64_t max_terms = std::min(kMaxSegmentsAtOnce, cache.capacity());
  while (from < to) {
    terms.clear();
    for (; from < to && static_cast<std::int64_t>(terms.size()) < max_terms; ++from) {
      terms.push_back(cache.segment_sum(from));
    }
    add_segments(window.data(), terms, sign, static_cast<std::int64_t>(window.size()));
  }
}

template <typename scalar_t>
class FusedSweep {
 public:
  using sum_t = SumType<scalar_t>;

  FusedSweep(const SweepSource<scalar_t>& source, const std::vector<WindowSweep>& sweeps, const SegmentPlan& plan,
             const std::vector<torch::Tensor>& outputs)
      : source_(source), sweeps_(sweeps), plan_(plan), outputs_(outputs) {
    for (const WindowSweep& sweep : sweeps) {
      counts_.push_back(sweep.counts.contiguous());
    }
  }

  // Runs every task; false when a NaN or infinity entered a window sum.
  bool run(std::int64_t num_leading) const {
    // The cache holds at most about 4 MiB, and never more than the plan's lookback.
    const std::int64_t cache_size = std::clamp<std::int64_t>(
        (std::int64_t{4} << 20) / (source_.slots * static_cast<std::int64_t>(sizeof(sum_t))), 1, plan_.lookback);
    std::atomic<bool> every_sum_finite{true};
    at::parallel_for(0, num_leading * source_.slices, 1, [&](std::int64_t begin, std::int64_t end) {
      SegmentCache<scalar_t> cache(source_, plan_, cache_size);
      std::vector<SlidingWindow> windows(sweeps_.size(), SlidingWindow{std::vector<double>(source_.slots)});
      std::vector<double> scratch((2 * source_.num_nodes + 1) * source_.slice_width);
      for (std::int64_t t = begin; t < end; ++t) {
        const std::int64_t slice = t % source_.slices, lo = slice * source_.slice_width;
        const Task task{t / source_.slices, slice, lo,
                        std::max<std::int64_t>(0, std::min(source_.hidden, lo + source_.slice_width) - lo)};
        if (!run_task(task, cache, windows, scratch)) every_sum_finite = false;
      }
    });
    return every_sum_finite;
  }

 private:
  bool run_task(const Task& task, SegmentCache<scalar_t>& cache, std::vector<SlidingWindow>& windows,
                std::vector<double>& scratch) const {
    cache.start(task);
    std::vector<const sum_t*> terms;
    bool sums_finite = true;
    for (SlidingWindow& window : windows) {
      std::fill(window.sum.begin(), window.sum.end(), 0.0);
      window.left = window.entered = 0;
    }
    for (const SegmentPlan::Window& closing : plan_.closing_order) {
      SlidingWindow& window = windows[closing.sweep];
      const std::int64_t first = plan_.first_segment[closing.sweep][closing.index];
      if (closing.end_segment - first < (first - window.left) + (closing.end_segment - window.entered)) {
        // Summing the window afresh, from an exact zero, adds fewer segments than sliding the
        // last one here (always so when they do not overlap). A NaN or infinity that entered a
        // window stays in its sum (x - x is NaN for both) until then.
        sums_finite = sums_finite && all_finite(window.sum);
        std::fill(window.sum.begin(), window.sum.end(), 0.0);
        window.entered = window.left = first;
      }
      add_segment_range(window.sum, window.left, first, -1.0, cache, terms);
      add_segment_range(window.sum, window.entered, closing.end_segment, 1.0, cache, terms);
      window.left = first;
      window.entered = closing.end_segment;
      write_outputs(task, closing, window.sum, scratch);
    }
    for (const SlidingWindow& window : windows) sums_finite = sums_finite && all_finite(window.sum);
    return sums_finite;
  }

  // The class means, or the energy sums, of one window of one sweep from its window sum.
  void write_outputs(const Task& task, const SegmentPlan::Window& closing, const std::vector<double>& sum,
                     std::vector<double>& scratch) const {
    const std::int64_t r = closing.sweep, s = closing.index, num_nodes = source_.num_nodes;
    const std::int64_t num_groups = source_.num_groups, slice_width = source_.slice_width;
    const auto num_snapshots = static_cast<std::int64_t>(plan_.end_segment[r].size());
    const WindowSweep& sweep = sweeps_[r];
    for (std::int64_t group = 0; group < num_groups; ++group) {
      const std::int64_t* count = counts_[r].data_ptr<std::int64_t>() + (group * num_snapshots + s) * num_nodes;
      const double* group_sum = sum.data() + group * num_nodes * slice_width;
      if (sweep.output == WindowSweep::Output::ClassMeans) {
        sum_t* means = outputs_[r].data_ptr<sum_t>();
        for (std::int64_t k = 0; k < num_nodes; ++k) {
          // Sums of absent nodes are only nearly 0 after rounding: their means are NaN.
          write_mean(
              means + (((task.leading * num_groups + group) * num_snapshots + s) * num_nodes + k) * source_.hidden +
                  task.lo,
              group_sum + k * slice_width, count[k], task.width);
        }
      } else if (std::all_of(count, count + num_nodes, [](std::int64_t n) { return n > 0; })) {
        const std::int64_t sums_width = energy_sums_width(sweep, num_nodes);
        double* energy_sums =
            outputs_[r].data_ptr<double>() +
            (((task.leading * source_.slices + task.slice) * num_groups + group) * num_snapshots + s) * sums_width;
        add_energy_sums(energy_sums, group_sum, slice_width, count, num_nodes, task.width, sweep, scratch);
      }
    }
  }

  const SweepSource<scalar_t>& source_;
  const std::vector<WindowSweep>& sweeps_;
  const SegmentPlan& plan_;
  const std::vector<torch::Tensor>& outputs_;
  std::vector<torch::Tensor> counts_;  // each sweep's counts, contiguous
};

// Tasks split the hidden dimension too when there are fewer leading indices than threads, so that
// one layer still uses every core; each task owns its slice of the output.
std::int64_t hidden_slices(std::int64_t num_leading, std::int64_t hidden) {
  const std::int64_t target_tasks = 4 * at::get_num_threads();
  return std::clamp<std::int64_t>((target_tasks + num_leading - 1) / num_leading, 1, (hidden + 63) / 64);
}

}  // namespace

SweepResults sweep_windows_on_cpu(const torch::Tensor& source, const torch::Tensor& nodes, std::int64_t num_nodes,
                                  bool per_sequence, const std::vector<WindowSweep>& sweeps) {
  const std::int64_t num_leading = source.size(0), batch = source.size(1), hidden = source.size(3);
  const std::int64_t num_groups = per_sequence ? batch : 1;
  SweepResults results;
  const torch::Tensor rows = source.contiguous(), node_ids = nodes.contiguous();
  // Residuals with no leading entries (a run that captured no layer) have nothing to sweep.
  const std::int64_t slices = num_leading > 0 ? hidden_slices(num_leading, hidden) : 1;
  for (const WindowSweep& sweep : sweeps) {
    const auto num_snapshots = static_cast<std::int64_t>(sweep.windows.ends.size());
    results.outputs.push_back(sweep.output == WindowSweep::Output::ClassMeans
                                  ? empty_means(source, num_groups, num_snapshots, num_nodes)
                                  : torch::zeros({num_leading, slices, num_groups, num_snapshots,
                                                  energy_sums_width(sweep, num_nodes)},
                                                 source.options().dtype(torch::kFloat64)));
  }
  if (source.numel() == 0) {
    // No sequence (batch 0): every node is absent from every window.
    for (torch::Tensor& output : results.outputs) output.fill_(kNaN);
  } else {
    const SegmentPlan plan = plan_segments(sweeps);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rows.scalar_type(), "sweep_windows_on_cpu", [&] {
      const std::int64_t slice_width = (hidden + slices - 1) / slices;
      const SweepSource<scalar_t> input{rows.data_ptr<scalar_t>(), node_ids.data_ptr<std::int64_t>(),
                                        batch, source.size(2), hidden, num_nodes, per_sequence, num_groups, slices,
                                        slice_width, num_groups * num_nodes * slice_width};
      results.finite = FusedSweep<scalar_t>(input, sweeps, plan, results.outputs).run(num_leading);
    });
  }
  for (std::size_t r = 0; r < sweeps.size(); ++r) {
    if (sweeps[r].output == WindowSweep::Output::EnergySums) {
      results.outputs[r] = nan_where_a_node_is_absent(results.outputs[r].sum(1), sweeps[r].counts);
    }
  }
  return results;
}

}  // namespace icgt::detail
