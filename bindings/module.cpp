#include "bindings.hpp"

PYBIND11_MODULE(_icgt, m) {
  m.doc() = R"doc(icgt's C++ core. Use it through the `icgt` package:

    >>> import icgt
    >>> grid = icgt.Graph.square_grid(4, 4)
    >>> icgt.WalkSampler(grid, seed=0).random_walks(16, 1400, start="per_node").shape
    (16, 1400)
)doc";
  icgt::python::register_errors();
  icgt::python::register_graph(m);
  icgt::python::register_walk_sampler(m);
  icgt::python::register_probe_result(m);
  icgt::python::register_activation_probe(m);
  icgt::python::register_representation_stats(m);
  icgt::python::register_energy_metrics(m);
}
