#pragma once
// Graph: the topology whose structure the context imposes on the concept words.

#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "icgt/export.hpp"

namespace icgt {

/// The node label of a position that holds no node (BOS, a separator). Used in node sequences.
constexpr std::int64_t kNotANode = -1;

/// An undirected simple graph (no self-loops, no multi-edges) on nodes 0..n-1, each with a label.
///
/// Builders reproduce the node order of the matching networkx generator, so node i here is
/// `list(G.nodes())[i]` there. Labels default to "0", "1", ... and must be unique.
///
/// Example:
///   auto grid = icgt::Graph::square_grid(4, 4);     // 16 nodes, 24 edges, row-major
///   grid.set_labels({"apple", "bird", ...});          // 16 concept words
///   auto [values, vectors] = grid.spectral_embedding(2);  // z2, z3 and their eigenvalues
class ICGT_API Graph {
 public:
  using Edge = std::pair<int, int>;

  /// The k Laplacian eigenvectors of the smallest non-zero eigenvalues (columns, unit norm,
  /// sign fixed so that the first entry of clearly non-zero size is positive) and those eigenvalues,
  /// ascending.
  struct SpectralEmbedding {
    Eigen::VectorXd eigenvalues;
    Eigen::MatrixXd eigenvectors;
  };

  /// rows x cols lattice, 4-neighbourhood, no wrap-around, row-major (networkx grid_2d_graph).
  static Graph square_grid(int rows, int cols);
  /// Cycle on n >= 3 nodes: i is linked to i-1 and i+1 mod n (networkx cycle_graph).
  static Graph ring(int n);
  /// Honeycomb with rows x cols hexagons (networkx hexagonal_lattice_graph(rows, cols)).
  static Graph hexagonal_lattice(int rows, int cols);
  /// Triangular lattice (networkx triangular_lattice_graph(rows, cols)).
  static Graph triangular_lattice(int rows, int cols);
  /// Any graph from its edge list; self-loops and repeated edges are errors.
  static Graph from_edges(int num_nodes, const std::vector<Edge>& edges);
  /// Any graph from a symmetric 0/1 adjacency matrix with a zero diagonal.
  static Graph from_adjacency(const Eigen::MatrixXd& adjacency);

  int num_nodes() const { return static_cast<int>(neighbours_.size()); }
  int num_edges() const { return static_cast<int>(edges_.size()); }
  /// Each undirected edge once as (i, j) with i < j, sorted.
  const std::vector<Edge>& edges() const { return edges_; }
  /// The neighbours of a node, ascending.
  const std::vector<int>& neighbours(int node) const;
  /// The number of neighbours of a node.
  int degree(int node) const;
  bool is_connected() const;
  /// All-pairs shortest-path lengths in edges; -1 where no path exists.
  Eigen::MatrixXi shortest_path_lengths() const;

  Eigen::MatrixXd adjacency() const;
  Eigen::SparseMatrix<double> sparse_adjacency() const;
  /// Combinatorial Laplacian D - A.
  Eigen::MatrixXd laplacian() const;
  /// Symmetric normalised Laplacian D^-1/2 (D - A) D^-1/2 (rows of isolated nodes are zero).
  Eigen::MatrixXd normalized_laplacian() const;
  /// See SpectralEmbedding. Skips one zero eigenvalue per connected component.
  SpectralEmbedding spectral_embedding(int k, bool normalized = false) const;

  const std::vector<std::string>& labels() const { return labels_; }
  /// Replaces all labels: exactly num_nodes() of them, all distinct and non-empty.
  void set_labels(std::vector<std::string> labels);
  /// The node with this label.
  int node_of(const std::string& label) const;

 private:
  Graph(int num_nodes, const std::vector<Edge>& edges, const char* builder);
  /// ValueError naming the method unless node is in 0..num_nodes()-1.
  void check_node(int node, const char* method) const;

  std::vector<std::vector<int>> neighbours_;
  std::vector<Edge> edges_;
  std::vector<std::string> labels_;
};

}  // namespace icgt
