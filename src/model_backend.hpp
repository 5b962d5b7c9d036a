#pragma once
// The one seam between ActivationProbe and the model format. TorchScript is deprecated upstream; a
// torch.export / AOTInductor backend implements this interface and nothing else changes.

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "icgt/activation_probe.hpp"

namespace icgt {

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;
  /// token ids [batch, length] -> hidden [batch, length, hidden]
  virtual torch::Tensor embed(const torch::Tensor& token_ids) = 0;
  /// Decoder block `layer` on positions 0..length-1; head_gate [num_heads] scales each head's output.
  virtual torch::Tensor block(int layer, const torch::Tensor& hidden, const std::optional<torch::Tensor>& head_gate) = 0;
  /// The steps of block `layer` (docs/bundle-format.md); composed, they compute exactly what block() does.
  /// The attention's input: the pre-norm of the residual.
  virtual torch::Tensor attention_input(int layer, const torch::Tensor& hidden) = 0;
  /// Queries [B, heads, T, head_dim], keys and values [B, kv_heads, T, head_dim], normed and rotated.
  virtual std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project(int layer, const torch::Tensor& x) = 0;
  /// Per-head outputs z [B, T, heads, head_dim] through the fused attention kernel.
  virtual torch::Tensor attend(int layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) = 0;
  /// Attention weights [B, heads, num_queries, T] of queries first_query.. over all keys.
  virtual torch::Tensor pattern(int layer, const torch::Tensor& q, const torch::Tensor& k, std::int64_t first_query,
                                std::int64_t num_queries) = 0;
  /// Per-head outputs z [B, T, heads, head_dim] of given attention weights [B, heads, T, T].
  virtual torch::Tensor mix(int layer, const torch::Tensor& weights, const torch::Tensor& v) = 0;
  /// What attention adds to the residual, from z (output projection, and Gemma's post-norm).
  virtual torch::Tensor attention_output(int layer, const torch::Tensor& z) = 0;
  /// What the MLP adds to the residual (pre-norm, MLP, and Gemma's post-norm).
  virtual torch::Tensor mlp_output(int layer, const torch::Tensor& hidden) = 0;
  virtual torch::Tensor final_norm(const torch::Tensor& hidden) = 0;
  /// hidden [..., hidden] -> logits [..., vocab]
  virtual torch::Tensor head(const torch::Tensor& hidden) = 0;
  /// The head's weight [vocab, hidden] (the embedding's where tied), as head() multiplies by it.
  virtual torch::Tensor unembedding() = 0;
};

/// A loaded model with what its bundle says about it.
struct LoadedModel {
  std::unique_ptr<ModelBackend> model;
  ModelInfo info;
  std::vector<std::string> vocabulary;  ///< token id -> the bytes it contributes to text
};

/// Loads a TorchScript bundle written by `icgt export` (docs/bundle-format.md) onto a device.
LoadedModel load_torchscript_bundle(const std::string& path, const torch::Device& device);

}  // namespace icgt
