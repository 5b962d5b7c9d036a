#include "icgt/walk_sampler.hpp"

#include <fmt/format.h>

#include <vector>

#include "icgt/errors.hpp"
#include "random.hpp"
#include "tensor_checks.hpp"

namespace icgt {
namespace {

void check_positive(std::int64_t value, const char* name, const char* method) {
  if (value <= 0) {
    throw ValueError(fmt::format("WalkSampler.{}: {} must be positive, got {}", method, name, value));
  }
}

}  // namespace

WalkSampler::WalkSampler(Graph graph, std::uint64_t seed)
    : graph_(std::move(graph)), seed_(seed), generator_(std::make_unique<RandomGenerator>(seed)) {
  for (int node = 0; node < graph_.num_nodes(); ++node) {
    if (graph_.degree(node) == 0) {
      throw ValueError(fmt::format("WalkSampler: node {} ('{}') has no neighbour, so a walk there could not "
                                   "step; every node needs at least one edge",
                                   node, graph_.labels()[node]));
    }
  }
}

WalkSampler::~WalkSampler() = default;
WalkSampler::WalkSampler(WalkSampler&&) noexcept = default;
WalkSampler& WalkSampler::operator=(WalkSampler&&) noexcept = default;

torch::Tensor WalkSampler::random_walks(std::int64_t batch, std::int64_t length, Start start) {
  check_positive(batch, "batch", "random_walks");
  check_positive(length, "length", "random_walks");
  detail::check_memory(8.0 * static_cast<double>(batch) * static_cast<double>(length), "WalkSampler.random_walks",
                       fmt::format("a {} x {} int64 walk array", batch, length));
  // Flat neighbour lists: the step loop then touches two small arrays and nothing else.
  std::vector<std::uint32_t> offsets{0}, flat;
  for (int node = 0; node < graph_.num_nodes(); ++node) {
    for (int next : graph_.neighbours(node)) flat.push_back(static_cast<std::uint32_t>(next));
    offsets.push_back(static_cast<std::uint32_t>(flat.size()));
  }
  const auto num_nodes = static_cast<std::uint32_t>(graph_.num_nodes());
  torch::Tensor walks = torch::empty({batch, length}, torch::kInt64);
  auto* out = walks.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < batch; ++b) {
    std::uint32_t node = start == Start::PerNode ? static_cast<std::uint32_t>(b % num_nodes)
                                                 : generator_->bounded(num_nodes);
    *out++ = node;
    for (std::int64_t t = 1; t < length; ++t) {
      node = flat[offsets[node] + generator_->bounded(offsets[node + 1] - offsets[node])];
      *out++ = node;
    }
  }
  return walks;
}

WalkSampler::NeighbourPairs WalkSampler::neighbour_pairs(std::int64_t batch, std::int64_t num_pairs,
                                                         bool with_separator) {
  check_positive(batch, "batch", "neighbour_pairs");
  check_positive(num_pairs, "num_pairs", "neighbour_pairs");
  const std::int64_t stride = with_separator ? 3 : 2;
  detail::check_memory(9.0 * static_cast<double>(batch) * static_cast<double>(num_pairs) * stride,
                       "WalkSampler.neighbour_pairs", fmt::format("{} sequences of {} pairs", batch, num_pairs));
  const auto num_nodes = static_cast<std::uint32_t>(graph_.num_nodes());
  NeighbourPairs pairs{torch::full({batch, num_pairs * stride}, kNotANode, torch::kInt64),
                       torch::zeros({batch, num_pairs * stride}, torch::kBool)};
  auto nodes = pairs.nodes.accessor<std::int64_t, 2>();
  auto scored = pairs.scored.accessor<bool, 2>();
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t p = 0; p < num_pairs; ++p) {
      const int first = static_cast<int>(generator_->bounded(num_nodes));
      const auto& next = graph_.neighbours(first);
      nodes[b][p * stride] = first;
      nodes[b][p * stride + 1] = next[generator_->bounded(static_cast<std::uint32_t>(next.size()))];
      scored[b][p * stride] = true;
    }
  }
  return pairs;
}

}  // namespace icgt
