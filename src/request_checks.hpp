#pragma once
// The checks of ActivationProbe's arguments: a request is refused as a whole, before anything runs,
// with an error that says what was wrong and what was expected.

#include <torch/types.h>

#include <cstdint>

#include "icgt/activation_probe.hpp"

namespace icgt::detail {

/// ValueError unless layer is -1 (the embedding output) to the model's last block; `method` names
/// the ActivationProbe method in the message.
void check_layer(const ModelInfo& info, int layer, const char* method);
/// check_layer, and layer -1 has only the point resid_post.
void check_site(const ModelInfo& info, const HookSite& site, const char* method);
/// TypeError unless a defined integer tensor (not bool) of `rank` dimensions; `name` is the argument.
void check_integer_ids(const torch::Tensor& ids, const char* name, std::int64_t rank);
/// ValueError unless every id is in the vocabulary 0..vocab_size-1.
void check_id_range(const torch::Tensor& ids, const char* name, int vocab_size);

/// Everything ActivationProbe::run checks before it runs token_ids [batch, length] with request.
void check_request(const ModelInfo& info, const torch::Tensor& token_ids, const ActivationProbe::Request& request);

}  // namespace icgt::detail
