#include "request_checks.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

#include "head_ablations.hpp"
#include "icgt/errors.hpp"
#include "tensor_checks.hpp"

namespace icgt::detail {
namespace {

using Request = ActivationProbe::Request;

// Token ids [batch, length]: integers of the vocabulary, at least one of them, no longer than the
// model's context.
void check_token_ids(const ModelInfo& info, const torch::Tensor& token_ids) {
  check_integer_ids(token_ids, "token_ids", 2);
  const std::int64_t batch = token_ids.size(0), length = token_ids.size(1);
  if (batch == 0 || length == 0) {
    throw ValueError(fmt::format("ActivationProbe.run: token_ids is empty ({} x {}); expected at least one sequence "
                                 "of at least one token",
                                 batch, length));
  }
  check_id_range(token_ids, "token_ids", info.vocab_size);
  if (length > info.max_positions) {
    throw ValueError(fmt::format("ActivationProbe.run: token_ids has {} positions, more than the {} this {} model "
                                 "was trained for (max_position_embeddings); shorten the sequences",
                                 length, info.max_positions, info.architecture));
  }
}

// The residuals and points to capture, each once, and the run's own hooks.
void check_captures_and_hooks(const ModelInfo& info, const Request& request) {
  std::set<int> layers;
  for (int layer : request.layers) {
    check_layer(info, layer, "run");
    if (!layers.insert(layer).second) {
      throw ValueError(fmt::format("ActivationProbe.run: layer {} is requested twice", layer));
    }
  }
  std::set<HookSite> captures;
  for (const HookSite& site : request.captures) {
    check_site(info, site, "run");
    if (!captures.insert(site).second) {
      throw ValueError(fmt::format("ActivationProbe.run: {} is captured twice", site.name()));
    }
  }
  for (const auto& [site, hook] : request.hooks) {
    check_site(info, site, "run");
    if (!hook) throw ValueError(fmt::format("ActivationProbe.run: the hook for {} is empty", site.name()));
  }
}

// Target ids, logit positions and top-k.
void check_predictions(const ModelInfo& info, const Request& request, std::int64_t length) {
  if (request.target_ids.defined()) {
    if (request.target_ids.numel() == 0) {
      throw ValueError("ActivationProbe.run: target_ids is empty; pass none or at least one id");
    }
    check_integer_ids(request.target_ids, "target_ids", 1);
    check_id_range(request.target_ids, "target_ids", info.vocab_size);
  }
  for (std::int64_t position : request.logit_positions) {
    if (position < -length || position >= length) {
      throw ValueError(fmt::format("ActivationProbe.run: logit position {} is outside the sequence of {} tokens; "
                                   "expected {}..{} (negative counts from the end)",
                                   position, length, -length, length - 1));
    }
  }
  if (request.top_k < 0 || request.top_k > info.vocab_size) {
    throw ValueError(fmt::format("ActivationProbe.run: top_k is {}; expected 0 (none) to {} (the vocabulary)",
                                 request.top_k, info.vocab_size));
  }
}

void check_attention_scores(const ModelInfo& info, const Request& request, std::int64_t length) {
  for (std::size_t s = 0; s < request.attention_scores.size(); ++s) {
    const ActivationProbe::AttentionScore& score = request.attention_scores[s];
    for (int layer : score.layers) check_site(info, {layer, HookPoint::Pattern}, "run");
    if (score.offset < 0 || score.first_query < 0 || std::max(score.offset, score.first_query) >= length) {
      throw ValueError(fmt::format("ActivationProbe.run: attention_scores[{}] has offset {} and first_query {}; "
                                   "expected both >= 0 and some query q >= both below the length {}",
                                   s, score.offset, score.first_query, length));
    }
  }
}

// Nothing the run asks for may come before the block it resumes from.
void check_nothing_before_start(const Request& request) {
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
  for (const ActivationProbe::AttentionScore& score : request.attention_scores) {
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
}

// start_residual and start_layer: both or neither.
void check_resumption(const ModelInfo& info, const Request& request, std::int64_t batch, std::int64_t length) {
  if (!request.start_residual.defined()) {
    if (request.start_layer != 0) {
      throw ValueError("ActivationProbe.run: start_layer is given without start_residual to resume from");
    }
    return;
  }
  const std::vector<std::int64_t> expected{batch, length, info.hidden_size};
  if (request.start_residual.sizes().vec() != expected || !request.start_residual.is_floating_point()) {
    throw ValueError(fmt::format("ActivationProbe.run: start_residual has shape {} and dtype {}; expected a "
                                 "floating-point tensor [{}] (the residual entering block start_layer)",
                                 shape_of(request.start_residual),
                                 c10::toString(request.start_residual.scalar_type()), fmt::join(expected, ", ")));
  }
  if (request.start_layer < 0 || request.start_layer >= info.num_layers) {
    throw ValueError(fmt::format("ActivationProbe.run: start_layer is {}; expected a block 0..{}",
                                 request.start_layer, info.num_layers - 1));
  }
  check_nothing_before_start(request);
}

}  // namespace

void check_layer(const ModelInfo& info, int layer, const char* method) {
  if (layer < kEmbeddingLayer || layer >= info.num_layers) {
    throw ValueError(fmt::format("ActivationProbe.{}: layer {} is out of range; expected -1 (embeddings) to {} "
                                 "(the last of {} blocks)",
                                 method, layer, info.num_layers - 1, info.num_layers));
  }
}

void check_site(const ModelInfo& info, const HookSite& site, const char* method) {
  check_layer(info, site.layer, method);
  if (site.layer == kEmbeddingLayer && site.point != HookPoint::ResidPost) {
    throw ValueError(fmt::format("ActivationProbe.{}: layer -1 (the embedding output) has only the point "
                                 "'resid_post' (hook_embed); the points inside a block need a layer 0..{}",
                                 method, info.num_layers - 1));
  }
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

void check_request(const ModelInfo& info, const torch::Tensor& token_ids, const Request& request) {
  check_token_ids(info, token_ids);
  const std::int64_t batch = token_ids.size(0), length = token_ids.size(1);
  check_captures_and_hooks(info, request);
  check_predictions(info, request, length);
  check_attention_scores(info, request, length);
  check_head_ablations(info, request, token_ids);
  if (request.max_batch < 0) {
    throw ValueError(fmt::format("ActivationProbe.run: max_batch must be 0 (automatic) or positive, got {}",
                                 request.max_batch));
  }
  check_resumption(info, request, batch, length);
}

}  // namespace icgt::detail
