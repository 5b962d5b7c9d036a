#pragma once
// ActivationProbe: runs an exported model block by block, capturing and changing the residual stream.

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace icgt {

class ModelBackend;

/// The layer index of the embedding output (Hugging Face hidden_states[0]).
constexpr int kEmbeddingLayer = -1;

/// What a bundle says about its model.
struct ModelInfo {
  std::string architecture;  ///< "llama", "gemma2", "gemma3"
  int num_layers = 0;
  int hidden_size = 0;
  int vocab_size = 0;
  int num_heads = 0;  ///< attention heads per block: the length of a head-gate vector
  std::int64_t bos_token_id = 0;
  std::int64_t max_positions = 0;  ///< the longest sequence the model was trained for (max_position_embeddings)
  torch::Dtype dtype = torch::kFloat32;
  std::string config_json;  ///< the bundle's full record (config.json), for callers that parse JSON
};

/// Runs a model exported by `icgt export` (a TorchScript bundle) on token ids, one decoder block at a
/// time, on the CPU or a CUDA device.
///
/// Layers are 0-indexed decoder blocks and layer l means the residual stream *after* block l, which is
/// Hugging Face's hidden_states[l + 1]; kEmbeddingLayer (-1) is the embedding output,
/// hidden_states[0]. (Hugging Face applies the final norm to its last entry; icgt never does.)
///
/// Between blocks the probe calls the hooks registered for that layer, in registration order; a hook
/// may read the residual or replace it (assign to the reference), and what it leaves flows on into the
/// next block and into any capture of that layer. Only what a run asks for is kept: the requested
/// layers' residuals and the requested target probabilities.
///
/// Example:
///   icgt::ActivationProbe probe("smollm2.icgt.pt", "auto");
///   icgt::ActivationProbe::Request request;
///   request.layers = {10, 20};
///   request.target_ids = torch::tensor({probe.token_id(" apple"), probe.token_id(" bird")});
///   auto result = probe.run(token_ids, request);  // token_ids: int64, batch x length
///   // result.residuals: 2 x batch x length x hidden; result.target_probs: batch x length x 2
class ActivationProbe {
 public:
  /// Called with the layer index and that layer's residual [batch, length, hidden]; assign to the
  /// tensor to replace it (same shape, dtype and device).
  using Hook = std::function<void(int layer, torch::Tensor& residual)>;

  /// How target probabilities are normalised.
  enum class Normalization {
    FullVocabulary,  ///< softmax over the whole vocabulary (the paper's accuracy)
    OverTargets,     ///< softmax over the target ids only
  };

  struct Request {
    std::vector<int> layers;  ///< residuals to capture, in this order; -1..num_layers-1
    /// int64 token ids whose next-token probabilities are wanted at every position; undefined for none.
    torch::Tensor target_ids;
    Normalization normalization = Normalization::FullVocabulary;
    /// Sequences per forward pass; 0 runs the whole batch at once and halves it on out-of-memory errors.
    std::int64_t max_batch = 0;
    /// Called after the embedding (-1) and after each block with that layer, once its hooks have run;
    /// for progress, or to stop a run by throwing (the Python binding checks for Ctrl-C here).
    std::function<void(int layer)> after_block;
  };

  struct Result {
    torch::Tensor residuals;     ///< [layers, batch, length, hidden], model dtype, on the probe's device
    torch::Tensor target_probs;  ///< [batch, length, targets], float32, on the device; undefined if none
  };

  /// Loads a bundle. device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
  /// Throws FileNotFoundError, or RuntimeError for a file that is not a bundle of a known format.
  explicit ActivationProbe(const std::string& bundle_path, const std::string& device = "auto");
  ~ActivationProbe();
  ActivationProbe(ActivationProbe&&) noexcept;
  ActivationProbe& operator=(ActivationProbe&&) noexcept;

  const ModelInfo& info() const { return info_; }
  torch::Device device() const { return device_; }

  /// The id of the single token whose text is exactly `text` (e.g. " apple"). Throws ValueError when
  /// no token, or more than one, has that text.
  std::int64_t token_id(const std::string& text) const;
  /// The text (bytes) a token contributes to decoded output.
  const std::string& token_text(std::int64_t id) const;

  /// Registers a hook for a layer (-1..num_layers-1); returns a handle for remove_hook.
  /// A run uses the hooks registered when it starts: hooks added, removed or cleared while it runs
  /// (by a hook, say) take effect from the next run.
  int add_hook(int layer, Hook hook);
  void remove_hook(int handle);
  void clear_hooks();

  /// Multiplies each attention head's output in a block by gates[head] (length num_heads, finite and
  /// non-negative): 0 ablates a head. Stays in force until cleared.
  void set_head_gates(int layer, const torch::Tensor& gates);
  void clear_head_gates();

  /// Runs token ids [batch, length] (any integer dtype, any device; length at most info().max_positions)
  /// through the model under inference mode.
  Result run(const torch::Tensor& token_ids, const Request& request);

 private:
  using HookList = std::map<int, std::vector<std::pair<int, std::shared_ptr<const Hook>>>>;

  void check_layer(int layer, const char* method) const;
  torch::Tensor apply_hooks(const HookList& hooks, int layer, torch::Tensor residual) const;
  void run_sub_batch(const torch::Tensor& token_ids, const Request& request, const HookList& hooks,
                     const torch::Tensor& targets, std::int64_t offset, Result& result) const;

  std::unique_ptr<ModelBackend> model_;
  ModelInfo info_;
  torch::Device device_;
  std::vector<std::string> vocabulary_;
  std::unordered_map<std::string, std::int64_t> ids_by_text_;
  HookList hooks_;
  int next_hook_handle_ = 0;
  std::map<int, torch::Tensor> head_gates_;
};

}  // namespace icgt
