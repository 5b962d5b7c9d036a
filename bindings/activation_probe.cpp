#include "icgt/activation_probe.hpp"

#include <pybind11/functional.h>
#include <torch/csrc/autograd/python_variable.h>
#include <pybind11/stl/filesystem.h>

#include <filesystem>

#include "bindings.hpp"

namespace icgt::python {
namespace {

at::Tensor as_tensor(const py::object& values) {
  return py::module_::import("torch").attr("as_tensor")(values).cast<at::Tensor>();
}

// A Python callable that C++ may copy and destroy without the GIL: copies share one reference,
// and the last one takes the GIL to release it (a run copies the hooks while the GIL is released).
std::shared_ptr<py::function> shared_callable(py::function fn) {
  return std::shared_ptr<py::function>(new py::function(std::move(fn)), [](py::function* held) {
    py::gil_scoped_acquire gil;
    delete held;
  });
}

}  // namespace

void register_activation_probe(py::module_& m) {
  py::class_<ActivationProbe::Result>(m, "ProbeResult", "What ActivationProbe.run returns.")
      .def_readonly("residuals", &ActivationProbe::Result::residuals,
                    "torch.Tensor [layers, batch, length, hidden] in the model dtype, on the probe's device.")
      .def_property_readonly(
          "target_probs",
          [](const ActivationProbe::Result& r) -> py::object {
            return r.target_probs.defined() ? py::cast(r.target_probs) : py::none();
          },
          "torch.Tensor [batch, length, targets] (float32): next-token probabilities of the target ids, or None.");

  py::class_<ActivationProbe>(m, "ActivationProbe", R"doc(Runs an exported model block by block, with hooks.

Loads a bundle written by `icgt export` (or icgt.bundle_for) onto device "auto" (CUDA when
available), "cpu", "cuda" or "cuda:N". Layer l is the residual stream after decoder block l
(Hugging Face hidden_states[l + 1]); layer -1 is the embedding output (hidden_states[0]).
Hooks run between blocks: fn(layer, residual) may read the tensor or return a replacement.
Tensors come from inference mode: read them, or clone() before changing them in place.

Example:
    >>> probe = icgt.ActivationProbe(toy_bundle, device="cpu")
    >>> ids = torch.tensor([[0, 5, 6, 7, 5]])
    >>> result = probe.run(ids, layers=[0, 2], target_ids=[5, 6])
    >>> result.residuals.shape, result.target_probs.shape
    (torch.Size([2, 1, 5, 16]), torch.Size([1, 5, 2]))
)doc")
      .def(py::init([](const std::filesystem::path& bundle, const std::string& device) {
             return ActivationProbe(bundle.string(), device);
           }),
           py::arg("bundle"), py::arg("device") = "auto")
      .def_property_readonly("architecture", [](const ActivationProbe& p) { return p.info().architecture; })
      .def_property_readonly("num_layers", [](const ActivationProbe& p) { return p.info().num_layers; })
      .def_property_readonly("hidden_size", [](const ActivationProbe& p) { return p.info().hidden_size; })
      .def_property_readonly("vocab_size", [](const ActivationProbe& p) { return p.info().vocab_size; })
      .def_property_readonly("num_heads", [](const ActivationProbe& p) { return p.info().num_heads; },
                             "Attention heads per block: the length of a head-gate vector.")
      .def_property_readonly("bos_token_id", [](const ActivationProbe& p) { return p.info().bos_token_id; })
      .def_property_readonly("max_positions", [](const ActivationProbe& p) { return p.info().max_positions; },
                             "The longest sequence the model was trained for (max_position_embeddings).")
      .def_property_readonly("dtype", [](const ActivationProbe& p) { return p.info().dtype; }, "torch.dtype of the weights.")
      .def_property_readonly("device", &ActivationProbe::device, "torch.device the model runs on.")
      .def_property_readonly(
          "config",
          [](const ActivationProbe& p) {
            py::object config;
            try {
              // bytes: json finds the encoding, and bytes that are not text are its ValueError too
              config = py::module_::import("json").attr("loads")(py::bytes(p.info().config_json));
            } catch (py::error_already_set& error) {
              if (!error.matches(PyExc_ValueError) && !error.matches(PyExc_RecursionError)) throw;
              throw py::value_error(py::str("ActivationProbe.config: the bundle's config.json is not JSON ({}); "
                                            "re-export the model")
                                        .format(error.value()));
            }
            if (!py::isinstance<py::dict>(config)) {
              throw py::value_error(py::str("ActivationProbe.config: the bundle's config.json holds a {}, not an "
                                            "object; re-export the model")
                                        .format(py::type::of(config).attr("__name__")));
            }
            return config;
          },
          "The bundle's record (config.json) as a dict.")
      .def("token_id", &ActivationProbe::token_id, py::arg("text"),
           "Id of the single token whose text is exactly `text`; ValueError if none or several.\n\n"
           ">>> icgt.ActivationProbe(toy_bundle).token_id(' w3')\n3")
      .def(
          "token_text", [](const ActivationProbe& p, std::int64_t id) { return py::bytes(p.token_text(id)); },
          py::arg("id"), "The bytes a token contributes to text.\n\n>>> icgt.ActivationProbe(toy_bundle).token_text(3)\nb' w3'")
      .def(
          "add_hook",
          [](ActivationProbe& p, int layer, py::function fn) {
            return p.add_hook(layer, [fn = shared_callable(std::move(fn))](int hook_layer, torch::Tensor& residual) {
              py::gil_scoped_acquire gil;
              py::object replacement = (*fn)(hook_layer, residual);
              if (replacement.is_none()) return;
              if (!THPVariable_Check(replacement.ptr())) {
                throw py::type_error(py::str("the hook at layer {} returned a {}; expected None (read only) or a "
                                             "torch.Tensor that replaces the residual")
                                         .format(hook_layer, py::type::of(replacement).attr("__name__")));
              }
              residual = replacement.cast<at::Tensor>();
            });
          },
          py::arg("layer"), py::arg("fn"),
          R"doc(Calls fn(layer, residual) after that layer in every run; returns a handle for remove_hook.

fn may return None (read only) or a tensor of the same shape, dtype and device to replace the
residual, which then flows on (an intervention).

>>> probe = icgt.ActivationProbe(toy_bundle)
>>> seen = []
>>> handle = probe.add_hook(1, lambda layer, residual: seen.append(residual.norm().item()))
>>> _ = probe.run(torch.tensor([[1, 2, 3]]), layers=[])
>>> len(seen)
1
)doc")
      .def("remove_hook", &ActivationProbe::remove_hook, py::arg("handle"))
      .def("clear_hooks", &ActivationProbe::clear_hooks)
      .def(
          "set_head_gates",
          [](ActivationProbe& p, int layer, const py::object& gates) { p.set_head_gates(layer, as_tensor(gates)); },
          py::arg("layer"), py::arg("gates"),
          "Multiplies each attention head's output in block `layer` by gates[head]; 0 ablates the head.\n\n"
          ">>> icgt.ActivationProbe(toy_bundle).set_head_gates(0, [1.0, 0.0, 1.0, 1.0])")
      .def("clear_head_gates", &ActivationProbe::clear_head_gates)
      .def(
          "run",
          [](ActivationProbe& p, const py::object& token_ids, std::vector<int> layers, const py::object& target_ids,
             bool renormalize, std::int64_t max_batch, const py::object& progress) {
            ActivationProbe::Request request;
            request.layers = std::move(layers);
            if (!target_ids.is_none()) request.target_ids = as_tensor(target_ids);
            request.normalization = renormalize ? ActivationProbe::Normalization::OverTargets
                                                : ActivationProbe::Normalization::FullVocabulary;
            request.max_batch = max_batch;
            // Between blocks: Ctrl-C (or any pending signal) stops the run, and progress hears of the block.
            std::shared_ptr<py::function> report;
            if (!progress.is_none()) report = shared_callable(progress.cast<py::function>());
            request.after_block = [report](int layer) {
              py::gil_scoped_acquire gil;
              if (PyErr_CheckSignals() != 0) throw py::error_already_set();
              if (report) (*report)(layer);
            };
            const at::Tensor ids = as_tensor(token_ids);
            py::gil_scoped_release release;
            return p.run(ids, request);
          },
          py::arg("token_ids"), py::arg("layers") = std::vector<int>{}, py::arg("target_ids") = py::none(),
          py::arg("renormalize") = false, py::arg("max_batch") = 0, py::arg("progress") = py::none(),
          R"doc(Runs token ids [batch, length] and returns a ProbeResult.

layers: residuals to capture (-1..num_layers-1). target_ids: token ids whose next-token
probabilities are wanted at every position, under the full-vocabulary softmax, or over the
targets alone with renormalize=True. max_batch: sequences per pass (0: all, halved on
out-of-memory errors). progress: called as progress(layer) after the embedding (-1) and
each block. Ctrl-C stops a run between two blocks.

>>> probe = icgt.ActivationProbe(toy_bundle)
>>> probs = probe.run([[0, 1, 2]], target_ids=[1, 2], renormalize=True).target_probs
>>> probs.sum(-1).allclose(torch.ones(1, 3))
True
)doc");
  m.attr("EMBEDDING_LAYER") = kEmbeddingLayer;
}

}  // namespace icgt::python
