#pragma once
// ActivationProbe: runs an exported model block by block, reading and changing what flows inside it.

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "icgt/export.hpp"

namespace icgt {

class ModelBackend;

/// The layer index of the embedding output (Hugging Face hidden_states[0]).
constexpr int kEmbeddingLayer = -1;

/// The bundle format version this build reads (docs/bundle-format.md); the Python exporter writes
/// the same number (icgt.models.FORMAT_VERSION), and a bundle of any other version is refused.
constexpr std::int64_t kBundleFormatVersion = 4;

/// What a bundle says about its model.
struct ModelInfo {
  std::string architecture;  ///< "llama", "gemma2", "gemma3", ...
  int num_layers = 0;
  int hidden_size = 0;
  int vocab_size = 0;
  int num_heads = 0;     ///< attention heads per block: the length of a head-gate vector
  int num_kv_heads = 0;  ///< key-value heads per block (grouped-query attention)
  int head_dim = 0;
  std::int64_t bos_token_id = 0;
  std::int64_t max_positions = 0;  ///< the longest sequence the model was trained for (max_position_embeddings)
  torch::Dtype dtype = torch::kFloat32;
  std::string config_json;  ///< the bundle's full record (config.json), for callers that parse JSON
};

/// A point inside block `layer` where hooks run and captures are taken. The names are
/// TransformerLens's (docs/usage.md maps them); shapes are for token ids [batch, pos].
enum class HookPoint {
  ResidPre,   ///< "resid_pre": the block's input [batch, pos, hidden] (= resid_post of layer - 1)
  Pattern,    ///< "pattern" (attn.hook_pattern): attention weights [batch, head, query, key]
  Z,          ///< "z" (attn.hook_z): per-head outputs before the output projection [batch, pos, head, head_dim]
  AttnOut,    ///< "attn_out": what attention adds to the residual stream [batch, pos, hidden]
  ResidMid,   ///< "resid_mid": resid_pre + attn_out
  MlpOut,     ///< "mlp_out": what the MLP adds to the residual stream
  ResidPost,  ///< "resid_post": the block's output; at layer -1, the embedding output ("hook_embed")
};

/// A hook point of a layer. Ordered, so that it can key a map.
struct ICGT_API HookSite {
  int layer = 0;
  HookPoint point = HookPoint::ResidPost;

  /// A TransformerLens name: "blocks.3.attn.hook_z", "blocks.0.hook_resid_pre", "hook_embed".
  /// Throws ValueError naming the supported points for anything else.
  static HookSite parse(const std::string& name);
  /// A point of a layer by its short name ("z", "pattern", "resid_pre", ...) or TransformerLens's
  /// ("attn.hook_z", "hook_resid_pre", ...).
  static HookSite at(int layer, const std::string& point);
  /// The TransformerLens name, e.g. "blocks.3.attn.hook_z".
  std::string name() const;

  bool operator<(const HookSite& other) const {
    return std::pair(layer, point) < std::pair(other.layer, other.point);
  }
  bool operator==(const HookSite& other) const { return layer == other.layer && point == other.point; }
};

/// Runs a model exported by `icgt export` (a TorchScript bundle) on token ids, one decoder block at a
/// time, on the CPU or a CUDA device.
///
/// Layers are 0-indexed decoder blocks and layer l means the residual stream *after* block l, which is
/// Hugging Face's hidden_states[l + 1]; kEmbeddingLayer (-1) is the embedding output,
/// hidden_states[0]. (Hugging Face applies the final norm to its last entry; icgt never does.)
///
/// At each hook point the probe calls that point's hooks in registration order (persistent ones,
/// then the run's own); a hook may read the tensor, edit it in place, or replace it (assign to the
/// reference), and what it leaves flows on and into any capture of that point. A block runs as one
/// fused call unless the run reads or changes its inside (captures, hooks, ablations or scores
/// there); then the probe drives its steps, which compute exactly what the fused call computes.
/// Only what a run asks for is kept.
///
/// Example:
///   icgt::ActivationProbe probe("smollm2.icgt.pt", "auto");
///   icgt::ActivationProbe::Request request;
///   request.layers = {10, 20};
///   request.captures = {icgt::HookSite::parse("blocks.3.attn.hook_pattern")};
///   request.target_ids = torch::tensor({probe.token_id(" apple"), probe.token_id(" bird")});
///   auto result = probe.run(token_ids, request);  // token_ids: int64, batch x length
///   // result.residuals: 2 x batch x length x hidden; result.target_probs: batch x length x 2;
///   // result.activations.at(HookSite::parse("blocks.3.attn.hook_pattern")): batch x heads x length x length
class ICGT_API ActivationProbe {
 public:
  /// Called with the layer and the tensor at a hook point; edit it in place or assign to it to
  /// replace it (same shape, dtype and device).
  using Hook = std::function<void(int layer, torch::Tensor& activation)>;

  /// How target probabilities are normalised.
  enum class Normalization {
    FullVocabulary,  ///< softmax over the whole vocabulary (the paper's accuracy)
    OverTargets,     ///< softmax over the target ids only
  };

  /// Replaces chosen heads' per-head outputs z in one block, at every position.
  struct HeadAblation {
    enum class Kind {
      Zero,   ///< z = 0 (the same as a head gate of 0)
      Mean,   ///< z = the head's mean output over all positions and sequences
      Patch,  ///< z = the head's output on another input (position by position)
    };
    int layer = 0;
    std::vector<int> heads;
    Kind kind = Kind::Zero;
    /// Mean: [heads.size(), head_dim]; undefined: each head's mean over every position of every
    /// sequence of this run's tokens, from a run without ablations. Patch: z [batch, length,
    /// heads.size(), head_dim]; undefined: from a run of Request::patch_source.
    torch::Tensor values;
  };

  /// A per-head score from attention weights, reduced as they are computed, so that [query, key]
  /// is never stored: the mean over queries q >= first_query (and q >= offset) of the weight from
  /// q to key q - offset. offset 1 from first_query 1 is the previous-token score; on BOS then L
  /// tokens repeated twice, offset L - 1 from first_query L + 1 is the induction score.
  struct AttentionScore {
    std::vector<int> layers;  ///< empty: every block
    std::int64_t offset = 1;
    std::int64_t first_query = 1;
  };

  struct Request {
    std::vector<int> layers;  ///< residuals to capture (resid_post), in this order; -1..num_layers-1
    std::vector<HookSite> captures;  ///< any hook points to capture, into Result::activations
    /// Hooks for this run only: they run after the persistent hooks of their point and are gone
    /// when the run ends, also when it ends in an exception.
    std::vector<std::pair<HookSite, Hook>> hooks;
    /// int64 token ids whose next-token probabilities are wanted at every position; undefined for none.
    torch::Tensor target_ids;
    Normalization normalization = Normalization::FullVocabulary;
    /// Positions (negative: from the end, -1 the last) whose full next-token logits are wanted.
    std::vector<std::int64_t> logit_positions;
    /// The k largest next-token logits at every position, with their token ids; 0 for none.
    std::int64_t top_k = 0;
    /// Log-probabilities (log-softmax over the vocabulary) instead of logits, for both of the above.
    bool log_probs = false;
    std::vector<AttentionScore> attention_scores;
    std::vector<HeadAblation> head_ablations;
    /// Token ids [batch, length] whose z patch-ablations without values take their values from.
    torch::Tensor patch_source;
    /// Resume a run from inside the model: start_residual [batch, length, hidden] is the residual
    /// entering block start_layer (its resid_pre), e.g. captured by an earlier run of the same
    /// tokens; blocks before start_layer are skipped, and nothing before it may be asked for.
    /// Undefined (the default): start from the embedding.
    torch::Tensor start_residual;
    int start_layer = 0;
    /// Sequences per forward pass; 0 is automatic: on a CPU as many as make about 2048 tokens (at
    /// least one), on a GPU the whole batch, halved on out-of-memory errors.
    std::int64_t max_batch = 0;
    /// Called after the embedding (-1) and after each block with that layer, once its hooks have run;
    /// for progress, or to stop a run by throwing (the Python binding checks for Ctrl-C here).
    std::function<void(int layer)> after_block;
    /// Run with autograd instead of under inference mode, so that gradients flow through what a run
    /// returns (attributions, or a linear probe trained on activations): a hook or start_residual
    /// marks the tensor to differentiate by (requires_grad); the weights never require gradients.
    /// The caller's grad mode applies (torch.no_grad() still builds no graph). Slower, hence off.
    bool grad = false;
  };

  struct Result {
    torch::Tensor residuals;  ///< [layers, batch, length, hidden], model dtype, on the probe's device
    std::vector<int> layers;  ///< the layers of residuals, in order (Request::layers)
    std::map<HookSite, torch::Tensor> activations;  ///< one per Request::captures entry
    torch::Tensor target_probs;  ///< [batch, length, targets], float32, on the device; undefined if none
    torch::Tensor logits;        ///< [batch, logit_positions, vocab], float32; undefined if none
    torch::Tensor top_k_values;  ///< [batch, length, k], float32; undefined if none
    torch::Tensor top_k_ids;     ///< [batch, length, k], int64
    std::vector<torch::Tensor> attention_scores;  ///< per Request::attention_scores: [layers, batch, heads]
  };

  /// Hooks that stay registered while the guard lives, and are removed when it goes, also during
  /// stack unwinding.
  class ScopedHooks {
   public:
    ScopedHooks(ActivationProbe& probe, const std::vector<std::pair<HookSite, Hook>>& hooks);
    ~ScopedHooks();
    ScopedHooks(const ScopedHooks&) = delete;
    ScopedHooks& operator=(const ScopedHooks&) = delete;

   private:
    ActivationProbe& probe_;
    std::vector<int> handles_;
  };

  /// The dtype to run a model in on a device, and why.
  struct AutomaticDtype {
    std::string dtype;   ///< "bfloat16" where the device computes it natively, else "float32"
    std::string reason;  ///< the device and the evidence, then the dtype, e.g. "CPU (torch CPU capability
                         ///< AVX2) without native bfloat16, as oneDNN reports: float32"
  };

  /// Loads a bundle. device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
  /// Throws FileNotFoundError, or RuntimeError for a file that is not a bundle of a known format.
  explicit ActivationProbe(const std::string& bundle_path, const std::string& device = "auto");
  ~ActivationProbe();
  ActivationProbe(ActivationProbe&&) noexcept;
  ActivationProbe& operator=(ActivationProbe&&) noexcept;

  /// Whether `device` ("auto", "cpu", "cuda" or "cuda:N", as for the constructor) computes bfloat16
  /// natively: a CUDA GPU of compute capability 8.0 or later, a CPU with bfloat16 instructions
  /// (AVX512-BF16, AMX-BF16, AVX-NE-CONVERT, ARM's BF16) that torch's oneDNN uses. The environment
  /// variable ICGT_NATIVE_BFLOAT16, read at every call, overrides the hardware: "1" yes, "0" no.
  /// Throws ValueError for a device name of no device of this machine or another value of the
  /// variable, RuntimeError for CUDA where torch sees no GPU.
  static bool native_bfloat16(const std::string& device = "auto");
  /// "bfloat16" where native_bfloat16(device), else "float32" (docs/performance.md's recommendation),
  /// with the reason in words; the same override and errors as native_bfloat16.
  static AutomaticDtype automatic_dtype(const std::string& device = "auto");

  const ModelInfo& info() const { return info_; }
  torch::Device device() const { return device_; }

  /// The id of the single token whose text is exactly `text` (e.g. " apple"). Throws ValueError when
  /// no token, or more than one, has that text.
  std::int64_t token_id(const std::string& text) const;
  /// The text (bytes) a token contributes to decoded output.
  const std::string& token_text(std::int64_t id) const;
  /// Rows of the output (unembedding) matrix, logits = final_norm(residual) @ W_U^T before any soft-cap,
  /// for token ids [n] (any integer dtype): [n, hidden], float32 on the CPU; the input embedding's rows
  /// where the model ties them. Throws ValueError for ids of another shape or outside the vocabulary.
  torch::Tensor unembedding(const torch::Tensor& token_ids) const;

  /// Registers a hook at a point; returns a handle for remove_hook. A run uses the hooks registered
  /// when it starts: hooks added, removed or cleared while it runs (by a hook, say) take effect
  /// from the next run.
  int add_hook(const HookSite& site, Hook hook);
  /// A hook on the residual after block `layer` (-1..num_layers-1): add_hook({layer, ResidPost}, hook).
  int add_hook(int layer, Hook hook);
  void remove_hook(int handle);
  void clear_hooks();

  /// Multiplies each attention head's output in a block by gates[head] (length num_heads, finite and
  /// non-negative): 0 ablates a head. Stays in force until cleared; the probe keeps a copy of gates.
  /// A run uses the gates set when it starts, as with hooks: gates set or cleared while it runs (by
  /// a hook, say) take effect from the next run.
  void set_head_gates(int layer, const torch::Tensor& gates);
  void clear_head_gates();

  /// Runs token ids [batch, length] (any integer dtype, any device; length at most info().max_positions)
  /// through the model under inference mode (with autograd when request.grad).
  Result run(const torch::Tensor& token_ids, const Request& request);
  /// The sequences per pass run() starts with for `batch` sequences of `length` tokens when max_batch
  /// is 0: on a CPU as many as make about 2048 tokens (at least one), on a GPU the whole batch (run
  /// halves it on out-of-memory errors). For callers whose hooks must know which sequences a pass
  /// holds: they split a batch the same way and run each part with its size as max_batch.
  std::int64_t automatic_batch(std::int64_t batch, std::int64_t length) const;

 private:
  struct Plan;
  using HookList = std::map<HookSite, std::vector<std::pair<int, std::shared_ptr<const Hook>>>>;

  void run_sub_batch(const torch::Tensor& ids, const Plan& plan, std::int64_t offset, Result& result) const;
  /// Block `layer` step by step, with the hooks, captures, scores and ablations inside it.
  torch::Tensor run_block_steps(int layer, const torch::Tensor& hidden, const Plan& plan, std::int64_t offset,
                                Result& result) const;
  /// The site's hooks, then its captures; returns what the hooks left.
  torch::Tensor at_site(const Plan& plan, const HookSite& site, torch::Tensor activation, std::int64_t offset,
                        Result& result) const;
  /// Target probabilities, logits and top-k predictions from the last block's output.
  void read_predictions(const torch::Tensor& hidden, const Plan& plan, std::int64_t offset, Result& result) const;

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
