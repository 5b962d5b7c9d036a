#include "head_ablations.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>
#include <utility>

#include "icgt/errors.hpp"
#include "request_checks.hpp"
#include "tensor_checks.hpp"

namespace icgt::detail {
namespace {

using HeadAblation = ActivationProbe::HeadAblation;

const char* ablation_name(HeadAblation::Kind kind) {
  switch (kind) {
    case HeadAblation::Kind::Zero:
      return "zero";
    case HeadAblation::Kind::Mean:
      return "mean";
    case HeadAblation::Kind::Patch:
      return "patch";
  }
  return "?";
}

// The block and heads of one ablation exist, and none of its heads is in `ablated` already.
void check_heads(const ModelInfo& info, const HeadAblation& ablation, std::set<std::pair<int, int>>& ablated) {
  if (ablation.layer < 0 || ablation.layer >= info.num_layers) {
    throw ValueError(fmt::format("ActivationProbe.run: a {} ablation names layer {}; expected a block 0..{}",
                                 ablation_name(ablation.kind), ablation.layer, info.num_layers - 1));
  }
  if (ablation.heads.empty()) {
    throw ValueError(fmt::format("ActivationProbe.run: the {} ablation of layer {} names no head",
                                 ablation_name(ablation.kind), ablation.layer));
  }
  for (int head : ablation.heads) {
    if (head < 0 || head >= info.num_heads) {
      throw ValueError(fmt::format("ActivationProbe.run: head {} of layer {} does not exist; expected 0..{}", head,
                                   ablation.layer, info.num_heads - 1));
    }
    if (!ablated.emplace(ablation.layer, head).second) {
      throw ValueError(fmt::format("ActivationProbe.run: head {} of layer {} is ablated twice", head, ablation.layer));
    }
  }
}

// Given values: none for a zero ablation; finite floating point, [heads, head_dim] for a mean and
// [batch, length, heads, head_dim] for a patch.
void check_values(const ModelInfo& info, const HeadAblation& ablation, std::int64_t batch, std::int64_t length) {
  if (!ablation.values.defined()) return;
  if (ablation.kind == HeadAblation::Kind::Zero) {
    throw ValueError(fmt::format("ActivationProbe.run: the zero ablation of layer {} takes no values", ablation.layer));
  }
  const auto heads = static_cast<std::int64_t>(ablation.heads.size());
  const std::vector<std::int64_t> expected =
      ablation.kind == HeadAblation::Kind::Mean ? std::vector<std::int64_t>{heads, info.head_dim}
                                                : std::vector<std::int64_t>{batch, length, heads, info.head_dim};
  if (ablation.values.sizes().vec() != expected || !ablation.values.is_floating_point()) {
    throw ValueError(fmt::format("ActivationProbe.run: the {} ablation of layer {} has values of shape {} and "
                                 "dtype {}; expected a floating-point tensor [{}]",
                                 ablation_name(ablation.kind), ablation.layer, shape_of(ablation.values),
                                 c10::toString(ablation.values.scalar_type()), fmt::join(expected, ", ")));
  }
  if (!torch::isfinite(ablation.values).all().item<bool>()) {
    throw ValueError(fmt::format("ActivationProbe.run: the {} ablation of layer {} has NaN or infinite values",
                                 ablation_name(ablation.kind), ablation.layer));
  }
}

// patch_source: token ids shaped like token_ids when a patch ablation without values needs it, and
// absent otherwise.
void check_patch_source(const ModelInfo& info, const ActivationProbe::Request& request,
                        const torch::Tensor& token_ids) {
  const bool needs_patch_source =
      std::any_of(request.head_ablations.begin(), request.head_ablations.end(), [](const HeadAblation& ablation) {
        return ablation.kind == HeadAblation::Kind::Patch && !ablation.values.defined();
      });
  if (!needs_patch_source) {
    if (request.patch_source.defined()) {
      throw ValueError("ActivationProbe.run: patch_source is given but no patch ablation without values uses it");
    }
    return;
  }
  if (!request.patch_source.defined()) {
    throw ValueError("ActivationProbe.run: a patch ablation has no values and there is no patch_source to take "
                     "them from; give one or the other");
  }
  check_integer_ids(request.patch_source, "patch_source", 2);
  if (request.patch_source.sizes() != token_ids.sizes()) {
    throw ValueError(fmt::format("ActivationProbe.run: patch_source has shape {}, token_ids {}; a patch takes "
                                 "each position's values from the same position of the other input",
                                 shape_of(request.patch_source), shape_of(token_ids)));
  }
  check_id_range(request.patch_source, "patch_source", info.vocab_size);
}

}  // namespace

void check_head_ablations(const ModelInfo& info, const ActivationProbe::Request& request,
                          const torch::Tensor& token_ids) {
  std::set<std::pair<int, int>> ablated;
  for (const HeadAblation& ablation : request.head_ablations) {
    check_heads(info, ablation, ablated);
    check_values(info, ablation, token_ids.size(0), token_ids.size(1));
  }
  check_patch_source(info, request, token_ids);
}

std::vector<HeadAblation> resolve_head_ablations(ActivationProbe& probe, const torch::Tensor& ids,
                                                 const ActivationProbe::Request& request) {
  std::vector<HeadAblation> ablations = request.head_ablations;
  // The z that mean and patch ablations without values need, from runs without ablations.
  const auto source_z = [&](HeadAblation::Kind kind, const torch::Tensor& source) {
    ActivationProbe::Request capture;
    capture.max_batch = request.max_batch;
    capture.after_block = request.after_block;
    for (const HeadAblation& ablation : ablations) {
      if (ablation.kind == kind && !ablation.values.defined()) capture.captures.push_back({ablation.layer, HookPoint::Z});
    }
    return capture.captures.empty() ? ActivationProbe::Result{} : probe.run(source, capture);
  };
  const ActivationProbe::Result means = source_z(HeadAblation::Kind::Mean, ids);
  const ActivationProbe::Result patches = source_z(HeadAblation::Kind::Patch, request.patch_source);
  const torch::Device device = probe.device();
  const torch::Dtype dtype = probe.info().dtype;
  for (HeadAblation& ablation : ablations) {
    const torch::Tensor heads = torch::tensor(std::vector<std::int64_t>(ablation.heads.begin(), ablation.heads.end()),
                                              torch::TensorOptions().dtype(torch::kLong).device(device));
    const HookSite z{ablation.layer, HookPoint::Z};
    if (ablation.values.defined()) {
      ablation.values = ablation.values.to(device, dtype);
    } else if (ablation.kind == HeadAblation::Kind::Mean) {
      ablation.values = means.activations.at(z).to(torch::kFloat64).mean({0, 1}).to(dtype).index_select(0, heads);
    } else if (ablation.kind == HeadAblation::Kind::Patch) {
      ablation.values = patches.activations.at(z).index_select(2, heads);
    }
  }
  return ablations;
}

void apply_head_ablations(const std::vector<HeadAblation>& ablations, int layer, std::int64_t offset,
                          torch::Tensor& z) {
  const std::int64_t batch = z.size(0);
  const bool ablated_here = std::any_of(ablations.begin(), ablations.end(),
                                        [&](const HeadAblation& ablation) { return ablation.layer == layer; });
  // Under autograd z is the output that attention's backward needs: the ablations change a copy.
  if (ablated_here && z.requires_grad()) z = z.clone();
  for (const HeadAblation& ablation : ablations) {
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
}

}  // namespace icgt::detail
