#pragma once
// One register_*() per bound class, called from module.cpp.

#include <torch/csrc/utils/pybind.h>
#include <pybind11/eigen.h>
#include <pybind11/stl.h>

#include <limits>

namespace icgt::python {

namespace py = pybind11;

void register_errors();
void register_graph(py::module_& m);
void register_walk_sampler(py::module_& m);
void register_probe_result(py::module_& m);
void register_activation_probe(py::module_& m);
void register_representation_stats(py::module_& m);
void register_energy_metrics(py::module_& m);

/// An integer argument as T, refused with a message naming it: a TypeError for a non-integer
/// (bool included), a ValueError for an integer outside [low, high] (any size of Python int).
template <typename T>
T integer_argument(const py::handle& value, const char* function, const char* name,
                   T low = std::numeric_limits<T>::min(), T high = std::numeric_limits<T>::max()) {
  if (PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr())) {
    throw py::type_error(py::str("{}: {} must be an integer, got {!r} ({})")
                             .format(function, name, value, py::type::of(value).attr("__name__")));
  }
  const auto number = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
  if (!number) throw py::error_already_set();
  if (number < py::int_(low) || number > py::int_(high)) {
    throw py::value_error(py::str("{}: {} must be an integer from {} to {}, got {}").format(function, name, low, high, number));
  }
  return number.cast<T>();
}

/// A numpy array that shares the memory of a CPU tensor (and keeps it alive).
inline py::object numpy_view(const at::Tensor& tensor) { return py::cast(tensor).attr("numpy")(); }

}  // namespace icgt::python
