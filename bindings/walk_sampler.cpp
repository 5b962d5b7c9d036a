#include "icgt/walk_sampler.hpp"

#include "bindings.hpp"
#include "icgt/errors.hpp"

namespace icgt::python {
namespace {

WalkSampler::Start parse_start(const std::string& start) {
  if (start == "uniform") return WalkSampler::Start::Uniform;
  if (start == "per_node") return WalkSampler::Start::PerNode;
  throw ValueError("WalkSampler.random_walks: start must be 'uniform' or 'per_node', got '" + start + "'");
}

}  // namespace

void register_walk_sampler(py::module_& m) {
  py::class_<WalkSampler>(m, "WalkSampler", R"doc(Node sequences from a Graph, seeded and reproducible.

The generator is icgt's own (xoshiro256** seeded by SplitMix64, bounded draws by Lemire's
method; see docs/architecture.md), so a seed gives the same sequences everywhere, from C++
and from Python. Successive calls continue one stream.

Example:
    >>> import icgt
    >>> sampler = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0)
    >>> walks = sampler.random_walks(16, 1400, start="per_node")
    >>> walks.shape, walks[:, 0].tolist() == list(range(16))
    ((16, 1400), True)
)doc")
      .def(py::init([](Graph graph, const py::handle& seed) {
             return WalkSampler(std::move(graph), integer_argument<std::uint64_t>(seed, "WalkSampler", "seed"));
           }),
           py::arg("graph"), py::arg("seed") = 0)
      .def_property_readonly("graph", &WalkSampler::graph)
      .def_property_readonly("seed", &WalkSampler::seed)
      .def(
          "random_walks",
          [](WalkSampler& sampler, const py::handle& batch, const py::handle& length, const std::string& start) {
            return numpy_view(
                sampler.random_walks(integer_argument<std::int64_t>(batch, "WalkSampler.random_walks", "batch", 1),
                                     integer_argument<std::int64_t>(length, "WalkSampler.random_walks", "length", 1),
                                     parse_start(start)));
          },
          py::arg("batch"), py::arg("length"), py::arg("start") = "uniform",
          R"doc(batch x length int64 array of node indices.

Each step moves to a uniformly drawn neighbour (stepping back allowed). start="uniform"
draws each start node; start="per_node" starts walk b at node b mod n.

>>> icgt.WalkSampler(icgt.Graph.ring(10), seed=1).random_walks(2, 5).shape
(2, 5)
)doc")
      .def(
          "neighbour_pairs",
          [](WalkSampler& sampler, const py::handle& batch, const py::handle& num_pairs, bool with_separator) {
            auto pairs = sampler.neighbour_pairs(
                integer_argument<std::int64_t>(batch, "WalkSampler.neighbour_pairs", "batch", 1),
                integer_argument<std::int64_t>(num_pairs, "WalkSampler.neighbour_pairs", "num_pairs", 1),
                with_separator);
            return py::make_tuple(numpy_view(pairs.nodes), numpy_view(pairs.scored));
          },
          py::arg("batch"), py::arg("num_pairs"), py::arg("with_separator") = false,
          R"doc((nodes, scored): pairs of a uniform node and a uniform neighbour of it.

nodes is batch x (2 or 3) * num_pairs int64, with -1 (icgt.NOT_A_NODE) at separator
positions when with_separator. scored is a bool array of the same shape, true at the first
word of each pair: where the prediction of the next word counts for accuracy.

>>> nodes, scored = icgt.WalkSampler(icgt.Graph.ring(10), seed=1).neighbour_pairs(1, 2, True)
>>> nodes.shape, scored[0].tolist()
((1, 6), [True, False, False, True, False, False])
)doc")
      .def("__repr__", [](const WalkSampler& s) {
        return py::str("WalkSampler(graph={}, seed={})").format(py::cast(s.graph()), s.seed());
      });
  m.attr("NOT_A_NODE") = kNotANode;
}

}  // namespace icgt::python
