#pragma once
// Array arguments of the statistics bindings: a torch.Tensor is taken as it is; anything else that
// torch.as_tensor accepts (a numpy array is shared, not copied; a list is converted).

#include <string>
#include <vector>

#include "bindings.hpp"
#include "icgt/errors.hpp"

namespace icgt::python {

inline at::Tensor tensor_argument(const py::handle& value, const char* function, const char* argument) {
  try {
    return py::module_::import("torch").attr("as_tensor")(value).cast<at::Tensor>();
  } catch (const py::error_already_set& error) {
    throw icgt::TypeError(std::string(function) + ": " + argument +
                          " must be a torch.Tensor or an array that torch.as_tensor accepts, got " +
                          py::str(py::type::of(value)).cast<std::string>() + " (" + error.what() + ")");
  }
}

/// A 1-D sequence of integers (list, numpy array, tensor) as a vector.
inline std::vector<std::int64_t> integer_list_argument(const py::handle& value, const char* function,
                                                       const char* argument) {
  const at::Tensor tensor = tensor_argument(value, function, argument);
  if (tensor.dim() == 1 && tensor.numel() == 0) return {};  // [] is float to torch; the C++ API says what is wrong
  if (tensor.dim() != 1 || !c10::isIntegralType(tensor.scalar_type(), /*includeBool=*/false)) {
    throw icgt::TypeError(std::string(function) + ": " + argument +
                          " must be a 1-D sequence of integers, got a tensor of dtype " +
                          c10::toString(tensor.scalar_type()) + " with " + std::to_string(tensor.dim()) +
                          " dimension(s)");
  }
  const at::Tensor values = tensor.to(at::kCPU, at::kLong).contiguous();
  return {values.data_ptr<std::int64_t>(), values.data_ptr<std::int64_t>() + values.numel()};
}

}  // namespace icgt::python
