#pragma once
// What the probe's bindings share: the Python forms of a hook point, and optional tensors.

#include "bindings.hpp"
#include "icgt/activation_probe.hpp"

namespace icgt::python {

/// A hook point: "blocks.3.attn.hook_z", ("z", 3), (3, "z"), or a layer (its resid_post); `function`
/// names the method that takes it.
HookSite site_argument(const py::handle& value, const char* function);

/// The tensor, or None where it is undefined.
inline py::object optional_tensor(const torch::Tensor& tensor) {
  return tensor.defined() ? py::cast(tensor) : py::none();
}

}  // namespace icgt::python
