#pragma once
// Head ablations of ActivationProbe runs: their checks, the values of those given none (from
// source runs), and their action on the heads' outputs z.

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "icgt/activation_probe.hpp"

namespace icgt::detail {

/// The request's head ablations and its patch_source, for token_ids [batch, length]: real heads of
/// real blocks, each ablated once, values of the right shape and finite, and a patch_source exactly
/// when a patch ablation without values needs one.
void check_head_ablations(const ModelInfo& info, const ActivationProbe::Request& request,
                          const torch::Tensor& token_ids);

/// The request's ablations with their values on the probe's device in the model dtype: given values
/// as they are, mean and patch ablations without values from runs of ids (mean) or of the request's
/// patch_source (patch) without ablations.
std::vector<ActivationProbe::HeadAblation> resolve_head_ablations(ActivationProbe& probe, const torch::Tensor& ids,
                                                                  const ActivationProbe::Request& request);

/// Applies the ablations of block `layer` to z [B, T, heads, head_dim], the sub-batch that starts at
/// sequence `offset` of the run.
void apply_head_ablations(const std::vector<ActivationProbe::HeadAblation>& ablations, int layer, std::int64_t offset,
                          torch::Tensor& z);

}  // namespace icgt::detail
