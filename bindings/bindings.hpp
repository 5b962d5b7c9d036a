#pragma once
// One register_*() per bound class, called from module.cpp.

#include <torch/csrc/utils/pybind.h>
#include <pybind11/eigen.h>
#include <pybind11/stl.h>

namespace icgt::python {

namespace py = pybind11;

void register_errors();
void register_graph(py::module_& m);
void register_walk_sampler(py::module_& m);
void register_activation_probe(py::module_& m);
void register_representation_stats(py::module_& m);
void register_energy_metrics(py::module_& m);

/// A numpy array that shares the memory of a CPU tensor (and keeps it alive).
inline py::object numpy_view(const at::Tensor& tensor) { return py::cast(tensor).attr("numpy")(); }

}  // namespace icgt::python
