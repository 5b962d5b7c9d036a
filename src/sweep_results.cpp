#include "sweep_results.hpp"

#include "tensor_checks.hpp"

namespace icgt::detail {

RepresentationStats::ClassMeans class_means_result(const SweepInput& input, const WindowSweep& sweep,
                                                   const torch::Tensor& means, const std::vector<std::int64_t>& positions,
                                                   bool per_sequence) {
  std::vector<std::int64_t> mean_shape(input.leading_shape);
  if (per_sequence) mean_shape.push_back(input.rows.size(1));
  mean_shape.insert(mean_shape.end(),
                    {static_cast<std::int64_t>(positions.size()), sweep.counts.size(-1), input.rows.size(3)});
  return {means.reshape(mean_shape), per_sequence ? sweep.counts : sweep.counts.squeeze(0),
          int64_tensor(positions, input.rows.device())};
}

}  // namespace icgt::detail
