#pragma once
// The one seam between ActivationProbe and the model format. TorchScript is deprecated upstream; a
// torch.export / AOTInductor backend implements this interface and nothing else changes.

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
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
  virtual torch::Tensor final_norm(const torch::Tensor& hidden) = 0;
  /// hidden [..., hidden] -> logits [..., vocab]
  virtual torch::Tensor head(const torch::Tensor& hidden) = 0;
};

/// A loaded model with what its bundle says about it.
struct LoadedModel {
  std::unique_ptr<ModelBackend> model;
  ModelInfo info;
  std::vector<std::string> vocabulary;  ///< token id -> the bytes it contributes to text
};

/// The bundle format version this build reads.
constexpr std::int64_t kBundleFormatVersion = 2;

/// Loads a TorchScript bundle written by `icgt export` (docs/bundle-format.md) onto a device.
LoadedModel load_torchscript_bundle(const std::string& path, const torch::Device& device);

}  // namespace icgt
