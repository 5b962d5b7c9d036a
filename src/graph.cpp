#include "icgt/graph.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <set>
#include <unordered_set>

#include "icgt/errors.hpp"
#include "tensor_checks.hpp"

namespace icgt {
namespace {

void check_positive(int value, const char* name, const char* builder) {
  if (value <= 0) {
    throw ValueError(fmt::format("Graph.{}: {} must be positive, got {}", builder, name, value));
  }
}

// Refuses a graph whose node count overflows int or whose lists would not fit in memory, before
// its edge list is built. Per node: its neighbour list and label; per edge: the edge, two list
// entries and the duplicate check's set node.
void check_graph_size(std::int64_t num_nodes, std::int64_t num_edges, const char* builder) {
  if (num_nodes > std::numeric_limits<int>::max()) {
    throw ValueError(fmt::format("Graph.{}: {} nodes; icgt graphs hold at most {} nodes", builder, num_nodes,
                                 std::numeric_limits<int>::max()));
  }
  detail::check_memory(64.0 * static_cast<double>(num_nodes) + 80.0 * static_cast<double>(num_edges),
                       "Graph." + std::string(builder),
                       fmt::format("a graph of {} nodes and {} edges", num_nodes, num_edges));
}

// Dense n x n matrices of doubles (adjacency, Laplacians, shortest paths).
void check_dense_size(int num_nodes, const char* method) {
  detail::check_memory(3.0 * 8.0 * static_cast<double>(num_nodes) * static_cast<double>(num_nodes),
                       "Graph." + std::string(method),
                       fmt::format("dense {} x {} matrices", num_nodes, num_nodes));
}

// Lattice nodes are named by (column, row) pairs, as in networkx; this numbers the kept ones in
// the order networkx inserts them and turns named edges into index edges.
class LatticeNumbering {
 public:
  LatticeNumbering(int num_cols, int num_rows) : num_rows_(num_rows), index_(num_cols * num_rows, -1) {}
  void keep(int col, int row) { index_[col * num_rows_ + row] = next_++; }
  int count() const { return next_; }
  void link(int col_a, int row_a, int col_b, int row_b, std::vector<Graph::Edge>& edges) const {
    const int a = index_[col_a * num_rows_ + row_a];
    const int b = index_[col_b * num_rows_ + row_b];
    if (a >= 0 && b >= 0) edges.emplace_back(a, b);
  }

 private:
  int num_rows_;
  std::vector<int> index_;
  int next_ = 0;
};

}  // namespace

Graph::Graph(int num_nodes, const std::vector<Edge>& edges, const char* builder) : neighbours_(num_nodes) {
  std::set<Edge> seen;
  for (auto [a, b] : edges) {
    if (a < 0 || a >= num_nodes || b < 0 || b >= num_nodes) {
      throw ValueError(fmt::format("Graph.{}: edge ({}, {}) names a node outside 0..{}", builder, a, b,
                                   num_nodes - 1));
    }
    if (a == b) {
      throw ValueError(fmt::format("Graph.{}: self-loop at node {}; icgt graphs have none", builder, a));
    }
    const Edge edge{std::min(a, b), std::max(a, b)};
    if (!seen.insert(edge).second) {
      throw ValueError(
          fmt::format("Graph.{}: edge ({}, {}) is given twice; each undirected edge once", builder, a, b));
    }
    neighbours_[a].push_back(b);
    neighbours_[b].push_back(a);
  }
  edges_.assign(seen.begin(), seen.end());
  for (auto& list : neighbours_) std::sort(list.begin(), list.end());
  labels_.reserve(num_nodes);
  for (int node = 0; node < num_nodes; ++node) labels_.push_back(std::to_string(node));
}

Graph Graph::square_grid(int rows, int cols) {
  check_positive(rows, "rows", "square_grid");
  check_positive(cols, "cols", "square_grid");
  check_graph_size(std::int64_t{rows} * cols, 2 * std::int64_t{rows} * cols, "square_grid");
  std::vector<Edge> edges;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const int node = r * cols + c;
      if (c + 1 < cols) edges.emplace_back(node, node + 1);
      if (r + 1 < rows) edges.emplace_back(node, node + cols);
    }
  }
  return Graph(rows * cols, edges, "square_grid");
}

Graph Graph::ring(int n) {
  if (n < 3) {
    throw ValueError(fmt::format("Graph.ring: needs at least 3 nodes (fewer would need a self-loop or a "
                                 "repeated edge), got {}",
                                 n));
  }
  check_graph_size(n, n, "ring");
  std::vector<Edge> edges;
  for (int node = 0; node < n; ++node) edges.emplace_back(node, (node + 1) % n);
  return Graph(n, edges, "ring");
}

Graph Graph::hexagonal_lattice(int rows, int cols) {
  check_positive(rows, "rows", "hexagonal_lattice");
  check_positive(cols, "cols", "hexagonal_lattice");
  check_graph_size((2 * std::int64_t{rows} + 2) * (std::int64_t{cols} + 1), 3 * (2 * std::int64_t{rows} + 2) * (std::int64_t{cols} + 1),
                   "hexagonal_lattice");
  // networkx: columns 0..cols, rows 0..2*rows+1, minus two corner nodes of degree one.
  const int num_rows = 2 * rows + 2;
  const int num_cols = cols + 1;
  const auto removed = [&](int col, int row) {
    return (col == 0 && row == num_rows - 1) || (col == cols && row == (num_rows - 1) * (cols % 2));
  };
  LatticeNumbering numbering(num_cols, num_rows);
  for (int col = 0; col < num_cols; ++col) {
    for (int row = 0; row < num_rows; ++row) {
      if (!removed(col, row)) numbering.keep(col, row);
    }
  }
  std::vector<Edge> edges;
  for (int col = 0; col < num_cols; ++col) {
    for (int row = 0; row + 1 < num_rows; ++row) numbering.link(col, row, col, row + 1, edges);
  }
  for (int col = 0; col < cols; ++col) {
    for (int row = 0; row < num_rows; ++row) {
      if (col % 2 == row % 2) numbering.link(col, row, col + 1, row, edges);
    }
  }
  return Graph(numbering.count(), edges, "hexagonal_lattice");
}

Graph Graph::triangular_lattice(int rows, int cols) {
  check_positive(rows, "rows", "triangular_lattice");
  check_positive(cols, "cols", "triangular_lattice");
  check_graph_size((std::int64_t{rows} + 1) * ((std::int64_t{cols} + 1) / 2 + 1),
                   3 * (std::int64_t{rows} + 1) * ((std::int64_t{cols} + 1) / 2 + 1), "triangular_lattice");
  // networkx: nodes (i, j) with i in 0..N (N = (cols+1)/2) and j in 0..rows, numbered row by row;
  // for odd cols the last node of every odd row is dropped.
  const int per_row = (cols + 1) / 2;
  const int num_cols = per_row + 1;
  const int num_rows = rows + 1;
  LatticeNumbering numbering(num_cols, num_rows);
  for (int j = 0; j < num_rows; ++j) {
    for (int i = 0; i < num_cols; ++i) {
      if (!(cols % 2 == 1 && i == per_row && j % 2 == 1)) numbering.keep(i, j);
    }
  }
  std::vector<Edge> edges;
  for (int j = 0; j < num_rows; ++j) {
    for (int i = 0; i < per_row; ++i) numbering.link(i, j, i + 1, j, edges);
  }
  for (int j = 0; j < rows; ++j) {
    for (int i = 0; i < num_cols; ++i) numbering.link(i, j, i, j + 1, edges);
  }
  for (int j = 1; j < rows; j += 2) {
    for (int i = 0; i < per_row; ++i) numbering.link(i, j, i + 1, j + 1, edges);
  }
  for (int j = 0; j < rows; j += 2) {
    for (int i = 0; i < per_row; ++i) numbering.link(i + 1, j, i, j + 1, edges);
  }
  return Graph(numbering.count(), edges, "triangular_lattice");
}

Graph Graph::from_edges(int num_nodes, const std::vector<Edge>& edges) {
  check_positive(num_nodes, "num_nodes", "from_edges");
  check_graph_size(num_nodes, static_cast<std::int64_t>(edges.size()), "from_edges");
  return Graph(num_nodes, edges, "from_edges");
}

Graph Graph::from_adjacency(const Eigen::MatrixXd& adjacency) {
  const auto n = adjacency.rows();
  if (n == 0 || adjacency.cols() != n) {
    throw ValueError(fmt::format("Graph.from_adjacency: expected a non-empty square matrix, got {} x {}", n,
                                 adjacency.cols()));
  }
  std::vector<Edge> edges;
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index j = 0; j < n; ++j) {
      const double value = adjacency(i, j);
      if (value != 0.0 && value != 1.0) {
        throw ValueError(fmt::format("Graph.from_adjacency: entry ({}, {}) is {}; expected 0 or 1", i, j, value));
      }
      if (value != adjacency(j, i)) {
        throw ValueError(fmt::format("Graph.from_adjacency: matrix is not symmetric at ({}, {})", i, j));
      }
      if (value == 1.0 && i <= j) edges.emplace_back(static_cast<int>(i), static_cast<int>(j));
    }
  }
  return Graph(static_cast<int>(n), edges, "from_adjacency");
}

void Graph::check_node(int node, const char* method) const {
  if (node < 0 || node >= num_nodes()) {
    throw ValueError(
        fmt::format("Graph.{}: node {} does not exist; nodes are 0..{}", method, node, num_nodes() - 1));
  }
}

const std::vector<int>& Graph::neighbours(int node) const {
  check_node(node, "neighbours");
  return neighbours_[node];
}

int Graph::degree(int node) const {
  check_node(node, "degree");
  return static_cast<int>(neighbours_[node].size());
}

Eigen::MatrixXi Graph::shortest_path_lengths() const {
  const int n = num_nodes();
  check_dense_size(n, "shortest_path_lengths");
  Eigen::MatrixXi distances = Eigen::MatrixXi::Constant(n, n, -1);
  std::queue<int> frontier;
  for (int source = 0; source < n; ++source) {
    distances(source, source) = 0;
    frontier.push(source);
    while (!frontier.empty()) {
      const int node = frontier.front();
      frontier.pop();
      for (int next : neighbours_[node]) {
        if (distances(source, next) < 0) {
          distances(source, next) = distances(source, node) + 1;
          frontier.push(next);
        }
      }
    }
  }
  return distances;
}

bool Graph::is_connected() const {
  std::vector<bool> reached(neighbours_.size(), false);
  std::queue<int> frontier;
  reached[0] = true;
  frontier.push(0);
  std::size_t count = 1;
  while (!frontier.empty()) {
    const int node = frontier.front();
    frontier.pop();
    for (int next : neighbours_[node]) {
      if (!reached[next]) {
        reached[next] = true;
        ++count;
        frontier.push(next);
      }
    }
  }
  return count == neighbours_.size();
}

Eigen::MatrixXd Graph::adjacency() const {
  check_dense_size(num_nodes(), "adjacency");
  Eigen::MatrixXd matrix = Eigen::MatrixXd::Zero(num_nodes(), num_nodes());
  for (auto [a, b] : edges_) matrix(a, b) = matrix(b, a) = 1.0;
  return matrix;
}

Eigen::SparseMatrix<double> Graph::sparse_adjacency() const {
  std::vector<Eigen::Triplet<double>> entries;
  entries.reserve(2 * edges_.size());
  for (auto [a, b] : edges_) {
    entries.emplace_back(a, b, 1.0);
    entries.emplace_back(b, a, 1.0);
  }
  Eigen::SparseMatrix<double> matrix(num_nodes(), num_nodes());
  matrix.setFromTriplets(entries.begin(), entries.end());
  return matrix;
}

Eigen::MatrixXd Graph::laplacian() const {
  const Eigen::MatrixXd a = adjacency();
  Eigen::MatrixXd l = -a;
  l.diagonal() = a.rowwise().sum();
  return l;
}

Eigen::MatrixXd Graph::normalized_laplacian() const {
  const Eigen::MatrixXd l = laplacian();
  const Eigen::VectorXd inverse_sqrt_degree =
      l.diagonal().unaryExpr([](double d) { return d > 0 ? 1.0 / std::sqrt(d) : 0.0; });
  return inverse_sqrt_degree.asDiagonal() * l * inverse_sqrt_degree.asDiagonal();
}

Graph::SpectralEmbedding Graph::spectral_embedding(int k, bool normalized) const {
  const int n = num_nodes();
  const Eigen::MatrixXd l = normalized ? normalized_laplacian() : laplacian();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(l);
  const Eigen::VectorXd& values = solver.eigenvalues();
  const double tolerance = 1e-9 * std::max(1.0, values.cwiseAbs().maxCoeff());
  int first = 0;
  while (first < n && values(first) <= tolerance) ++first;
  if (k <= 0 || first + k > n) {
    throw ValueError(fmt::format("Graph.spectral_embedding: k must be in 1..{} (nodes minus zero eigenvalues, "
                                 "one per connected component), got {}",
                                 n - first, k));
  }
  SpectralEmbedding embedding{values.segment(first, k), solver.eigenvectors().middleCols(first, k)};
  for (int c = 0; c < k; ++c) {
    auto column = embedding.eigenvectors.col(c);
    for (int i = 0; i < n; ++i) {
      if (std::abs(column(i)) > 1e-8) {
        if (column(i) < 0) column *= -1.0;
        break;
      }
    }
  }
  return embedding;
}

void Graph::set_labels(std::vector<std::string> labels) {
  if (static_cast<int>(labels.size()) != num_nodes()) {
    throw ValueError(
        fmt::format("Graph.set_labels: got {} labels for {} nodes; one per node", labels.size(), num_nodes()));
  }
  std::unordered_set<std::string> seen;
  for (const auto& label : labels) {
    if (label.empty()) throw ValueError("Graph.set_labels: a label is empty; labels must be non-empty");
    if (!seen.insert(label).second) {
      throw ValueError(fmt::format("Graph.set_labels: label '{}' is used twice; labels must be distinct",
                                   detail::escaped(label)));
    }
  }
  labels_ = std::move(labels);
}

int Graph::node_of(const std::string& label) const {
  const auto found = std::find(labels_.begin(), labels_.end(), label);
  if (found == labels_.end()) {
    throw ValueError(fmt::format("Graph.node_of: no node is labelled '{}'; labels are {}", detail::escaped(label),
                                 labels_));
  }
  return static_cast<int>(found - labels_.begin());
}

}  // namespace icgt
