#include "icgt/activation_probe.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pybind11/functional.h>
#include <torch/csrc/autograd/python_variable.h>
#include <pybind11/stl/filesystem.h>

#include <filesystem>

#include "bindings.hpp"
#include "icgt/errors.hpp"
#include "probe_arguments.hpp"
#include "tensor_arguments.hpp"

namespace icgt::python {
namespace {

using Probe = ActivationProbe;

constexpr const char* kRun = "ActivationProbe.run";

// A Python callable that C++ may copy and destroy without the GIL: copies share one reference,
// and the last one takes the GIL to release it (a run copies the hooks while the GIL is released).
std::shared_ptr<py::function> shared_callable(py::function fn) {
  return std::shared_ptr<py::function>(new py::function(std::move(fn)), [](py::function* held) {
    py::gil_scoped_acquire gil;
    delete held;
  });
}

// Refuses, before a run starts, a hook that cannot be called as icgt calls one, fn(layer, tensor).
// TransformerLens's fn(activation, hook) takes two arguments too, so it is told apart by its second
// parameter's name (TransformerLens passes it as hook=), and sent to run_with_hooks.
void check_hook_signature(const py::handle& fn, const HookSite& site, const char* function) {
  py::object signature;
  try {
    signature = py::module_::import("inspect").attr("signature")(fn);
  } catch (py::error_already_set& error) {
    if (!error.matches(PyExc_ValueError) && !error.matches(PyExc_TypeError)) throw;
    return;  // no signature to read (some builtins): the call itself will tell
  }
  bool takes_two = true;
  try {
    signature.attr("bind")(0, 0);
  } catch (py::error_already_set& error) {
    if (!error.matches(PyExc_TypeError)) throw;
    takes_two = false;
  }
  const py::list parameters(signature.attr("parameters").attr("values")());
  const bool lens_form = parameters.size() >= 2 && py::str(parameters[1].attr("name")).cast<std::string>() == "hook";
  if (takes_two && !lens_form) return;
  throw py::type_error(py::str("{}: the hook for {}, {}{}, {}; icgt calls a hook as fn(layer, tensor) (run's "
                               "hooks=, add_hook, probe.hooks()), and TransformerLens's fn(activation, hook) goes "
                               "in run_with_hooks(tokens, fwd_hooks=[(name, fn)])")
                           .format(function, site.name(), py::getattr(fn, "__qualname__", py::repr(fn)), signature,
                                   lens_form ? "has TransformerLens's form" : "cannot take two positional arguments"));
}

// fn(layer, tensor) -> None (read, or edited in place) or a tensor that replaces it. `function`
// names the method that takes the hook; a hook's result is checked while a run goes on.
Probe::Hook python_hook(const py::handle& fn, const HookSite& site, const char* function) {
  if (!PyCallable_Check(fn.ptr())) {
    throw py::type_error(py::str("{}: the hook for {} is a {}; expected a callable fn(layer, tensor)")
                             .format(function, site.name(), py::type::of(fn).attr("__name__")));
  }
  check_hook_signature(fn, site, function);
  return [fn = shared_callable(py::reinterpret_borrow<py::function>(fn)), site](int layer, torch::Tensor& activation) {
    py::gil_scoped_acquire gil;
    py::object replacement = (*fn)(layer, activation);
    if (replacement.is_none()) return;
    if (!THPVariable_Check(replacement.ptr())) {
      throw py::type_error(py::str("ActivationProbe.run: the hook at {} returned a {}; expected None (read or "
                                   "edited in place) or a torch.Tensor that replaces it")
                               .format(site.name(), py::type::of(replacement).attr("__name__")));
    }
    activation = replacement.cast<at::Tensor>();
  };
}

Probe::HeadAblation::Kind ablation_kind(const std::string& kind) {
  if (kind == "zero") return Probe::HeadAblation::Kind::Zero;
  if (kind == "mean") return Probe::HeadAblation::Kind::Mean;
  if (kind == "patch") return Probe::HeadAblation::Kind::Patch;
  throw ValueError("HeadAblation: kind must be 'zero', 'mean' or 'patch', got '" + kind + "'");
}

Probe::Normalization normalization_argument(const std::string& normalization) {
  if (normalization == "full_vocabulary") return Probe::Normalization::FullVocabulary;
  if (normalization == "over_targets") return Probe::Normalization::OverTargets;
  throw ValueError(std::string(kRun) + ": normalization must be 'full_vocabulary' or 'over_targets', got '" +
                   normalization + "'");
}

// --- ActivationProbe.run's arguments ------------------------------------------------------------

// An array argument that may be None: an undefined tensor then.
at::Tensor optional_tensor_argument(const py::object& value, const char* argument) {
  return value.is_none() ? at::Tensor() : tensor_argument(value, kRun, argument);
}

// hooks: {point: fn}, a sequence of (point, fn) pairs (which may hook one point several times), or None.
std::vector<std::pair<HookSite, Probe::Hook>> hooks_argument(const py::object& hooks) {
  std::vector<std::pair<HookSite, Probe::Hook>> converted;
  if (hooks.is_none()) return converted;
  const bool mapping = py::isinstance(hooks, py::module_::import("collections.abc").attr("Mapping"));
  if (!mapping && (!py::isinstance<py::iterable>(hooks) || py::isinstance<py::str>(hooks))) {
    throw py::type_error(py::str("{}: hooks is a {}; expected {{point: fn}} or a list of (point, fn) pairs")
                             .format(kRun, py::type::of(hooks).attr("__name__")));
  }
  for (const py::handle& entry : mapping ? hooks.attr("items")() : hooks) {
    if (!py::isinstance<py::sequence>(entry) || py::isinstance<py::str>(entry) || py::len(entry) != 2) {
      throw py::type_error(py::str("{}: hooks holds {!r}; expected {{point: fn}} or a list of (point, fn) pairs")
                               .format(kRun, entry));
    }
    const HookSite where = site_argument(entry[py::int_(0)], kRun);
    converted.emplace_back(where, python_hook(entry[py::int_(1)], where, kRun));
  }
  return converted;
}

// logits: "last", a list of positions, or None.
std::vector<std::int64_t> logit_positions_argument(const py::object& logits) {
  if (py::isinstance<py::str>(logits) && logits.cast<std::string>() == "last") return {-1};
  if (logits.is_none()) return {};
  return logits.cast<std::vector<std::int64_t>>();
}

// Called between blocks: Ctrl-C (or any pending signal) stops the run, and progress (if given)
// hears of the block.
std::function<void(int)> after_block_callback(const py::object& progress) {
  std::shared_ptr<py::function> report;
  if (!progress.is_none()) report = shared_callable(progress.cast<py::function>());
  return [report](int layer) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (report) (*report)(layer);
  };
}

// The bundle's config.json as a dict, or a ValueError that says to re-export.
py::object config_dict(const Probe& probe) {
  py::object config;
  try {
    // bytes: json finds the encoding, and bytes that are not text are its ValueError too
    config = py::module_::import("json").attr("loads")(py::bytes(probe.info().config_json));
  } catch (py::error_already_set& error) {
    if (!error.matches(PyExc_ValueError) && !error.matches(PyExc_RecursionError)) throw;
    throw py::value_error(
        py::str("ActivationProbe.config: the bundle's config.json is not JSON ({}); re-export the model")
            .format(error.value()));
  }
  if (!py::isinstance<py::dict>(config)) {
    throw py::value_error(py::str("ActivationProbe.config: the bundle's config.json holds a {}, not an object; "
                                  "re-export the model")
                              .format(py::type::of(config).attr("__name__")));
  }
  return config;
}

}  // namespace

HookSite site_argument(const py::handle& value, const char* function) {
  if (py::isinstance<py::str>(value)) return HookSite::parse(value.cast<std::string>());
  if (py::isinstance<py::tuple>(value) && py::len(value) == 2) {
    const auto pair = py::reinterpret_borrow<py::tuple>(value);
    if (py::isinstance<py::str>(pair[0])) {
      return HookSite::at(integer_argument<int>(pair[1], function, "the layer of a hook point"),
                          pair[0].cast<std::string>());
    }
    if (py::isinstance<py::str>(pair[1])) {
      return HookSite::at(integer_argument<int>(pair[0], function, "the layer of a hook point"),
                          pair[1].cast<std::string>());
    }
  }
  if (PyIndex_Check(value.ptr()) && !PyBool_Check(value.ptr())) {
    return {integer_argument<int>(value, function, "layer"), HookPoint::ResidPost};
  }
  throw py::type_error(py::str("{}: a hook point is a name such as 'blocks.3.attn.hook_z', a pair such as "
                               "('z', 3), or a layer (its resid_post); got {!r}")
                           .format(function, value));
}

void register_activation_probe(py::module_& m) {
  py::class_<Probe::HeadAblation>(m, "HeadAblation", R"doc(Replaces chosen heads' outputs z in one block.

kind "zero" sets them to 0; "mean" to values [heads, head_dim], or (values None) to each head's
mean over every position and sequence of the run's own tokens, from a run without ablations;
"patch" to values [batch, length, heads, head_dim], or (values None) to the heads' outputs on
the run's patch_source, position by position.

>>> icgt.HeadAblation(layer=1, heads=[0, 2], kind="mean")
HeadAblation(layer=1, heads=[0, 2], kind='mean', values=None)
)doc")
      .def(py::init([](const py::handle& layer, std::vector<int> heads, const std::string& kind, const py::object& values) {
             Probe::HeadAblation ablation;
             ablation.layer = integer_argument<int>(layer, "HeadAblation", "layer");
             ablation.heads = std::move(heads);
             ablation.kind = ablation_kind(kind);
             if (!values.is_none()) ablation.values = tensor_argument(values, "HeadAblation", "values");
             return ablation;
           }),
           py::arg("layer"), py::arg("heads"), py::arg("kind") = "zero", py::arg("values") = py::none())
      .def_readonly("layer", &Probe::HeadAblation::layer)
      .def_readonly("heads", &Probe::HeadAblation::heads)
      .def_property_readonly("kind",
                             [](const Probe::HeadAblation& a) {
                               return a.kind == Probe::HeadAblation::Kind::Zero   ? "zero"
                                      : a.kind == Probe::HeadAblation::Kind::Mean ? "mean"
                                                                                  : "patch";
                             })
      .def_property_readonly("values", [](const Probe::HeadAblation& a) { return optional_tensor(a.values); })
      .def("__repr__", [](const py::object& a) {
        return py::str("HeadAblation(layer={}, heads={}, kind={!r}, values={})")
            .format(a.attr("layer"), a.attr("heads"), a.attr("kind"),
                    a.attr("values").is_none() ? py::str("None") : py::str("<tensor>"));
      });

  py::class_<Probe::AttentionScore>(m, "AttentionScore", R"doc(A per-head score reduced from attention weights.

The mean over queries q >= first_query (and q >= offset) of the weight from q to key q - offset,
computed a block of queries at a time, so that [query, key] is never stored. layers: the blocks
to score (None: all). offset 1 from first_query 1: previous-token score; for BOS then L tokens
repeated twice, offset L - 1 from first_query L + 1: induction score.

>>> icgt.AttentionScore(offset=1, first_query=1)
AttentionScore(offset=1, first_query=1, layers=None)
)doc")
      .def(py::init([](const py::handle& offset, const py::handle& first_query, const py::object& layers) {
             Probe::AttentionScore score;
             score.offset = integer_argument<std::int64_t>(offset, "AttentionScore", "offset", 0);
             score.first_query = integer_argument<std::int64_t>(first_query, "AttentionScore", "first_query", 0);
             if (!layers.is_none()) score.layers = layers.cast<std::vector<int>>();
             return score;
           }),
           py::arg("offset") = 1, py::arg("first_query") = 1, py::arg("layers") = py::none())
      .def_readonly("offset", &Probe::AttentionScore::offset)
      .def_readonly("first_query", &Probe::AttentionScore::first_query)
      .def_property_readonly("layers",
                             [](const Probe::AttentionScore& s) -> py::object {
                               return s.layers.empty() ? py::none() : py::cast(s.layers);
                             })
      .def("__repr__", [](const py::object& s) {
        return py::str("AttentionScore(offset={}, first_query={}, layers={})")
            .format(s.attr("offset"), s.attr("first_query"), s.attr("layers"));
      });

  py::class_<Probe> probe(m, "ActivationProbe", R"doc(Runs an exported model block by block, with hooks.

Loads a bundle written by `icgt export` (or icgt.bundle_for) onto device "auto" (CUDA when
available), "cpu", "cuda" or "cuda:N". Layer l is the residual stream after decoder block l
(Hugging Face hidden_states[l + 1]); layer -1 is the embedding output (hidden_states[0]).
Hook points inside each block follow TransformerLens: "blocks.3.attn.hook_z", or ("z", 3).
A hook fn(layer, tensor) may read the tensor, edit it in place, or return a replacement.
icgt.ActivationProbe adds the tokenizer and text input (icgt.probe).

Example:
    >>> probe = icgt.ActivationProbe(toy_bundle, device="cpu")
    >>> ids = torch.tensor([[0, 5, 6, 7, 5]])
    >>> result = probe.run(ids, layers=[0, 2], target_ids=[5, 6], capture=["blocks.1.attn.hook_pattern"])
    >>> result.residuals.shape, result.target_probs.shape
    (torch.Size([2, 1, 5, 16]), torch.Size([1, 5, 2]))
    >>> result.activations["blocks.1.attn.hook_pattern"].shape
    torch.Size([1, 4, 5, 5])
)doc");

  py::class_<Probe::AutomaticDtype>(probe, "AutomaticDtype",
                                    "What ActivationProbe.automatic_dtype chooses for a device, and why.")
      .def_readonly("dtype", &Probe::AutomaticDtype::dtype,
                    "'bfloat16' where the device computes it natively, else 'float32'.")
      .def_readonly("reason", &Probe::AutomaticDtype::reason,
                    "The device and the evidence, then the dtype, in words.")
      .def("__repr__", [](const Probe::AutomaticDtype& choice) {
        return py::str("ActivationProbe.AutomaticDtype(dtype={!r}, reason={!r})").format(choice.dtype, choice.reason);
      });

  probe
      .def(py::init([](const std::filesystem::path& bundle, const std::string& device) {
             return Probe(bundle.string(), device);
           }),
           py::arg("bundle"), py::arg("device") = "auto")
      .def_property_readonly("architecture", [](const Probe& p) { return p.info().architecture; })
      .def_property_readonly("num_layers", [](const Probe& p) { return p.info().num_layers; })
      .def_property_readonly("hidden_size", [](const Probe& p) { return p.info().hidden_size; })
      .def_property_readonly("vocab_size", [](const Probe& p) { return p.info().vocab_size; })
      .def_property_readonly("num_heads", [](const Probe& p) { return p.info().num_heads; },
                             "Attention heads per block: the length of a head-gate vector.")
      .def_property_readonly("num_kv_heads", [](const Probe& p) { return p.info().num_kv_heads; })
      .def_property_readonly("head_dim", [](const Probe& p) { return p.info().head_dim; })
      .def_property_readonly("bos_token_id", [](const Probe& p) { return p.info().bos_token_id; })
      .def_property_readonly("max_positions", [](const Probe& p) { return p.info().max_positions; },
                             "The longest sequence the model was trained for (max_position_embeddings).")
      .def_property_readonly("dtype", [](const Probe& p) { return p.info().dtype; }, "torch.dtype of the weights.")
      .def_property_readonly("device", &Probe::device, "torch.device the model runs on.")
      .def_property_readonly("config", &config_dict,
          "The bundle's record (config.json) as a dict.")
      .def("__repr__",
           [](const Probe& p) {
             const ModelInfo& info = p.info();
             return fmt::format("ActivationProbe({}, {} blocks, {} heads ({} key-value) of {}, hidden {}, vocabulary "
                                "{}, {} on {})",
                                info.architecture, info.num_layers, info.num_heads, info.num_kv_heads, info.head_dim,
                                info.hidden_size, info.vocab_size, c10::toString(info.dtype), p.device().str());
           })
      .def("token_id", &Probe::token_id, py::arg("text"),
           "Id of the single token whose text is exactly `text`; ValueError if none or several.\n\n"
           ">>> icgt.ActivationProbe(toy_bundle).token_id(' w3')\n3")
      .def(
          "token_text", [](const Probe& p, std::int64_t id) { return py::bytes(p.token_text(id)); }, py::arg("id"),
          "The bytes a token contributes to text.\n\n>>> icgt.ActivationProbe(toy_bundle).token_text(3)\nb' w3'")
      .def("unembedding", &Probe::unembedding, py::arg("token_ids"),
           R"doc(Rows of the output (unembedding) matrix for token ids [n]: [n, hidden], float32 on the CPU.

Logits are final_norm(residual) @ W_U^T (before Gemma's soft-cap); where the model ties them, these
are the input embedding's rows. ValueError for ids outside the vocabulary, TypeError for ids that
are not a 1-D integer tensor.

>>> probe = icgt.ActivationProbe(toy_bundle)
>>> probe.unembedding(torch.tensor([3, 5])).shape == (2, probe.hidden_size)
True
)doc")
      .def(
          "add_hook",
          [](Probe& p, const py::handle& site, const py::handle& fn) {
            const char* function = "ActivationProbe.add_hook";
            const HookSite where = site_argument(site, function);
            return p.add_hook(where, python_hook(fn, where, function));
          },
          py::arg("site"), py::arg("fn"),
          R"doc(Calls fn(layer, tensor) at a hook point in every run; returns a handle for remove_hook.

site: a layer (the residual after it), "blocks.3.attn.hook_z", or ("z", 3). fn may return None
(read, or edited in place) or a tensor of the same shape, dtype and device that replaces it.
Hooks added or removed while a run goes on take effect from the next run.

>>> probe = icgt.ActivationProbe(toy_bundle)
>>> seen = []
>>> handle = probe.add_hook(1, lambda layer, residual: seen.append(residual.norm().item()))
>>> _ = probe.run(torch.tensor([[1, 2, 3]]), layers=[])
>>> len(seen)
1
)doc")
      .def("remove_hook", &Probe::remove_hook, py::arg("handle"))
      .def("clear_hooks", &Probe::clear_hooks)
      .def(
          "set_head_gates", [](Probe& p, int layer, const py::object& gates) { p.set_head_gates(layer, tensor_argument(gates, "ActivationProbe.set_head_gates", "gates")); },
          py::arg("layer"), py::arg("gates"),
          "Multiplies each attention head's output in block `layer` by gates[head]; 0 ablates the head.\n\n"
          "The gates stay until clear_head_gates; the probe keeps a copy. Gates set or cleared while a run\n"
          "goes on (by a hook) take effect from the next run, as hooks do.\n\n"
          ">>> icgt.ActivationProbe(toy_bundle).set_head_gates(0, [1.0, 0.0, 1.0, 1.0])")
      .def("clear_head_gates", &Probe::clear_head_gates)
      .def_static("native_bfloat16", &Probe::native_bfloat16, py::arg("device") = "auto",
                  R"doc(Whether device ("auto", "cpu", "cuda" or "cuda:N") computes bfloat16 natively.

A CUDA GPU does from compute capability 8.0 (Ampere); a CPU when it has bfloat16 instructions
(AVX512-BF16, AMX-BF16, AVX-NE-CONVERT, ARM's BF16) and torch's oneDNN uses them. The
environment variable ICGT_NATIVE_BFLOAT16, read at every call, overrides the hardware: "1" yes,
"0" no. A device that does not exist, or another value of the variable, is a ValueError; CUDA
where torch sees no GPU a RuntimeError.

>>> native = icgt.ActivationProbe.native_bfloat16("cpu")
>>> icgt.ActivationProbe.automatic_dtype("cpu").dtype == ("bfloat16" if native else "float32")
True
)doc")
      .def_static("automatic_dtype", &Probe::automatic_dtype, py::arg("device") = "auto",
                  R"doc(The dtype to run a model in on device: an ActivationProbe.AutomaticDtype.

.dtype is "bfloat16" where native_bfloat16(device), else "float32"; .reason says why in words.
The same override (ICGT_NATIVE_BFLOAT16) and errors as native_bfloat16.

>>> import os
>>> os.environ["ICGT_NATIVE_BFLOAT16"] = "0"  # overrides the hardware's answer
>>> icgt.ActivationProbe.automatic_dtype("cpu")
ActivationProbe.AutomaticDtype(dtype='float32', reason='CPU (torch CPU capability ...) taken to lack native bfloat16 (ICGT_NATIVE_BFLOAT16=0): float32')
>>> del os.environ["ICGT_NATIVE_BFLOAT16"]
)doc")
      .def("automatic_batch", &Probe::automatic_batch, py::arg("batch"), py::arg("length"),
           R"doc(Sequences per pass that run starts with for batch sequences of length tokens when
max_batch is 0: on a CPU as many as make about 2048 tokens (at least one), on a GPU the whole
batch (run halves it on out-of-memory errors). A caller whose hooks must know which sequences a
pass holds splits its batch the same way and runs each part with its size as max_batch.

>>> probe = icgt.ActivationProbe(toy_bundle, device="cpu")
>>> probe.automatic_batch(40, 64), probe.automatic_batch(4, 1401)
(32, 1)
)doc")
      .def(
          "run",
          [](Probe& p, const py::object& token_ids, std::vector<int> layers, const py::list& capture,
             const py::object& hooks, const py::object& target_ids, const std::string& normalization,
             const py::object& logits, const py::handle& top_k, bool log_probs,
             std::vector<Probe::AttentionScore> attention_scores, std::vector<Probe::HeadAblation> ablations,
             const py::object& patch_source, const py::object& start_residual, const py::handle& start_layer,
             const py::handle& max_batch, const py::object& progress, bool grad) {
            Probe::Request request;
            request.layers = std::move(layers);
            for (const py::handle& site : capture) request.captures.push_back(site_argument(site, kRun));
            request.hooks = hooks_argument(hooks);
            request.target_ids = optional_tensor_argument(target_ids, "target_ids");
            request.normalization = normalization_argument(normalization);
            request.logit_positions = logit_positions_argument(logits);
            request.top_k = integer_argument<std::int64_t>(top_k, kRun, "top_k", 0);
            request.log_probs = log_probs;
            request.attention_scores = std::move(attention_scores);
            request.head_ablations = std::move(ablations);
            request.patch_source = optional_tensor_argument(patch_source, "patch_source");
            request.start_residual = optional_tensor_argument(start_residual, "start_residual");
            request.start_layer = integer_argument<int>(start_layer, kRun, "start_layer");
            request.max_batch = integer_argument<std::int64_t>(max_batch, kRun, "max_batch");
            request.after_block = after_block_callback(progress);
            request.grad = grad;
            const at::Tensor ids = tensor_argument(token_ids, kRun, "token_ids");
            py::gil_scoped_release release;
            return p.run(ids, request);
          },
          py::arg("token_ids"), py::arg("layers") = std::vector<int>{}, py::arg("capture") = py::list(),
          py::arg("hooks") = py::none(), py::arg("target_ids") = py::none(),
          py::arg("normalization") = "full_vocabulary", py::arg("logits") = py::none(), py::arg("top_k") = 0,
          py::arg("log_probs") = false, py::arg("attention_scores") = std::vector<Probe::AttentionScore>{},
          py::arg("ablations") = std::vector<Probe::HeadAblation>{}, py::arg("patch_source") = py::none(),
          py::arg("start_residual") = py::none(), py::arg("start_layer") = 0, py::arg("max_batch") = 0,
          py::arg("progress") = py::none(), py::arg("grad") = false,
          R"doc(Runs token ids [batch, length] and returns a ProbeResult.

layers: residuals after these blocks (-1..num_layers-1), into result.residuals. capture: hook
points ("blocks.3.attn.hook_z", ("pattern", 5), ...) into result.activations by name. hooks:
{point: fn}, or a list of (point, fn) pairs to hook a point more than once (called in order), for
this run only (removed when it ends, also on an exception). target_ids: token
ids whose next-token probabilities are wanted at every position, normalised over the
"full_vocabulary" or "over_targets". logits: "last" or a list of positions (negative from the
end) whose full next-token logits are wanted; top_k: the k largest at every position, with
their ids; log_probs: log-softmax values instead of logits for both. attention_scores: a list
of AttentionScore. ablations: a list of HeadAblation; patch_source: token ids whose head
outputs patch ablations without values take. max_batch: sequences per pass (0: automatic, on a CPU
about 2048 tokens per pass, on a GPU the whole batch, halved on out-of-memory errors).
start_residual, start_layer: resume from the residual entering block
start_layer ([batch, length, hidden], say captured by an earlier run of the same tokens): the
blocks before it are skipped. progress: called as progress(layer) after the embedding (-1) and
each block. Ctrl-C stops a run between two blocks. grad: run with autograd instead of under
inference mode (slower), so that gradients flow from what the run returns back to a tensor that a
hook or start_residual marks with requires_grad, and the returned tensors may enter a model that
is trained (under inference mode they are inference tensors, which autograd cannot save).

>>> probe = icgt.ActivationProbe(toy_bundle)
>>> probs = probe.run([[0, 1, 2]], target_ids=[1, 2], normalization="over_targets").target_probs
>>> probs.sum(-1).allclose(torch.ones(1, 3))
True
>>> probe.run([[0, 1, 2]], logits="last", top_k=3).top_k_ids.shape
torch.Size([1, 3, 3])
)doc");
  m.attr("EMBEDDING_LAYER") = kEmbeddingLayer;
  m.attr("BUNDLE_FORMAT_VERSION") = kBundleFormatVersion;
}

}  // namespace icgt::python
