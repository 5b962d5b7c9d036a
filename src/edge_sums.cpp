#include "edge_sums.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "vector_loops.hpp"

namespace icgt::detail {
namespace {

// For float32 representations, with an AVX2 copy.
ICGT_WITH_AVX2_CLONE double squared_distance(const float* __restrict__ a, const float* __restrict__ b,
                                             std::int64_t d) {
  double sum = 0;  // each term in float32, as the activations; thousands of them summed in float64
  for (std::int64_t h = 0; h < d; ++h) {
    const float difference = a[h] - b[h];
    sum += static_cast<double>(difference * difference);
  }
  return sum;
}

}  // namespace

torch::Tensor edge_square_sums(const torch::Tensor& x, const std::vector<std::pair<int, int>>& edges) {
  if (!x.device().is_cpu()) return edge_square_sums_by_tensor_ops(x, edges);
  // One parallel region for the whole batch: LibTorch operations edge by edge would each wait on
  // every thread, and read the representations once per edge end.
  const torch::Tensor rows = x.contiguous();
  const std::int64_t n = x.size(-2), d = x.size(-1);
  torch::Tensor sums = torch::empty(x.sizes().slice(0, x.dim() - 2), x.options());
  const std::int64_t count = sums.numel();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_square_sums", [&] {
    const scalar_t* in = rows.data_ptr<scalar_t>();
    scalar_t* out = sums.data_ptr<scalar_t>();
    at::parallel_for(0, count, 16, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t g = begin; g < end; ++g) {
        const scalar_t* nodes = in + g * n * d;
        double sum = 0;
        for (auto [i, j] : edges) sum += squared_distance(nodes + i * d, nodes + j * d, d);
        out[g] = static_cast<scalar_t>(sum);
      }
    });
  });
  return sums;
}

torch::Tensor edge_square_sums_by_tensor_ops(const torch::Tensor& x, const std::vector<std::pair<int, int>>& edges) {
  // One edge at a time into one buffer: no [..., edges, d] temporary, no fresh memory per edge.
  torch::Tensor sums = torch::zeros(x.sizes().slice(0, x.dim() - 2), x.options());
  torch::Tensor difference = torch::empty_like(x.select(-2, 0));
  for (auto [i, j] : edges) {
    torch::sub_out(difference, x.select(-2, i), x.select(-2, j));
    sums.add_(difference.square_().sum(-1));
  }
  return sums;
}

}  // namespace icgt::detail
