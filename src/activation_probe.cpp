#include "icgt/activation_probe.hpp"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <optional>

#include "head_ablations.hpp"
#include "icgt/errors.hpp"
#include "model_backend.hpp"
#include "probe_device.hpp"
#include "probe_plan.hpp"
#include "request_checks.hpp"
#include "tensor_checks.hpp"

namespace icgt {
namespace {

// Marks a text that several tokens share, so token_id can refuse it instead of guessing.
constexpr std::int64_t kAmbiguousText = -1;
// Tokens per forward pass on a CPU when max_batch is automatic: one 1400-token walk at a time keeps
// a block's activations in cache and runs SmolLM2-135M's forward pass 1.13x to 1.17x faster than 16
// walks in one pass; shorter walks are grouped up to the same size (docs/performance.md).
constexpr std::int64_t kCpuTokensPerPass = 2048;

// The points inside a block, which make the probe drive the block's steps when read or changed there.
bool is_inside_a_block(HookPoint point) { return point != HookPoint::ResidPre && point != HookPoint::ResidPost; }

}  // namespace

ActivationProbe::ActivationProbe(const std::string& bundle_path, const std::string& device)
    : device_(detail::resolve_device(device, "ActivationProbe")) {
  LoadedModel loaded = load_torchscript_bundle(bundle_path, device_);
  model_ = std::move(loaded.model);
  info_ = std::move(loaded.info);
  vocabulary_ = std::move(loaded.vocabulary);
  for (std::int64_t id = 0; id < static_cast<std::int64_t>(vocabulary_.size()); ++id) {
    const auto [entry, inserted] = ids_by_text_.emplace(vocabulary_[id], id);
    if (!inserted) entry->second = kAmbiguousText;
  }
}

ActivationProbe::~ActivationProbe() = default;
ActivationProbe::ActivationProbe(ActivationProbe&&) noexcept = default;
ActivationProbe& ActivationProbe::operator=(ActivationProbe&&) noexcept = default;

bool ActivationProbe::native_bfloat16(const std::string& device) {
  const char* function = "ActivationProbe.native_bfloat16";
  return detail::bfloat16_support(detail::resolve_device(device, function), function).native;
}

ActivationProbe::AutomaticDtype ActivationProbe::automatic_dtype(const std::string& device) {
  const char* function = "ActivationProbe.automatic_dtype";
  const detail::BFloat16Support support = detail::bfloat16_support(detail::resolve_device(device, function), function);
  const std::string dtype = support.native ? "bfloat16" : "float32";
  return {dtype, fmt::format("{}: {}", support.why, dtype)};
}

std::int64_t ActivationProbe::token_id(const std::string& text) const {
  const auto found = ids_by_text_.find(text);
  if (found == ids_by_text_.end()) {
    throw ValueError(fmt::format("ActivationProbe.token_id: no single token of this {} vocabulary is '{}'; the "
                                 "tokenizer splits it (icgt.tokens shows how)",
                                 info_.architecture, detail::escaped(text)));
  }
  if (found->second == kAmbiguousText) {
    throw ValueError(fmt::format("ActivationProbe.token_id: several tokens have the text '{}'; ask the tokenizer "
                                 "which one it uses",
                                 detail::escaped(text)));
  }
  return found->second;
}

const std::string& ActivationProbe::token_text(std::int64_t id) const {
  if (id < 0 || id >= static_cast<std::int64_t>(vocabulary_.size())) {
    throw ValueError(fmt::format("ActivationProbe.token_text: token id {} is outside the vocabulary 0..{}", id,
                                 vocabulary_.size() - 1));
  }
  return vocabulary_[id];
}

torch::Tensor ActivationProbe::unembedding(const torch::Tensor& token_ids) const {
  const std::string function = "ActivationProbe.unembedding";
  detail::check_integer(token_ids, 1, function, "token_ids", "[n]");
  const torch::Tensor ids = token_ids.to(torch::kCPU, torch::kLong);
  if (ids.numel() > 0 && (ids.min().item<std::int64_t>() < 0 || ids.max().item<std::int64_t>() >= info_.vocab_size)) {
    throw ValueError(fmt::format("{}: token ids {}..{} reach outside the vocabulary 0..{}", function,
                                 ids.min().item<std::int64_t>(), ids.max().item<std::int64_t>(),
                                 info_.vocab_size - 1));
  }
  return model_->unembedding().index_select(0, ids.to(device_)).to(torch::kCPU, torch::kFloat32);
}


ActivationProbe::ScopedHooks::ScopedHooks(ActivationProbe& probe, const std::vector<std::pair<HookSite, Hook>>& hooks)
    : probe_(probe) {
  try {
    for (const auto& [site, hook] : hooks) handles_.push_back(probe_.add_hook(site, hook));
  } catch (...) {
    for (int handle : handles_) probe_.remove_hook(handle);
    throw;
  }
}

ActivationProbe::ScopedHooks::~ScopedHooks() {
  // A hook that removed itself, or clear_hooks, already took some away.
  for (int handle : handles_) {
    for (auto& [site, list] : probe_.hooks_) {
      list.erase(std::remove_if(list.begin(), list.end(), [&](const auto& entry) { return entry.first == handle; }),
                 list.end());
    }
  }
}

int ActivationProbe::add_hook(const HookSite& site, Hook hook) {
  detail::check_site(info_, site, "add_hook");
  if (!hook) throw ValueError("ActivationProbe.add_hook: the hook is empty; expected a callable");
  hooks_[site].emplace_back(next_hook_handle_, std::make_shared<const Hook>(std::move(hook)));
  return next_hook_handle_++;
}

int ActivationProbe::add_hook(int layer, Hook hook) {
  detail::check_layer(info_, layer, "add_hook");
  return add_hook(HookSite{layer, HookPoint::ResidPost}, std::move(hook));
}

void ActivationProbe::remove_hook(int handle) {
  for (auto& [site, hooks] : hooks_) {
    const auto found =
        std::find_if(hooks.begin(), hooks.end(), [&](const auto& entry) { return entry.first == handle; });
    if (found != hooks.end()) {
      hooks.erase(found);
      return;
    }
  }
  throw ValueError(fmt::format("ActivationProbe.remove_hook: no hook has handle {} (already removed?)", handle));
}

void ActivationProbe::clear_hooks() { hooks_.clear(); }

void ActivationProbe::set_head_gates(int layer, const torch::Tensor& gates) {
  detail::check_layer(info_, layer, "set_head_gates");
  if (layer == kEmbeddingLayer) {
    throw ValueError("ActivationProbe.set_head_gates: the embedding layer has no attention heads; expected 0.."
                     + std::to_string(info_.num_layers - 1));
  }
  if (!gates.defined() || gates.dim() != 1 || gates.size(0) != info_.num_heads) {
    throw ValueError(fmt::format("ActivationProbe.set_head_gates: expected {} gates (one per head), got {}",
                                 info_.num_heads,
                                 gates.defined() ? fmt::format("shape [{}]", fmt::join(gates.sizes(), ", ")) : "none"));
  }
  if (!gates.is_floating_point()) {
    throw TypeError(fmt::format("ActivationProbe.set_head_gates: gates must be floating point, got {}",
                                c10::toString(gates.scalar_type())));
  }
  const torch::Tensor bad = ~torch::isfinite(gates) | (gates < 0);
  if (bad.any().item<bool>()) {
    const auto head = bad.nonzero()[0][0].item<std::int64_t>();
    throw ValueError(fmt::format("ActivationProbe.set_head_gates: gate {} (head {}) is {}; expected a finite factor "
                                 ">= 0 (0 ablates the head, 1 leaves it)",
                                 head, head, gates[head].item<double>()));
  }
  // A copy even where no conversion is needed: a caller who changes its tensor later changes nothing.
  head_gates_[layer] = gates.detach().to(device_, info_.dtype, /*non_blocking=*/false, /*copy=*/true);
}

void ActivationProbe::clear_head_gates() { head_gates_.clear(); }

ActivationProbe::Result ActivationProbe::run(const torch::Tensor& token_ids, const Request& request) {
  detail::check_request(info_, token_ids, request);
  // The hooks and head gates of this run: copies (of shared callables, and of gate tensors that the
  // probe never changes in place), so that hooks may change the probe's hooks and gates while they
  // run; the changes apply to the next run.
  HookList hooks = hooks_;
  std::map<int, torch::Tensor> head_gates = head_gates_;
  // Inference mode skips autograd's bookkeeping (version counters, views): faster, and its
  // tensors cannot be saved for backward, so a run that asks for gradients goes without it.
  std::optional<c10::InferenceMode> inference;
  if (!request.grad) inference.emplace();
  const torch::Tensor ids = token_ids.to(device_, torch::kLong);
  const std::int64_t batch = ids.size(0), length = ids.size(1);

  Plan plan{request, std::move(hooks), std::move(head_gates), {}, {},
            detail::resolve_head_ablations(*this, ids, request), {}, {}, kEmbeddingLayer, false};
  int run_hook = -1;  // the run's own hooks are named -1, -2, ... in messages
  for (const auto& [site, hook] : request.hooks) plan.hooks[site].emplace_back(run_hook--, std::make_shared<const Hook>(hook));
  if (request.target_ids.defined()) plan.targets = request.target_ids.to(device_, torch::kLong);
  for (std::int64_t position : request.logit_positions) plan.logit_positions.push_back((position + length) % length);
  plan.needs_head = plan.targets.defined() || !plan.logit_positions.empty() || request.top_k > 0;
  plan.captured.insert(request.captures.begin(), request.captures.end());
  const auto touch = [&](const HookSite& site) {
    plan.last_block = std::max(plan.last_block, site.layer);
    if (is_inside_a_block(site.point)) plan.inside.insert(site.layer);
  };
  for (int layer : request.layers) touch({layer, HookPoint::ResidPost});
  for (const HookSite& site : request.captures) touch(site);
  for (const auto& [site, list] : plan.hooks) {
    if (!list.empty()) touch(site);
  }
  for (const HeadAblation& ablation : plan.ablations) touch({ablation.layer, HookPoint::Z});
  for (const AttentionScore& score : request.attention_scores) {
    if (score.layers.empty()) {
      for (int layer = 0; layer < info_.num_layers; ++layer) touch({layer, HookPoint::Pattern});
    }
    for (int layer : score.layers) touch({layer, HookPoint::Pattern});
  }
  if (plan.needs_head) plan.last_block = info_.num_layers - 1;

  // Everything kept, allocated once for the whole batch.
  const auto options = torch::TensorOptions().dtype(info_.dtype).device(device_);
  const auto floats = torch::TensorOptions().dtype(torch::kFloat32).device(device_);
  std::map<HookSite, std::vector<std::int64_t>> shapes;
  for (const HookSite& site : request.captures) {
    switch (site.point) {
      case HookPoint::Pattern:
        shapes[site] = {batch, info_.num_heads, length, length};
        break;
      case HookPoint::Z:
        shapes[site] = {batch, length, info_.num_heads, info_.head_dim};
        break;
      default:
        shapes[site] = {batch, length, info_.hidden_size};
    }
  }
  double kept = static_cast<double>(request.layers.size()) * batch * length * info_.hidden_size;
  for (const auto& [site, shape] : shapes) kept += static_cast<double>(c10::multiply_integers(shape));
  kept = kept * static_cast<double>(c10::elementSize(info_.dtype)) +
         4.0 * batch * (static_cast<double>(plan.logit_positions.size()) * info_.vocab_size + 3.0 * length * request.top_k);
  detail::check_memory(kept, "ActivationProbe.run", "the captures and outputs asked for");

  Result result;
  result.layers = request.layers;
  result.residuals = torch::empty({static_cast<std::int64_t>(request.layers.size()), batch, length, info_.hidden_size},
                                  options);
  for (const auto& [site, shape] : shapes) result.activations[site] = torch::empty(shape, options);
  if (plan.targets.defined()) result.target_probs = torch::empty({batch, length, plan.targets.size(0)}, floats);
  if (!plan.logit_positions.empty()) {
    result.logits = torch::empty({batch, static_cast<std::int64_t>(plan.logit_positions.size()), info_.vocab_size},
                                 floats);
  }
  if (request.top_k > 0) {
    result.top_k_values = torch::empty({batch, length, request.top_k}, floats);
    result.top_k_ids = torch::empty({batch, length, request.top_k}, floats.dtype(torch::kLong));
  }
  for (const AttentionScore& score : request.attention_scores) {
    const auto layers = static_cast<std::int64_t>(score.layers.empty() ? info_.num_layers : score.layers.size());
    result.attention_scores.push_back(torch::empty({layers, batch, info_.num_heads}, floats));
  }

  std::int64_t sub_batch = request.max_batch > 0 ? std::min(request.max_batch, batch) : automatic_batch(batch, length);
  for (std::int64_t offset = 0; offset < batch;) {
    const std::int64_t size = std::min(sub_batch, batch - offset);
    try {
      run_sub_batch(ids.narrow(0, offset, size), plan, offset, result);
      offset += size;
    } catch (const c10::OutOfMemoryError& error) {
      if (request.max_batch > 0 || size == 1) {
        throw RuntimeError(fmt::format("ActivationProbe.run: out of memory with {} sequence(s) of {} tokens on {}: {}",
                                       size, length, device_.str(), error.what_without_backtrace()));
      }
      sub_batch = size / 2;
    }
  }
  return result;
}

std::int64_t ActivationProbe::automatic_batch(std::int64_t batch, std::int64_t length) const {
  if (batch < 1 || length < 1) {
    throw ValueError(fmt::format("ActivationProbe.automatic_batch: batch and length must be at least 1; got {} and {}",
                                 batch, length));
  }
  return device_.is_cpu() ? std::clamp<std::int64_t>(kCpuTokensPerPass / length, 1, batch) : batch;
}

}  // namespace icgt
