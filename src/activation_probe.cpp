#include "icgt/activation_probe.hpp"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>

#include <algorithm>
#include <set>

#include "icgt/errors.hpp"
#include "model_backend.hpp"
#include "tensor_checks.hpp"

namespace icgt {
namespace {

// Marks a text that several tokens share, so token_id can refuse it instead of guessing.
constexpr std::int64_t kAmbiguousText = -1;
// Logit rows per head call: bounds the float32 logits of one chunk to 256 MiB whatever the vocabulary.
constexpr std::int64_t kLogitElementsPerChunk = std::int64_t{1} << 26;
// Query rows per block of attention weights formed at once: 64 MiB of float32, whatever the length.
constexpr std::int64_t kPatternElementsPerChunk = std::int64_t{1} << 24;
// Tokens per forward pass on a CPU when max_batch is automatic: one 1400-token walk at a time keeps
// a block's activations in cache and runs SmolLM2-135M's forward pass 1.13x to 1.17x faster than 16
// walks in one pass; shorter walks are grouped up to the same size (docs/performance.md).
constexpr std::int64_t kCpuTokensPerPass = 2048;

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const c10::Error&) {
  }
  if (!device || !(device->is_cpu() || device->is_cuda())) {
    throw ValueError(fmt::format("ActivationProbe: device '{}' is not understood; expected 'auto', 'cpu', 'cuda' or "
                                 "'cuda:N'",
                                 name));
  }
  if (device->is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw RuntimeError(fmt::format("ActivationProbe: device '{}' was asked for, but this torch sees no CUDA GPU; "
                                     "use 'cpu' or 'auto'",
                                     name));
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (device->has_index() && device->index() >= count) {
      throw ValueError(fmt::format("ActivationProbe: device '{}' does not exist; this machine has cuda:0..cuda:{}",
                                   name, count - 1));
    }
    if (!device->has_index()) device.emplace(torch::kCUDA, 0);
  }
  return *device;
}

void check_integer_ids(const torch::Tensor& ids, const char* name, std::int64_t rank) {
  if (!ids.defined() || ids.dim() != rank) {
    throw TypeError(fmt::format("ActivationProbe.run: {} must be a {}-D integer tensor, got {}", name, rank,
                                ids.defined() ? fmt::format("{}-D", ids.dim()) : "nothing"));
  }
  if (!at::isIntegralType(ids.scalar_type(), /*includeBool=*/false)) {
    throw TypeError(fmt::format("ActivationProbe.run: {} must hold integer token ids, got dtype {}", name,
                                c10::toString(ids.scalar_type())));
  }
}

void check_id_range(const torch::Tensor& ids, const char* name, int vocab_size) {
  const auto low = ids.min().item<std::int64_t>();
  const auto high = ids.max().item<std::int64_t>();
  if (low < 0 || high >= vocab_size) {
    throw ValueError(fmt::format("ActivationProbe.run: {} holds token id {}; the vocabulary is 0..{}", name,
                                 low < 0 ? low : high, vocab_size - 1));
  }
}

// The points inside a block, which make the probe drive the block's steps when read or changed there.
bool is_inside_a_block(HookPoint point) { return point != HookPoint::ResidPre && point != HookPoint::ResidPost; }

const char* ablation_name(ActivationProbe::HeadAblation::Kind kind) {
  switch (kind) {
    case ActivationProbe::HeadAblation::Kind::Zero:
      return "zero";
    case ActivationProbe::HeadAblation::Kind::Mean:
      return "mean";
    case ActivationProbe::HeadAblation::Kind::Patch:
      return "patch";
  }
  return "?";
}

}  // namespace

// What one run needs, worked out once before its sub-batches.
struct ActivationProbe::Plan {
  const Request& request;
  HookList hooks;  // the persistent hooks when the run started, then the run's own
  torch::Tensor targets;
  std::vector<std::int64_t> logit_positions;  // counted from the start
  std::vector<HeadAblation> ablations;        // with their values
  std::set<HookSite> captured;
  std::set<int> inside;  // blocks whose steps the probe drives
  int last_block = kEmbeddingLayer;
  bool needs_head = false;
};

ActivationProbe::ActivationProbe(const std::string& bundle_path, const std::string& device)
    : device_(resolve_device(device)) {
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

void ActivationProbe::check_layer(int layer, const char* method) const {
  if (layer < kEmbeddingLayer || layer >= info_.num_layers) {
    throw ValueError(fmt::format("ActivationProbe.{}: layer {} is out of range; expected -1 (embeddings) to {} "
                                 "(the last of {} blocks)",
                                 method, layer, info_.num_layers - 1, info_.num_layers));
  }
}

void ActivationProbe::check_site(const HookSite& site, const char* method) const {
  check_layer(site.layer, method);
  if (site.layer == kEmbeddingLayer && site.point != HookPoint::ResidPost) {
    throw ValueError(fmt::format("ActivationProbe.{}: layer -1 (the embedding output) has only the point "
                                 "'resid_post' (hook_embed); the points inside a block need a layer 0..{}",
                                 method, info_.num_layers - 1));
  }
}

int ActivationProbe::add_hook(const HookSite& site, Hook hook) {
  check_site(site, "add_hook");
  if (!hook) throw ValueError("ActivationProbe.add_hook: the hook is empty; expected a callable");
  hooks_[site].emplace_back(next_hook_handle_, std::make_shared<const Hook>(std::move(hook)));
  return next_hook_handle_++;
}

int ActivationProbe::add_hook(int layer, Hook hook) {
  check_layer(layer, "add_hook");
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
  check_layer(layer, "set_head_gates");
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
  head_gates_[layer] = gates.detach().to(device_, info_.dtype);
}

void ActivationProbe::clear_head_gates() { head_gates_.clear(); }

void ActivationProbe::check_request(const torch::Tensor& token_ids, const Request& request) const {
  check_integer_ids(token_ids, "token_ids", 2);
  const std::int64_t batch = token_ids.size(0), length = token_ids.size(1);
  if (batch == 0 || length == 0) {
    throw ValueError(fmt::format("ActivationProbe.run: token_ids is empty ({} x {}); expected at least one sequence "
                                 "of at least one token",
                                 batch, length));
  }
  check_id_range(token_ids, "token_ids", info_.vocab_size);
  if (length > info_.max_positions) {
    throw ValueError(fmt::format("ActivationProbe.run: token_ids has {} positions, more than the {} this {} model "
                                 "was trained for (max_position_embeddings); shorten the sequences",
                                 length, info_.max_positions, info_.architecture));
  }
  std::set<int> layers;
  for (int layer : request.layers) {
    check_layer(layer, "run");
    if (!layers.insert(layer).second) {
      throw ValueError(fmt::format("ActivationProbe.run: layer {} is requested twice", layer));
    }
  }
  std::set<HookSite> captures;
  for (const HookSite& site : request.captures) {
    check_site(site, "run");
    if (!captures.insert(site).second) {
      throw ValueError(fmt::format("ActivationProbe.run: {} is captured twice", site.name()));
    }
  }
  for (const auto& [site, hook] : request.hooks) {
    check_site(site, "run");
    if (!hook) throw ValueError(fmt::format("ActivationProbe.run: the hook for {} is empty", site.name()));
  }
  if (request.target_ids.defined()) {
    if (request.target_ids.numel() == 0) {
      throw ValueError("ActivationProbe.run: target_ids is empty; pass none or at least one id");
    }
    check_integer_ids(request.target_ids, "target_ids", 1);
    check_id_range(request.target_ids, "target_ids", info_.vocab_size);
  }
  for (std::int64_t position : request.logit_positions) {
    if (position < -length || position >= length) {
      throw ValueError(fmt::format("ActivationProbe.run: logit position {} is outside the sequence of {} tokens; "
                                   "expected {}..{} (negative counts from the end)",
                                   position, length, -length, length - 1));
    }
  }
  if (request.top_k < 0 || request.top_k > info_.vocab_size) {
    throw ValueError(fmt::format("ActivationProbe.run: top_k is {}; expected 0 (none) to {} (the vocabulary)",
                                 request.top_k, info_.vocab_size));
  }
  for (std::size_t s = 0; s < request.attention_scores.size(); ++s) {
    const AttentionScore& score = request.attention_scores[s];
    for (int layer : score.layers) check_site({layer, HookPoint::Pattern}, "run");
    if (score.offset < 0 || score.first_query < 0 || std::max(score.offset, score.first_query) >= length) {
      throw ValueError(fmt::format("ActivationProbe.run: attention_scores[{}] has offset {} and first_query {}; "
                                   "expected both >= 0 and some query q >= both below the length {}",
                                   s, score.offset, score.first_query, length));
    }
  }
  std::set<std::pair<int, int>> ablated;
  bool needs_patch_source = false;
  for (const HeadAblation& ablation : request.head_ablations) {
    if (ablation.layer < 0 || ablation.layer >= info_.num_layers) {
      throw ValueError(fmt::format("ActivationProbe.run: a {} ablation names layer {}; expected a block 0..{}",
                                   ablation_name(ablation.kind), ablation.layer, info_.num_layers - 1));
    }
    if (ablation.heads.empty()) {
      throw ValueError(fmt::format("ActivationProbe.run: the {} ablation of layer {} names no head",
                                   ablation_name(ablation.kind), ablation.layer));
    }
    for (int head : ablation.heads) {
      if (head < 0 || head >= info_.num_heads) {
        throw ValueError(fmt::format("ActivationProbe.run: head {} of layer {} does not exist; expected 0..{}", head,
                                     ablation.layer, info_.num_heads - 1));
      }
      if (!ablated.emplace(ablation.layer, head).second) {
        throw ValueError(fmt::format("ActivationProbe.run: head {} of layer {} is ablated twice", head,
                                     ablation.layer));
      }
    }
    const auto heads = static_cast<std::int64_t>(ablation.heads.size());
    const std::vector<std::int64_t> expected =
        ablation.kind == HeadAblation::Kind::Mean ? std::vector<std::int64_t>{heads, info_.head_dim}
                                                  : std::vector<std::int64_t>{batch, length, heads, info_.head_dim};
    if (ablation.kind == HeadAblation::Kind::Zero) {
      if (ablation.values.defined()) {
        throw ValueError(fmt::format("ActivationProbe.run: the zero ablation of layer {} takes no values",
                                     ablation.layer));
      }
    } else if (ablation.values.defined()) {
      if (ablation.values.sizes().vec() != expected || !ablation.values.is_floating_point()) {
        throw ValueError(fmt::format("ActivationProbe.run: the {} ablation of layer {} has values of shape {} and "
                                     "dtype {}; expected a floating-point tensor [{}]",
                                     ablation_name(ablation.kind), ablation.layer, detail::shape_of(ablation.values),
                                     c10::toString(ablation.values.scalar_type()), fmt::join(expected, ", ")));
      }
      if (!torch::isfinite(ablation.values).all().item<bool>()) {
        throw ValueError(fmt::format("ActivationProbe.run: the {} ablation of layer {} has NaN or infinite values",
                                     ablation_name(ablation.kind), ablation.layer));
      }
    } else if (ablation.kind == HeadAblation::Kind::Patch) {
      needs_patch_source = true;
    }
  }
  if (needs_patch_source) {
    if (!request.patch_source.defined()) {
      throw ValueError("ActivationProbe.run: a patch ablation has no values and there is no patch_source to take "
                       "them from; give one or the other");
    }
    check_integer_ids(request.patch_source, "patch_source", 2);
    if (request.patch_source.sizes() != token_ids.sizes()) {
      throw ValueError(fmt::format("ActivationProbe.run: patch_source has shape {}, token_ids {}; a patch takes "
                                   "each position's values from the same position of the other input",
                                   detail::shape_of(request.patch_source), detail::shape_of(token_ids)));
    }
    check_id_range(request.patch_source, "patch_source", info_.vocab_size);
  } else if (request.patch_source.defined()) {
    throw ValueError("ActivationProbe.run: patch_source is given but no patch ablation without values uses it");
  }
  if (request.max_batch < 0) {
    throw ValueError(fmt::format("ActivationProbe.run: max_batch must be 0 (automatic) or positive, got {}",
                                 request.max_batch));
  }
  if (request.start_residual.defined()) {
    const std::vector<std::int64_t> expected{batch, length, info_.hidden_size};
    if (request.start_residual.sizes().vec() != expected || !request.start_residual.is_floating_point()) {
      throw ValueError(fmt::format("ActivationProbe.run: start_residual has shape {} and dtype {}; expected a "
                                   "floating-point tensor [{}] (the residual entering block start_layer)",
                                   detail::shape_of(request.start_residual),
                                   c10::toString(request.start_residual.scalar_type()), fmt::join(expected, ", ")));
    }
    if (request.start_layer < 0 || request.start_layer >= info_.num_layers) {
      throw ValueError(fmt::format("ActivationProbe.run: start_layer is {}; expected a block 0..{}",
                                   request.start_layer, info_.num_layers - 1));
    }
    const auto before = [&](int layer) { return layer < request.start_layer; };
    for (int layer : request.layers) {
      if (before(layer)) {
        throw ValueError(fmt::format("ActivationProbe.run: layer {} comes before start_layer {}, which the run "
                                     "resumes from",
                                     layer, request.start_layer));
      }
    }
    for (const HookSite& site : request.captures) {
      if (before(site.layer)) {
        throw ValueError(fmt::format("ActivationProbe.run: {} comes before start_layer {}, which the run resumes "
                                     "from",
                                     site.name(), request.start_layer));
      }
    }
    for (const AttentionScore& score : request.attention_scores) {
      if (score.layers.empty() || std::any_of(score.layers.begin(), score.layers.end(), before)) {
        throw ValueError(fmt::format("ActivationProbe.run: attention scores of blocks before start_layer {} (or of "
                                     "every block) cannot come from a run that resumes there; name the blocks",
                                     request.start_layer));
      }
    }
    for (const auto& ablation : request.head_ablations) {
      if (before(ablation.layer)) {
        throw ValueError(fmt::format("ActivationProbe.run: an ablation of layer {} comes before start_layer {}",
                                     ablation.layer, request.start_layer));
      }
    }
  } else if (request.start_layer != 0) {
    throw ValueError("ActivationProbe.run: start_layer is given without start_residual to resume from");
  }
}

std::vector<ActivationProbe::HeadAblation> ActivationProbe::resolve_ablations(const torch::Tensor& ids,
                                                                              const Request& request) {
  std::vector<HeadAblation> ablations = request.head_ablations;
  // The z that mean and patch ablations without values need, from runs without ablations.
  const auto source_z = [&](HeadAblation::Kind kind, const torch::Tensor& source) {
    Request capture;
    capture.max_batch = request.max_batch;
    capture.after_block = request.after_block;
    for (const HeadAblation& ablation : ablations) {
      if (ablation.kind == kind && !ablation.values.defined()) capture.captures.push_back({ablation.layer, HookPoint::Z});
    }
    return capture.captures.empty() ? Result{} : run(source, capture);
  };
  const Result means = source_z(HeadAblation::Kind::Mean, ids);
  const Result patches = source_z(HeadAblation::Kind::Patch, request.patch_source);
  for (HeadAblation& ablation : ablations) {
    const torch::Tensor heads = torch::tensor(std::vector<std::int64_t>(ablation.heads.begin(), ablation.heads.end()),
                                              torch::TensorOptions().dtype(torch::kLong).device(device_));
    const HookSite z{ablation.layer, HookPoint::Z};
    if (ablation.values.defined()) {
      ablation.values = ablation.values.to(device_, info_.dtype);
    } else if (ablation.kind == HeadAblation::Kind::Mean) {
      ablation.values = means.activations.at(z).to(torch::kFloat64).mean({0, 1}).to(info_.dtype).index_select(0, heads);
    } else if (ablation.kind == HeadAblation::Kind::Patch) {
      ablation.values = patches.activations.at(z).index_select(2, heads);
    }
  }
  return ablations;
}

ActivationProbe::Result ActivationProbe::run(const torch::Tensor& token_ids, const Request& request) {
  check_request(token_ids, request);
  // The hooks of this run: a copy of the list (of shared callables), so that hooks may change the
  // probe's hooks while they run; the changes apply to the next run.
  HookList hooks = hooks_;
  c10::InferenceMode inference;
  const torch::Tensor ids = token_ids.to(device_, torch::kLong);
  const std::int64_t batch = ids.size(0), length = ids.size(1);

  Plan plan{request, std::move(hooks), {}, {}, resolve_ablations(ids, request), {}, {}, kEmbeddingLayer, false};
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

namespace {

// Calls the hooks of a site in order, each checked to leave a tensor of the shape, dtype and device
// it was given.
torch::Tensor call_hooks(const std::vector<std::pair<int, std::shared_ptr<const ActivationProbe::Hook>>>& hooks,
                         const HookSite& site, torch::Tensor activation) {
  for (const auto& [handle, hook] : hooks) {
    const auto sizes = activation.sizes().vec();
    const auto dtype = activation.scalar_type();
    const auto device = activation.device();
    (*hook)(site.layer, activation);
    if (!activation.defined() || activation.sizes().vec() != sizes || activation.scalar_type() != dtype ||
        activation.device() != device) {
      throw ValueError(fmt::format("ActivationProbe.run: hook {} at {} left a tensor that is not a {} tensor of "
                                   "shape [{}] on {}",
                                   handle, site.name(), c10::toString(dtype), fmt::join(sizes, ", "), device.str()));
    }
  }
  return activation;
}

// Adds to sum [B, heads] (float64) the weights from each query q of rows first_row.. of a block of
// attention weights [B, heads, rows, keys] to key q - offset, for q >= first_query.
void add_score(const torch::Tensor& weights, std::int64_t first_row, const ActivationProbe::AttentionScore& score,
               torch::Tensor& sum) {
  const std::int64_t first = std::max({score.first_query, score.offset, first_row});
  const std::int64_t end = first_row + weights.size(2);
  if (first >= end) return;
  const torch::Tensor queries = torch::arange(first, end, torch::TensorOptions().dtype(torch::kLong).device(weights.device()));
  const torch::Tensor rows = weights.index_select(2, queries - first_row);
  const torch::Tensor keys = (queries - score.offset).view({1, 1, -1, 1}).expand({rows.size(0), rows.size(1), -1, 1});
  sum.add_(rows.gather(3, keys).to(torch::kFloat64).sum({2, 3}));
}

}  // namespace

torch::Tensor ActivationProbe::at_site(const Plan& plan, const HookSite& site, torch::Tensor activation,
                                       std::int64_t offset, Result& result) const {
  const auto hooks = plan.hooks.find(site);
  if (hooks != plan.hooks.end()) activation = call_hooks(hooks->second, site, std::move(activation));
  if (plan.captured.count(site)) {
    result.activations.at(site).narrow(0, offset, activation.size(0)).copy_(activation);
  }
  if (site.point == HookPoint::ResidPost) {
    for (std::size_t i = 0; i < plan.request.layers.size(); ++i) {
      if (plan.request.layers[i] == site.layer) {
        result.residuals[static_cast<std::int64_t>(i)].narrow(0, offset, activation.size(0)).copy_(activation);
      }
    }
  }
  return activation;
}

void ActivationProbe::run_sub_batch(const torch::Tensor& ids, const Plan& plan, std::int64_t offset,
                                    Result& result) const {
  const Request& request = plan.request;
  const bool resumed = request.start_residual.defined();
  torch::Tensor hidden;
  if (resumed) {
    hidden = request.start_residual.narrow(0, offset, ids.size(0)).to(device_, info_.dtype);
  } else {
    hidden = at_site(plan, {kEmbeddingLayer, HookPoint::ResidPost}, model_->embed(ids), offset, result);
    if (request.after_block) request.after_block(kEmbeddingLayer);
  }
  for (int layer = resumed ? request.start_layer : 0; layer <= plan.last_block; ++layer) {
    hidden = at_site(plan, {layer, HookPoint::ResidPre}, std::move(hidden), offset, result);
    if (plan.inside.count(layer)) {
      hidden = run_block_steps(layer, hidden, plan, offset, result);
    } else {
      const auto gate = head_gates_.find(layer);
      hidden = model_->block(layer, hidden,
                             gate == head_gates_.end() ? std::nullopt : std::optional<torch::Tensor>(gate->second));
    }
    hidden = at_site(plan, {layer, HookPoint::ResidPost}, std::move(hidden), offset, result);
    if (request.after_block) request.after_block(layer);
  }
  if (plan.needs_head) read_predictions(hidden, plan, offset, result);
}

torch::Tensor ActivationProbe::run_block_steps(int layer, const torch::Tensor& hidden, const Plan& plan,
                                               std::int64_t offset, Result& result) const {
  const std::int64_t batch = hidden.size(0), length = hidden.size(1);
  auto [q, k, v] = model_->project(layer, model_->attention_input(layer, hidden));

  // The scores this layer takes part in, and their running sums.
  std::vector<std::pair<std::size_t, std::int64_t>> scores;  // (score, index of this layer in its result)
  for (std::size_t s = 0; s < plan.request.attention_scores.size(); ++s) {
    const auto& layers = plan.request.attention_scores[s].layers;
    if (layers.empty()) {
      scores.emplace_back(s, layer);
    } else if (const auto found = std::find(layers.begin(), layers.end(), layer); found != layers.end()) {
      scores.emplace_back(s, found - layers.begin());
    }
  }
  std::vector<torch::Tensor> sums(scores.size());
  for (auto& sum : sums) sum = torch::zeros({batch, info_.num_heads}, q.options().dtype(torch::kFloat64));
  const auto add_scores = [&](const torch::Tensor& weights, std::int64_t first_row) {
    for (std::size_t i = 0; i < scores.size(); ++i) {
      add_score(weights, first_row, plan.request.attention_scores[scores[i].first], sums[i]);
    }
  };

  // The attention weights exist explicitly only where they are read. A hook gets them whole, and
  // may change them: z is then mixed from what it leaves. Otherwise they are formed a block of
  // queries at a time, copied into the capture and reduced to scores, and z comes from the fused
  // attention kernel, as in block().
  const HookSite pattern_site{layer, HookPoint::Pattern};
  const bool pattern_hooked = plan.hooks.count(pattern_site) > 0 && !plan.hooks.at(pattern_site).empty();
  const bool pattern_captured = plan.captured.count(pattern_site) > 0;
  torch::Tensor z;
  if (pattern_hooked) {
    const torch::Tensor weights = at_site(plan, pattern_site, model_->pattern(layer, q, k, 0, length), offset, result);
    add_scores(weights, 0);
    z = model_->mix(layer, weights, v);
  } else {
    if (pattern_captured || !scores.empty()) {
      const torch::Tensor capture =
          pattern_captured ? result.activations.at(pattern_site).narrow(0, offset, batch) : torch::Tensor();
      const std::int64_t rows = std::max<std::int64_t>(1, kPatternElementsPerChunk / (batch * info_.num_heads * length));
      for (std::int64_t first = 0; first < length; first += rows) {
        const torch::Tensor weights = model_->pattern(layer, q, k, first, std::min(rows, length - first));
        if (pattern_captured) capture.narrow(2, first, weights.size(2)).copy_(weights);
        add_scores(weights, first);
      }
    }
    z = model_->attend(layer, q, k, v);
  }
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const AttentionScore& score = plan.request.attention_scores[scores[i].first];
    const auto count = static_cast<double>(length - std::max(score.first_query, score.offset));
    result.attention_scores[scores[i].first][scores[i].second].narrow(0, offset, batch).copy_(sums[i] / count);
  }

  if (const auto gate = head_gates_.find(layer); gate != head_gates_.end()) {
    z = z * gate->second.view({1, 1, info_.num_heads, 1});
  }
  for (const HeadAblation& ablation : plan.ablations) {
    if (ablation.layer != layer) continue;
    for (std::size_t i = 0; i < ablation.heads.size(); ++i) {
      torch::Tensor head = z.select(2, ablation.heads[i]);
      switch (ablation.kind) {
        case HeadAblation::Kind::Zero:
          head.zero_();
          break;
        case HeadAblation::Kind::Mean:
          head.copy_(ablation.values[static_cast<std::int64_t>(i)].view({1, 1, -1}).expand_as(head));
          break;
        case HeadAblation::Kind::Patch:
          head.copy_(ablation.values.narrow(0, offset, batch).select(2, static_cast<std::int64_t>(i)));
          break;
      }
    }
  }
  z = at_site(plan, {layer, HookPoint::Z}, std::move(z), offset, result);
  const torch::Tensor attention = at_site(plan, {layer, HookPoint::AttnOut}, model_->attention_output(layer, z),
                                          offset, result);
  const torch::Tensor middle = at_site(plan, {layer, HookPoint::ResidMid}, hidden + attention, offset, result);
  const torch::Tensor mlp = at_site(plan, {layer, HookPoint::MlpOut}, model_->mlp_output(layer, middle), offset, result);
  return middle + mlp;
}

void ActivationProbe::read_predictions(const torch::Tensor& hidden, const Plan& plan, std::int64_t offset,
                                       Result& result) const {
  const Request& request = plan.request;
  const std::int64_t batch = hidden.size(0);
  const torch::Tensor normed = model_->final_norm(hidden);
  if (!plan.logit_positions.empty()) {
    const torch::Tensor positions = torch::tensor(plan.logit_positions, torch::TensorOptions().dtype(torch::kLong).device(device_));
    torch::Tensor logits = model_->head(normed.index_select(1, positions)).to(torch::kFloat32);
    if (request.log_probs) logits = logits.log_softmax(-1);
    result.logits.narrow(0, offset, batch).copy_(logits);
  }
  if (!plan.targets.defined() && request.top_k == 0) return;

  const torch::Tensor rows = normed.reshape({-1, info_.hidden_size});
  const std::int64_t chunk = std::max<std::int64_t>(1, kLogitElementsPerChunk / info_.vocab_size);
  for (std::int64_t start = 0; start < rows.size(0); start += chunk) {
    const std::int64_t count = std::min(chunk, rows.size(0) - start);
    const torch::Tensor logits = model_->head(rows.narrow(0, start, count)).to(torch::kFloat32);
    const bool full_vocabulary = request.log_probs || request.normalization == Normalization::FullVocabulary;
    const torch::Tensor log_normalizer =
        full_vocabulary ? logits.logsumexp(1, /*keepdim=*/true) : torch::Tensor();
    if (plan.targets.defined()) {
      const torch::Tensor chosen = logits.index_select(1, plan.targets);
      result.target_probs.narrow(0, offset, batch)
          .view({-1, plan.targets.size(0)})
          .narrow(0, start, count)
          .copy_(request.normalization == Normalization::FullVocabulary ? (chosen - log_normalizer).exp()
                                                                         : chosen.softmax(1));
    }
    if (request.top_k > 0) {
      const auto [values, indices] = logits.topk(request.top_k, 1);
      result.top_k_values.narrow(0, offset, batch)
          .view({-1, request.top_k})
          .narrow(0, start, count)
          .copy_(request.log_probs ? values - log_normalizer : values);
      result.top_k_ids.narrow(0, offset, batch).view({-1, request.top_k}).narrow(0, start, count).copy_(indices);
    }
  }
}

}  // namespace icgt
