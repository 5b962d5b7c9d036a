#include <catch2/catch.hpp>
#include <cmath>

#include "icgt/errors.hpp"
#include "icgt/graph.hpp"

using icgt::Graph;
using Catch::Matchers::Contains;

TEST_CASE("square grid: counts, neighbours and Manhattan distances") {
  const Graph grid = Graph::square_grid(4, 4);
  CHECK(grid.num_nodes() == 16);
  CHECK(grid.num_edges() == 24);
  CHECK(grid.neighbours(0) == std::vector<int>{1, 4});
  CHECK(grid.neighbours(5) == std::vector<int>{1, 4, 6, 9});
  CHECK(grid.is_connected());
  const Eigen::MatrixXi distances = grid.shortest_path_lengths();
  for (int a = 0; a < 16; ++a) {
    for (int b = 0; b < 16; ++b) {
      CHECK(distances(a, b) == std::abs(a / 4 - b / 4) + std::abs(a % 4 - b % 4));
    }
  }
}

TEST_CASE("ring Laplacian eigenvalues are 2 - 2 cos(2 pi k / n)") {
  const int n = 10;
  const Graph ring = Graph::ring(n);
  CHECK(ring.num_edges() == n);
  const auto embedding = ring.spectral_embedding(4);
  const double expected[] = {1, 1, 2, 2};
  for (int i = 0; i < 4; ++i) {
    CHECK(embedding.eigenvalues(i) == Approx(2 - 2 * std::cos(2 * M_PI * expected[i] / n)));
  }
  // Eigenvectors: unit norm, orthogonal to the constant vector, satisfying L z = lambda z.
  const Eigen::MatrixXd l = ring.laplacian();
  for (int i = 0; i < 4; ++i) {
    const Eigen::VectorXd z = embedding.eigenvectors.col(i);
    CHECK(z.norm() == Approx(1.0));
    CHECK(std::abs(z.sum()) < 1e-9);
    CHECK((l * z - embedding.eigenvalues(i) * z).norm() < 1e-9);
  }
}

TEST_CASE("Laplacians: rows of D - A sum to zero, normalised one has unit diagonal") {
  const Graph hex = Graph::hexagonal_lattice(3, 3);
  CHECK(hex.num_nodes() == 30);
  CHECK(hex.laplacian().rowwise().sum().cwiseAbs().maxCoeff() < 1e-12);
  const Eigen::MatrixXd normalized = hex.normalized_laplacian();
  CHECK((normalized.diagonal().array() - 1.0).abs().maxCoeff() < 1e-12);
  CHECK(Eigen::MatrixXd(hex.sparse_adjacency()) == hex.adjacency());
}

TEST_CASE("a disconnected graph skips one zero eigenvalue per component") {
  const Graph two_paths = Graph::from_edges(4, {{0, 1}, {2, 3}});
  CHECK_FALSE(two_paths.is_connected());
  CHECK(two_paths.shortest_path_lengths()(0, 2) == -1);
  const auto embedding = two_paths.spectral_embedding(2);
  CHECK(embedding.eigenvalues(0) == Approx(2.0));
  CHECK_THROWS_AS(two_paths.spectral_embedding(3), icgt::ValueError);
}

TEST_CASE("from_adjacency reproduces the edges") {
  const Graph grid = Graph::square_grid(3, 5);
  const Graph copy = Graph::from_adjacency(grid.adjacency());
  CHECK(copy.edges() == grid.edges());
}

TEST_CASE("labels: set, read and look up") {
  Graph ring = Graph::ring(3);
  CHECK(ring.labels() == std::vector<std::string>{"0", "1", "2"});
  ring.set_labels({"apple", "bird", "car"});
  CHECK(ring.node_of("bird") == 1);
  CHECK_THROWS_WITH(ring.node_of("dog"), Contains("no node is labelled 'dog'"));
  CHECK_THROWS_WITH(ring.set_labels({"a", "b"}), Contains("got 2 labels for 3 nodes"));
  CHECK_THROWS_WITH(ring.set_labels({"a", "b", "a"}), Contains("'a' is used twice"));
  CHECK_THROWS_WITH(ring.set_labels({"a", "", "c"}), Contains("empty"));
}

TEST_CASE("bad input is a ValueError that says what was wrong") {
  CHECK_THROWS_WITH(Graph::square_grid(0, 4), Contains("rows must be positive, got 0"));
  CHECK_THROWS_WITH(Graph::ring(2), Contains("at least 3 nodes"));
  CHECK_THROWS_WITH(Graph::hexagonal_lattice(3, -1), Contains("cols must be positive"));
  CHECK_THROWS_WITH(Graph::triangular_lattice(0, 1), Contains("rows must be positive"));
  CHECK_THROWS_WITH(Graph::from_edges(3, {{0, 3}}), Contains("edge (0, 3) names a node outside 0..2"));
  CHECK_THROWS_WITH(Graph::from_edges(3, {{1, 1}}), Contains("self-loop at node 1"));
  CHECK_THROWS_WITH(Graph::from_edges(3, {{0, 1}, {1, 0}}), Contains("given twice"));
  CHECK_THROWS_WITH(Graph::from_edges(0, {}), Contains("num_nodes must be positive"));
  CHECK_THROWS_WITH(Graph::square_grid(65536, 65536), Contains("4294967296 nodes; icgt graphs hold at most"));
  CHECK_THROWS_WITH(Graph::ring(2147483647), Contains("GiB of memory, more than this machine's"));
  CHECK_THROWS_WITH(Graph::from_adjacency(Eigen::MatrixXd::Zero(2, 3)), Contains("square"));
  Eigen::MatrixXd asymmetric = Eigen::MatrixXd::Zero(2, 2);
  asymmetric(0, 1) = 1;
  CHECK_THROWS_WITH(Graph::from_adjacency(asymmetric), Contains("not symmetric"));
  CHECK_THROWS_WITH(Graph::from_adjacency(Eigen::MatrixXd::Constant(2, 2, 0.5)), Contains("expected 0 or 1"));
  CHECK_THROWS_WITH(Graph::from_adjacency(Eigen::MatrixXd::Identity(2, 2)), Contains("self-loop"));
  CHECK_THROWS_WITH(Graph::ring(4).neighbours(4), Contains("Graph.neighbours: node 4 does not exist"));
  CHECK_THROWS_WITH(Graph::ring(4).degree(-1), Contains("Graph.degree: node -1 does not exist"));
  CHECK_THROWS_AS(Graph::ring(4).spectral_embedding(0), icgt::ValueError);
}
