#include "icgt/graph.hpp"

#include "bindings.hpp"

#include <string>

namespace icgt::python {
namespace {

bool is_text(const py::handle& value) { return PyUnicode_Check(value.ptr()) || PyBytes_Check(value.ptr()); }

/// repr() on one line and at most 60 characters (numpy wraps long arrays over several lines);
/// cut in Python, between characters, never inside one's UTF-8 bytes.
py::str short_repr(const py::handle& value) {
  py::str text = py::repr(value).attr("replace")("\n", " ").attr("replace")("\r", " ");
  if (py::len(text) > 60) text = py::str("{}...").format(text[py::slice(0, 57, 1)]);
  return text;
}

/// The edge list of Graph.from_edges: a sequence of (i, j) pairs of integers, each refused with a
/// one-line message naming the edge (a TypeError for a wrong type or shape, a ValueError for a node
/// outside 0..num_nodes-1, Python ints of any size included) instead of pybind11's overload listing.
std::vector<Graph::Edge> edge_list(const py::handle& edges, int num_nodes) {
  if (is_text(edges) || !PySequence_Check(edges.ptr())) {
    throw py::type_error(py::str("Graph.from_edges: edges must be a sequence of (i, j) pairs, got {}")
                             .format(py::type::of(edges).attr("__name__")));
  }
  const auto sequence = py::reinterpret_borrow<py::sequence>(edges);
  const std::size_t count = sequence.size();
  std::vector<Graph::Edge> result;
  result.reserve(count);
  for (std::size_t k = 0; k < count; ++k) {
    const py::object edge = sequence[k];
    if (is_text(edge) || !PySequence_Check(edge.ptr()) || py::len(edge) != 2) {
      throw py::type_error(
          py::str("Graph.from_edges: edge {} must be a pair (i, j) of node ids, got {}").format(k, short_repr(edge)));
    }
    const auto pair = py::reinterpret_borrow<py::sequence>(edge);
    const py::object ends[2] = {pair[0], pair[1]};
    for (const auto& end : ends) {
      if (PyBool_Check(end.ptr()) || !PyIndex_Check(end.ptr())) {
        throw py::type_error(py::str("Graph.from_edges: edge {} is {}; node ids must be integers, got {} ({})")
                                 .format(k, short_repr(edge), short_repr(end), py::type::of(end).attr("__name__")));
      }
    }
    const auto a = py::reinterpret_steal<py::int_>(PyNumber_Index(ends[0].ptr()));
    const auto b = a ? py::reinterpret_steal<py::int_>(PyNumber_Index(ends[1].ptr())) : py::int_();
    if (!a || !b) throw py::error_already_set();
    const py::int_ low(0), high(num_nodes - 1);
    if (a < low || a > high || b < low || b > high) {
      throw py::value_error(
          py::str("Graph.from_edges: edge ({}, {}) names a node outside 0..{}").format(a, b, num_nodes - 1));
    }
    result.emplace_back(a.cast<int>(), b.cast<int>());
  }
  return result;
}

}  // namespace

void register_graph(py::module_& m) {
  py::class_<Graph> graph(m, "Graph", R"doc(An undirected simple graph on nodes 0..n-1, each with a label.

Builders follow the node order of the matching networkx generator. Labels default to
"0", "1", ... and must be distinct.

Example:
    >>> import icgt
    >>> grid = icgt.Graph.square_grid(4, 4)
    >>> grid.num_nodes, grid.num_edges
    (16, 24)
    >>> grid.neighbours(5)
    [1, 4, 6, 9]
    >>> grid.spectral_embedding(2).eigenvectors.shape
    (16, 2)
)doc");

  py::class_<Graph::SpectralEmbedding>(graph, "SpectralEmbedding",
                                       "Laplacian eigenvectors of the smallest non-zero eigenvalues.")
      .def_readonly("eigenvalues", &Graph::SpectralEmbedding::eigenvalues, "The k eigenvalues, ascending.")
      .def_readonly("eigenvectors", &Graph::SpectralEmbedding::eigenvectors,
                    "n x k, one unit-norm eigenvector per column (z2, z3, ... for a connected graph).")
      .def("__repr__", [](const Graph::SpectralEmbedding& e) {
        return py::str("SpectralEmbedding(eigenvalues={})").format(py::cast(e.eigenvalues));
      });

  graph
      .def_static(
          "square_grid",
          [](const py::handle& rows, const py::handle& cols) {
            return Graph::square_grid(integer_argument<int>(rows, "Graph.square_grid", "rows", 1),
                                      integer_argument<int>(cols, "Graph.square_grid", "cols", 1));
          },
          py::arg("rows"), py::arg("cols"),
                  "rows x cols lattice, 4-neighbourhood, no wrap-around, row-major node order.\n\n"
                  ">>> icgt.Graph.square_grid(4, 4).num_edges\n24")
      .def_static(
          "ring", [](const py::handle& n) { return Graph::ring(integer_argument<int>(n, "Graph.ring", "n", 3)); },
          py::arg("n"),
                  "Cycle: node i is linked to i-1 and i+1 mod n (n >= 3).\n\n>>> icgt.Graph.ring(10).degree(0)\n2")
      .def_static(
          "hexagonal_lattice",
          [](const py::handle& rows, const py::handle& cols) {
            return Graph::hexagonal_lattice(integer_argument<int>(rows, "Graph.hexagonal_lattice", "rows", 1),
                                            integer_argument<int>(cols, "Graph.hexagonal_lattice", "cols", 1));
          },
          py::arg("rows"), py::arg("cols"),
                  "Honeycomb of rows x cols hexagons, as networkx.hexagonal_lattice_graph(rows, cols).\n\n"
                  ">>> icgt.Graph.hexagonal_lattice(3, 3).num_nodes\n30")
      .def_static(
          "triangular_lattice",
          [](const py::handle& rows, const py::handle& cols) {
            return Graph::triangular_lattice(integer_argument<int>(rows, "Graph.triangular_lattice", "rows", 1),
                                             integer_argument<int>(cols, "Graph.triangular_lattice", "cols", 1));
          },
          py::arg("rows"), py::arg("cols"),
                  "Triangular lattice, as networkx.triangular_lattice_graph(rows, cols).\n\n"
                  ">>> icgt.Graph.triangular_lattice(2, 3).num_edges\n13")
      .def_static(
          "from_edges",
          [](const py::handle& num_nodes, const py::handle& edges) {
            const int n = integer_argument<int>(num_nodes, "Graph.from_edges", "num_nodes", 1);
            return Graph::from_edges(n, edge_list(edges, n));
          },
          py::arg("num_nodes"), py::arg("edges"),
                  "Graph from an edge list of (i, j) pairs; self-loops and repeated edges raise ValueError.\n\n"
                  ">>> icgt.Graph.from_edges(3, [(0, 1), (1, 2)]).degree(1)\n2")
      .def_static("from_adjacency", &Graph::from_adjacency, py::arg("adjacency"),
                  "Graph from a symmetric 0/1 adjacency matrix with a zero diagonal.\n\n"
                  ">>> icgt.Graph.from_adjacency([[0, 1], [1, 0]]).num_edges\n1")
      .def_property_readonly("num_nodes", &Graph::num_nodes)
      .def_property_readonly("num_edges", &Graph::num_edges)
      .def_property_readonly("edges", &Graph::edges, "Each undirected edge once as (i, j), i < j, sorted.")
      .def("neighbours", &Graph::neighbours, py::arg("node"), "The neighbours of a node, ascending.")
      .def("degree", &Graph::degree, py::arg("node"))
      .def("is_connected", &Graph::is_connected)
      .def("shortest_path_lengths", &Graph::shortest_path_lengths,
           "n x n shortest-path lengths in edges; -1 where no path exists.")
      .def("adjacency", &Graph::adjacency, "Dense n x n 0/1 adjacency matrix.")
      .def("sparse_adjacency", &Graph::sparse_adjacency, "Adjacency as a scipy.sparse CSC matrix.")
      .def("laplacian", &Graph::laplacian, "Combinatorial Laplacian D - A.")
      .def("normalized_laplacian", &Graph::normalized_laplacian, "D^-1/2 (D - A) D^-1/2.")
      .def("spectral_embedding", &Graph::spectral_embedding, py::arg("k"), py::arg("normalized") = false,
           "The k Laplacian eigenvectors of the smallest non-zero eigenvalues, with those eigenvalues.\n\n"
           ">>> icgt.Graph.ring(10).spectral_embedding(2).eigenvalues.round(4)\narray([0.382, 0.382])")
      .def_property("labels", &Graph::labels, &Graph::set_labels,
                    "Node labels (the concept words), one per node, distinct. Assign a list to change them.")
      .def("node_of", &Graph::node_of, py::arg("label"), "The node with this label.")
      .def("__repr__", [](const Graph& g) {
        return py::str("Graph(num_nodes={}, num_edges={})").format(g.num_nodes(), g.num_edges());
      });
}

}  // namespace icgt::python
