#pragma once
// WalkSampler: the node sequences that become the in-context text.

#include <torch/types.h>

#include <cstdint>
#include <memory>

#include "icgt/export.hpp"
#include "icgt/graph.hpp"

namespace icgt {

class RandomGenerator;

/// Node sequences drawn from a Graph with icgt's own seeded generator (documented in
/// docs/architecture.md), so that one seed gives the same sequences on every platform and from
/// C++ and Python alike. Draws continue one stream: two calls give different sequences.
///
/// Example:
///   icgt::WalkSampler sampler(icgt::Graph::square_grid(4, 4), /*seed=*/0);
///   torch::Tensor walks = sampler.random_walks(16, 1400, icgt::WalkSampler::Start::PerNode);  // 16 x 1400
class ICGT_API WalkSampler {
 public:
  /// Where the walks of a batch start.
  enum class Start {
    Uniform,  ///< a node drawn uniformly at random for each walk
    PerNode,  ///< walk b starts at node b mod n, as the paper's batch of one walk per node
  };

  /// Pairs in neighbour-pair mode: node sequences and the positions that count for accuracy.
  struct NeighbourPairs {
    torch::Tensor nodes;   ///< int64, batch x length; kNotANode where a separator stands
    torch::Tensor scored;  ///< bool, same shape: true where the prediction of the next word counts
  };

  /// Every node of the graph must have a neighbour, since a walk must always be able to step.
  WalkSampler(Graph graph, std::uint64_t seed);
  ~WalkSampler();
  WalkSampler(WalkSampler&&) noexcept;
  WalkSampler& operator=(WalkSampler&&) noexcept;

  const Graph& graph() const { return graph_; }
  std::uint64_t seed() const { return seed_; }

  /// batch x length node indices (int64, CPU). Each step moves to a neighbour of the current node
  /// drawn uniformly; stepping back is allowed.
  torch::Tensor random_walks(std::int64_t batch, std::int64_t length, Start start = Start::Uniform);

  /// Sequences of num_pairs pairs: a node drawn uniformly, then one of its neighbours drawn uniformly,
  /// followed by a separator position (kNotANode) when with_separator. The first word of each pair
  /// is scored: the word after it must be a neighbour.
  NeighbourPairs neighbour_pairs(std::int64_t batch, std::int64_t num_pairs, bool with_separator);

 private:
  Graph graph_;
  std::uint64_t seed_;
  std::unique_ptr<RandomGenerator> generator_;
};

}  // namespace icgt
