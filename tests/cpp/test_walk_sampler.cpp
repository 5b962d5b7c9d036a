#include "catch_torch.hpp"
#include <map>
#include <set>

#include "icgt/errors.hpp"
#include "icgt/walk_sampler.hpp"

using icgt::Graph;
using icgt::WalkSampler;
using Catch::Matchers::Contains;

namespace {

bool is_edge(const Graph& graph, std::int64_t a, std::int64_t b) {
  const auto& next = graph.neighbours(static_cast<int>(a));
  return std::find(next.begin(), next.end(), static_cast<int>(b)) != next.end();
}

}  // namespace

TEST_CASE("every step of a walk is an edge") {
  const Graph hex = Graph::hexagonal_lattice(3, 3);
  WalkSampler sampler(hex, 3);
  const torch::Tensor walks = sampler.random_walks(8, 500);
  REQUIRE(walks.sizes() == torch::IntArrayRef{8, 500});
  const auto w = walks.accessor<std::int64_t, 2>();
  for (int b = 0; b < 8; ++b) {
    for (int t = 1; t < 500; ++t) CHECK(is_edge(hex, w[b][t - 1], w[b][t]));
  }
}

TEST_CASE("steps from a node are uniform over its neighbours") {
  const Graph grid = Graph::square_grid(4, 4);
  WalkSampler sampler(grid, 11);
  const torch::Tensor walks = sampler.random_walks(4, 50000);
  const auto w = walks.accessor<std::int64_t, 2>();
  std::map<std::pair<std::int64_t, std::int64_t>, double> transitions;
  std::map<std::int64_t, double> visits;
  for (int b = 0; b < 4; ++b) {
    for (int t = 1; t < 50000; ++t) {
      transitions[{w[b][t - 1], w[b][t]}] += 1;
      visits[w[b][t - 1]] += 1;
    }
  }
  // One chi-square per node; the 0.9999 quantiles for 1, 2 and 3 degrees of freedom.
  const double critical[] = {0, 15.14, 18.42, 21.11};
  for (int node = 0; node < 16; ++node) {
    const auto& next = grid.neighbours(node);
    const double expected = visits[node] / next.size();
    double chi_square = 0;
    for (int to : next) {
      const double observed = transitions[{node, to}];
      chi_square += (observed - expected) * (observed - expected) / expected;
    }
    INFO("node " << node);
    CHECK(chi_square < critical[next.size() - 1]);
  }
}

TEST_CASE("per-node start covers every node, uniform start is seeded") {
  WalkSampler sampler(Graph::ring(10), 5);
  const torch::Tensor walks = sampler.random_walks(20, 3, WalkSampler::Start::PerNode);
  for (int b = 0; b < 20; ++b) CHECK(walks[b][0].item<std::int64_t>() == b % 10);

  WalkSampler first(Graph::ring(10), 99), second(Graph::ring(10), 99);
  CHECK(torch::equal(first.random_walks(4, 100), second.random_walks(4, 100)));
  CHECK_FALSE(torch::equal(first.random_walks(4, 100), WalkSampler(Graph::ring(10), 98).random_walks(4, 100)));
}

TEST_CASE("neighbour pairs: first word uniform, second a neighbour, separators marked") {
  const Graph grid = Graph::square_grid(4, 4);
  WalkSampler sampler(grid, 2);
  const auto pairs = sampler.neighbour_pairs(3, 400, true);
  REQUIRE(pairs.nodes.sizes() == torch::IntArrayRef{3, 1200});
  const auto nodes = pairs.nodes.accessor<std::int64_t, 2>();
  const auto scored = pairs.scored.accessor<bool, 2>();
  std::set<std::int64_t> firsts;
  for (int b = 0; b < 3; ++b) {
    for (int p = 0; p < 400; ++p) {
      CHECK(is_edge(grid, nodes[b][3 * p], nodes[b][3 * p + 1]));
      CHECK(nodes[b][3 * p + 2] == icgt::kNotANode);
      CHECK(scored[b][3 * p]);
      CHECK_FALSE(scored[b][3 * p + 1]);
      CHECK_FALSE(scored[b][3 * p + 2]);
      firsts.insert(nodes[b][3 * p]);
    }
  }
  CHECK(firsts.size() == 16);
  CHECK(sampler.neighbour_pairs(1, 5, false).nodes.size(1) == 10);
}

TEST_CASE("bad walks are errors, not hangs") {
  CHECK_THROWS_WITH(WalkSampler(Graph::from_edges(3, {{0, 1}}), 0), Contains("node 2 ('2') has no neighbour"));
  WalkSampler sampler(Graph::ring(5), 0);
  CHECK_THROWS_WITH(sampler.random_walks(0, 10), Contains("batch must be positive, got 0"));
  CHECK_THROWS_WITH(sampler.random_walks(2, -1), Contains("length must be positive, got -1"));
  CHECK_THROWS_WITH(sampler.neighbour_pairs(2, 0, false), Contains("num_pairs must be positive"));
  CHECK_THROWS_WITH(sampler.random_walks(1000000, 1000000), Contains("int64 walk array would need about"));
  CHECK_THROWS_AS(sampler.neighbour_pairs(0, 2, false), icgt::ValueError);
}
