// The forward pass of one sub-batch: the embedding, the blocks (fused, or step by step where the
// plan reads or changes their inside) with the hooks and captures between them, and the predictions.

#include "icgt/activation_probe.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "head_ablations.hpp"
#include "icgt/errors.hpp"
#include "model_backend.hpp"
#include "probe_plan.hpp"

namespace icgt {
namespace {

// Logit rows per head call: bounds the float32 logits of one chunk to 256 MiB whatever the vocabulary.
constexpr std::int64_t kLogitElementsPerChunk = std::int64_t{1} << 26;
// Query rows per block of attention weights formed at once: 64 MiB of float32, whatever the length.
constexpr std::int64_t kPatternElementsPerChunk = std::int64_t{1} << 24;

// logits.logsumexp(1, keepdim) as LibTorch computes it (the row's maximum taken out, 0 for an infinite
// one), but in place: LibTorch's allocates logits' size again for logits - max, and a chunk's 256 MiB
// of fresh pages cost ten times the subtraction itself (12-19% of the operators' time in Gemma 3's forward
// pass on a 2-core AVX-512 CPU, docs/performance.md).
// Leaves logits holding exp(logits - max). The maximum is a constant to autograd (the gradient does
// not depend on it), so that no saved tensor is edited in place.
torch::Tensor logsumexp_in_place(torch::Tensor& logits) {
  torch::Tensor maxima = logits.detach().amax(1, /*keepdim=*/true);
  maxima.masked_fill_(maxima.abs() == std::numeric_limits<float>::infinity(), 0);
  return logits.sub_(maxima).exp_().sum(1, /*keepdim=*/true).log_().add_(maxima);
}

// Calls the hooks of a site in order, each checked to leave a tensor of the shape, dtype and device
// it was given.
torch::Tensor call_hooks(const std::vector<std::pair<int, std::shared_ptr<const ActivationProbe::Hook>>>& hooks,
                         const HookSite& site, torch::Tensor activation) {
  // Under autograd the tensor may be one that its backward needs (attention's output, the softmax's):
  // hooks that edit in place then edit a copy, which is what flows on.
  if (activation.requires_grad()) activation = activation.clone();
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
      const auto gate = plan.head_gates.find(layer);
      hidden = model_->block(layer, hidden,
                             gate == plan.head_gates.end() ? std::nullopt : std::optional<torch::Tensor>(gate->second));
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

  if (const auto gate = plan.head_gates.find(layer); gate != plan.head_gates.end()) {
    z = z * gate->second.view({1, 1, info_.num_heads, 1});
  }
  detail::apply_head_ablations(plan.ablations, layer, offset, z);
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
  const bool full_vocabulary = request.log_probs || request.normalization == Normalization::FullVocabulary;
  for (std::int64_t start = 0; start < rows.size(0); start += chunk) {
    const std::int64_t count = std::min(chunk, rows.size(0) - start);
    torch::Tensor logits = model_->head(rows.narrow(0, start, count)).to(torch::kFloat32);
    const torch::Tensor chosen = plan.targets.defined() ? logits.index_select(1, plan.targets) : torch::Tensor();
    torch::Tensor top_values, top_ids;
    if (request.top_k > 0) std::tie(top_values, top_ids) = logits.topk(request.top_k, 1);
    const torch::Tensor log_normalizer = full_vocabulary ? logsumexp_in_place(logits) : torch::Tensor();
    if (plan.targets.defined()) {
      result.target_probs.narrow(0, offset, batch)
          .view({-1, plan.targets.size(0)})
          .narrow(0, start, count)
          .copy_(request.normalization == Normalization::FullVocabulary ? (chosen - log_normalizer).exp()
                                                                         : chosen.softmax(1));
    }
    if (request.top_k > 0) {
      result.top_k_values.narrow(0, offset, batch)
          .view({-1, request.top_k})
          .narrow(0, start, count)
          .copy_(request.log_probs ? top_values - log_normalizer : top_values);
      result.top_k_ids.narrow(0, offset, batch).view({-1, request.top_k}).narrow(0, start, count).copy_(top_ids);
    }
  }
}

}  // namespace icgt
