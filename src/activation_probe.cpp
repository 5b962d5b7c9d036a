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

}  // namespace

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

void ActivationProbe::check_layer(int layer, const char* method) const {
  if (layer < kEmbeddingLayer || layer >= info_.num_layers) {
    throw ValueError(fmt::format("ActivationProbe.{}: layer {} is out of range; expected -1 (embeddings) to {} "
                                 "(the last of {} blocks)",
                                 method, layer, info_.num_layers - 1, info_.num_layers));
  }
}

int ActivationProbe::add_hook(int layer, Hook hook) {
  check_layer(layer, "add_hook");
  if (!hook) throw ValueError("ActivationProbe.add_hook: the hook is empty; expected a callable");
  hooks_[layer].emplace_back(next_hook_handle_, std::make_shared<const Hook>(std::move(hook)));
  return next_hook_handle_++;
}

void ActivationProbe::remove_hook(int handle) {
  for (auto& [layer, hooks] : hooks_) {
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

torch::Tensor ActivationProbe::apply_hooks(const HookList& hooks, int layer, torch::Tensor residual) const {
  const auto found = hooks.find(layer);
  if (found == hooks.end()) return residual;
  for (const auto& [handle, hook] : found->second) {
    const auto sizes = residual.sizes().vec();
    const auto dtype = residual.scalar_type();
    (*hook)(layer, residual);
    if (!residual.defined() || residual.sizes().vec() != sizes || residual.scalar_type() != dtype ||
        residual.device() != device_) {
      throw ValueError(fmt::format("ActivationProbe: hook {} at layer {} left a residual that is not a {} tensor of "
                                   "shape [{}] on {}",
                                   handle, layer, c10::toString(dtype), fmt::join(sizes, ", "), device_.str()));
    }
  }
  return residual;
}

ActivationProbe::Result ActivationProbe::run(const torch::Tensor& token_ids, const Request& request) {
  check_integer_ids(token_ids, "token_ids", 2);
  if (token_ids.size(0) == 0 || token_ids.size(1) == 0) {
    throw ValueError(fmt::format("ActivationProbe.run: token_ids is empty ({} x {}); expected at least one sequence "
                                 "of at least one token",
                                 token_ids.size(0), token_ids.size(1)));
  }
  check_id_range(token_ids, "token_ids", info_.vocab_size);
  if (token_ids.size(1) > info_.max_positions) {
    throw ValueError(fmt::format("ActivationProbe.run: token_ids has {} positions, more than the {} this {} model "
                                 "was trained for (max_position_embeddings); shorten the sequences",
                                 token_ids.size(1), info_.max_positions, info_.architecture));
  }
  std::set<int> seen;
  for (int layer : request.layers) {
    check_layer(layer, "run");
    if (!seen.insert(layer).second) {
      throw ValueError(fmt::format("ActivationProbe.run: layer {} is requested twice", layer));
    }
  }
  torch::Tensor targets;
  if (request.target_ids.defined()) {
    if (request.target_ids.numel() == 0) {
      throw ValueError("ActivationProbe.run: target_ids is empty; pass none or at least one id");
    }
    check_integer_ids(request.target_ids, "target_ids", 1);
    check_id_range(request.target_ids, "target_ids", info_.vocab_size);
    targets = request.target_ids.to(device_, torch::kLong);
  }
  if (request.max_batch < 0) {
    throw ValueError(fmt::format("ActivationProbe.run: max_batch must be 0 (automatic) or positive, got {}",
                                 request.max_batch));
  }

  // The hooks of this run: a copy of the list (of shared callables), so that hooks may change the
  // probe's hooks while they run; the changes apply to the next run.
  const HookList hooks = hooks_;
  c10::InferenceMode inference;
  const torch::Tensor ids = token_ids.to(device_, torch::kLong);
  const std::int64_t batch = ids.size(0), length = ids.size(1);
  Result result;
  result.residuals = torch::empty({static_cast<std::int64_t>(request.layers.size()), batch, length, info_.hidden_size},
                                  torch::TensorOptions().dtype(info_.dtype).device(device_));
  if (targets.defined()) {
    result.target_probs = torch::empty({batch, length, targets.size(0)}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  }
  std::int64_t sub_batch = request.max_batch > 0 ? std::min(request.max_batch, batch) : batch;
  for (std::int64_t offset = 0; offset < batch;) {
    const std::int64_t size = std::min(sub_batch, batch - offset);
    try {
      run_sub_batch(ids.narrow(0, offset, size), request, hooks, targets, offset, result);
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

void ActivationProbe::run_sub_batch(const torch::Tensor& ids, const Request& request, const HookList& hooks,
                                    const torch::Tensor& targets, std::int64_t offset, Result& result) const {
  // Blocks past the last captured or hooked layer matter only when probabilities are wanted.
  int last_block = targets.defined() ? info_.num_layers - 1 : kEmbeddingLayer;
  for (int layer : request.layers) last_block = std::max(last_block, layer);
  if (!hooks.empty()) last_block = std::max(last_block, hooks.rbegin()->first);

  const auto capture = [&](int layer, const torch::Tensor& hidden) {
    for (std::size_t i = 0; i < request.layers.size(); ++i) {
      if (request.layers[i] == layer) result.residuals[static_cast<std::int64_t>(i)].narrow(0, offset, ids.size(0)).copy_(hidden);
    }
  };
  torch::Tensor hidden = apply_hooks(hooks, kEmbeddingLayer, model_->embed(ids));
  capture(kEmbeddingLayer, hidden);
  if (request.after_block) request.after_block(kEmbeddingLayer);
  for (int layer = 0; layer <= last_block; ++layer) {
    const auto gate = head_gates_.find(layer);
    hidden = model_->block(layer, hidden,
                           gate == head_gates_.end() ? std::nullopt : std::optional<torch::Tensor>(gate->second));
    hidden = apply_hooks(hooks, layer, std::move(hidden));
    capture(layer, hidden);
    if (request.after_block) request.after_block(layer);
  }
  if (!targets.defined()) return;

  const torch::Tensor rows = model_->final_norm(hidden).reshape({-1, info_.hidden_size});
  torch::Tensor out = result.target_probs.narrow(0, offset, ids.size(0)).view({-1, targets.size(0)});
  const std::int64_t chunk = std::max<std::int64_t>(1, kLogitElementsPerChunk / info_.vocab_size);
  for (std::int64_t start = 0; start < rows.size(0); start += chunk) {
    const std::int64_t count = std::min(chunk, rows.size(0) - start);
    const torch::Tensor logits = model_->head(rows.narrow(0, start, count)).to(torch::kFloat32);
    const torch::Tensor chosen = logits.index_select(1, targets);
    out.narrow(0, start, count)
        .copy_(request.normalization == Normalization::FullVocabulary
                   ? (chosen - logits.logsumexp(1, /*keepdim=*/true)).exp()
                   : chosen.softmax(1));
  }
}

}  // namespace icgt
