// ProbeResult, what ActivationProbe.run returns, and its activations: looked up as TransformerLens's
// ActivationCache is (cache["z", 5] or cache["blocks.5.attn.hook_z"]), residuals by block number.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "icgt/activation_probe.hpp"
#include "probe_arguments.hpp"

namespace icgt::python {
namespace {

using Result = ActivationProbe::Result;

// ProbeResult.activations: the run's captures, and the layers of its residuals, which a lookup of
// one of their resid_posts names (they are result.residual's, not captures).
struct Activations {
  std::map<HookSite, torch::Tensor> captured;
  std::vector<int> residual_layers;
};

std::string quoted_names(const std::map<HookSite, torch::Tensor>& captured) {
  std::vector<std::string> names;
  for (const auto& [site, tensor] : captured) names.push_back("'" + site.name() + "'");
  return names.empty() ? "nothing (capture= names what a run keeps)" : fmt::format("{}", fmt::join(names, ", "));
}

// The captured tensor at `key` (any form capture= takes); a KeyError naming what was captured otherwise.
torch::Tensor captured_at(const Activations& activations, const py::handle& key) {
  constexpr const char* function = "ProbeResult.activations";
  HookSite site;
  try {
    site = site_argument(key, function);
  } catch (const std::exception& error) {  // not a hook point: a mapping answers KeyError
    throw py::key_error(py::str("{}: {!r} is not a hook point ({}); captured: {}")
                            .format(function, key, error.what(), quoted_names(activations.captured)));
  }
  const auto found = activations.captured.find(site);
  if (found != activations.captured.end()) return found->second;
  std::string hint;
  const auto& layers = activations.residual_layers;
  if (site.point == HookPoint::ResidPost && std::find(layers.begin(), layers.end(), site.layer) != layers.end()) {
    hint = fmt::format("; layer {} was asked for with layers=: result.residual({})", site.layer, site.layer);
  }
  throw py::key_error(fmt::format("{}: {} was not captured; captured: {}{}", function, site.name(),
                                  quoted_names(activations.captured), hint));
}

py::list names_of(const Activations& activations) {
  py::list names;
  for (const auto& [site, tensor] : activations.captured) names.append(site.name());
  return names;
}

// Block `layer`'s residual (layers= of the run); a KeyError naming the layers asked for otherwise.
torch::Tensor residual_of(const Result& result, const py::handle& layer_argument) {
  constexpr const char* function = "ProbeResult.residual";
  const int layer = integer_argument<int>(layer_argument, function, "layer");
  const auto found = std::find(result.layers.begin(), result.layers.end(), layer);
  if (found != result.layers.end()) return result.residuals[found - result.layers.begin()];
  const HookSite resid_post{layer, HookPoint::ResidPost};
  const std::string hint = result.activations.count(resid_post)
                               ? fmt::format("; it was captured: result.activations['{}']", resid_post.name())
                               : "";
  throw py::key_error(fmt::format("{}: layer {}'s residual was not asked for; layers=[{}] were{}", function, layer,
                                  fmt::join(result.layers, ", "), hint));
}

}  // namespace

void register_probe_result(py::module_& m) {
  py::class_<Activations> activations(m, "Activations", R"doc(The hook points a run captured, by TransformerLens name.

A read-only mapping (ProbeResult.activations): iterating gives the names ('blocks.3.attn.hook_z'),
in the order a run meets them; a lookup takes any form capture= takes, as TransformerLens's
ActivationCache does: the name, ("z", 3), or a layer (its resid_post). A point that was not
captured is a KeyError naming what was.

>>> probe = icgt.ActivationProbe(toy_bundle)
>>> activations = probe.run(" w1 w2", capture=[("z", 1), "blocks.2.hook_resid_post"]).activations
>>> list(activations)
['blocks.1.attn.hook_z', 'blocks.2.hook_resid_post']
>>> activations["z", 1] is activations["blocks.1.attn.hook_z"], activations[2].shape
(True, torch.Size([1, 3, 16]))
)doc");
  activations
      .def("__getitem__", &captured_at, py::arg("key"))
      .def("__contains__",
           [](const Activations& a, const py::handle& key) {
             try {
               captured_at(a, key);
               return true;
             } catch (const py::key_error&) {
               return false;
             }
           })
      .def("__len__", [](const Activations& a) { return a.captured.size(); })
      .def("__iter__", [](const Activations& a) { return py::iter(names_of(a)); })
      .def("keys", &names_of, "The captured points' names, in the order a run meets them.")
      .def(
          "values",
          [](const Activations& a) {
            std::vector<torch::Tensor> tensors;
            for (const auto& [site, tensor] : a.captured) tensors.push_back(tensor);
            return tensors;
          },
          "The captured tensors, in the order of keys().")
      .def(
          "items",
          [](const Activations& a) {
            std::vector<std::pair<std::string, torch::Tensor>> pairs;
            for (const auto& [site, tensor] : a.captured) pairs.emplace_back(site.name(), tensor);
            return pairs;
          },
          "(name, tensor) of every captured point, in the order of keys().")
      .def(
          "get",
          [](const Activations& a, const py::handle& key, const py::object& fallback) -> py::object {
            try {
              return py::cast(captured_at(a, key));
            } catch (const py::key_error&) {
              return fallback;
            }
          },
          py::arg("key"), py::arg("default") = py::none(), "The tensor at key, or default where it was not captured.")
      .def("__repr__", [](const Activations& a) {
        std::vector<std::string> entries;
        for (const auto& [site, tensor] : a.captured) {
          entries.push_back(fmt::format("'{}': [{}]", site.name(), fmt::join(tensor.sizes(), ", ")));
        }
        return fmt::format("Activations({{{}}})", fmt::join(entries, ", "));
      });
  // isinstance(result.activations, Mapping), as the dict it replaces was
  py::module_::import("collections.abc").attr("Mapping").attr("register")(activations);

  py::class_<Result>(m, "ProbeResult", "What ActivationProbe.run returns; absent outputs are None.")
      .def_readonly("residuals", &Result::residuals,
                    "torch.Tensor [layers, batch, length, hidden] in the model dtype, on the probe's device: the "
                    "residuals after the blocks of layers=, in that order (one of them: residual(layer)).")
      .def("residual", &residual_of, py::arg("layer"),
           R"doc(The residual [batch, length, hidden] after block layer (-1: the embedding), asked for with layers=.

A layer that was not asked for is a KeyError naming those that were.

>>> result = icgt.ActivationProbe(toy_bundle).run(" w1 w2", layers=[2, 0])
>>> torch.equal(result.residual(0), result.residuals[1])
True
)doc")
      .def_property_readonly(
          "activations", [](const Result& r) { return Activations{r.activations, r.layers}; },
          "The captured hook points (an Activations mapping): result.activations['blocks.3.attn.hook_z'], or "
          "result.activations['z', 3].")
      .def_property_readonly(
          "target_probs", [](const Result& r) { return optional_tensor(r.target_probs); },
          "torch.Tensor [batch, length, targets] (float32): next-token probabilities of the target ids, or None.")
      .def_property_readonly(
          "logits", [](const Result& r) { return optional_tensor(r.logits); },
          "torch.Tensor [batch, positions, vocab] (float32): logits (or log-probabilities) at the asked positions.")
      .def_property_readonly(
          "top_k_values", [](const Result& r) { return optional_tensor(r.top_k_values); },
          "torch.Tensor [batch, length, k] (float32): the k largest logits (or log-probabilities) at every position.")
      .def_property_readonly(
          "top_k_ids", [](const Result& r) { return optional_tensor(r.top_k_ids); },
          "torch.Tensor [batch, length, k] (int64): their token ids.")
      .def_readonly("attention_scores", &Result::attention_scores,
                    "list of torch.Tensor [layers, batch, heads] (float32), one per AttentionScore asked for.")
      .def("__repr__", [](const Result& r) {
        std::string text = fmt::format("ProbeResult(residuals=[{}] of layers [{}]", fmt::join(r.residuals.sizes(), ", "),
                                       fmt::join(r.layers, ", "));
        for (const auto& [site, tensor] : r.activations) {
          text += fmt::format(", '{}'=[{}]", site.name(), fmt::join(tensor.sizes(), ", "));
        }
        for (const auto& [name, tensor] : {std::pair{"target_probs", r.target_probs}, std::pair{"logits", r.logits},
                                           std::pair{"top_k_ids", r.top_k_ids}}) {
          if (tensor.defined()) text += fmt::format(", {}=[{}]", name, fmt::join(tensor.sizes(), ", "));
        }
        if (!r.attention_scores.empty()) text += fmt::format(", attention_scores={}", r.attention_scores.size());
        return text + ")";
      });
}

}  // namespace icgt::python
