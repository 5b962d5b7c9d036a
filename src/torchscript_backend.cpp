#include <fmt/format.h>
#include <torch/script.h>

#include <ATen/Parallel.h>
#include <caffe2/serialize/crc_alt.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include "icgt/errors.hpp"
#include "model_backend.hpp"
#include "tensor_checks.hpp"

namespace icgt {
namespace {

// The methods of one block and of its attention, looked up once.
struct BlockMethods {
  explicit BlockMethods(const torch::jit::Module& block)
      : forward(block.get_method("forward")),
        attention_input(block.get_method("attention_input")),
        attention_output(block.get_method("attention_output")),
        mlp_output(block.get_method("mlp_output")),
        project(block.attr("attn").toModule().get_method("project")),
        attend(block.attr("attn").toModule().get_method("attend")),
        pattern(block.attr("attn").toModule().get_method("pattern")),
        mix(block.attr("attn").toModule().get_method("mix")) {}
  torch::jit::Method forward, attention_input, attention_output, mlp_output, project, attend, pattern, mix;
};

class TorchScriptBackend final : public ModelBackend {
 public:
  explicit TorchScriptBackend(torch::jit::Module module) : module_(std::move(module)) {
    module_.eval();
    embed_ = module_.attr("embed").toModule();
    final_norm_ = module_.attr("final_norm").toModule();
    head_ = module_.attr("head").toModule();
    for (const auto& child : module_.attr("blocks").toModule().named_children()) blocks_.emplace_back(child.value);
  }

  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  torch::Dtype dtype() const { return (*embed_.parameters().begin()).scalar_type(); }

  torch::Tensor embed(const torch::Tensor& token_ids) override { return embed_.forward({token_ids}).toTensor(); }

  torch::Tensor block(int layer, const torch::Tensor& hidden, const std::optional<torch::Tensor>& head_gate) override {
    torch::jit::IValue gate = head_gate ? torch::jit::IValue(*head_gate) : torch::jit::IValue();
    return blocks_[layer].forward({hidden, gate}).toTensor();
  }

  torch::Tensor attention_input(int layer, const torch::Tensor& hidden) override {
    return blocks_[layer].attention_input({hidden}).toTensor();
  }
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project(int layer, const torch::Tensor& x) override {
    const auto outputs = blocks_[layer].project({x}).toTuple();
    return {outputs->elements()[0].toTensor(), outputs->elements()[1].toTensor(), outputs->elements()[2].toTensor()};
  }
  torch::Tensor attend(int layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    return blocks_[layer].attend({q, k, v}).toTensor();
  }
  torch::Tensor pattern(int layer, const torch::Tensor& q, const torch::Tensor& k, std::int64_t first_query,
                        std::int64_t num_queries) override {
    return blocks_[layer].pattern({q, k, first_query, num_queries}).toTensor();
  }
  torch::Tensor mix(int layer, const torch::Tensor& weights, const torch::Tensor& v) override {
    return blocks_[layer].mix({weights, v}).toTensor();
  }
  torch::Tensor attention_output(int layer, const torch::Tensor& z) override {
    return blocks_[layer].attention_output({z}).toTensor();
  }
  torch::Tensor mlp_output(int layer, const torch::Tensor& hidden) override {
    return blocks_[layer].mlp_output({hidden}).toTensor();
  }

  torch::Tensor final_norm(const torch::Tensor& hidden) override { return final_norm_.forward({hidden}).toTensor(); }
  torch::Tensor head(const torch::Tensor& hidden) override { return head_.forward({hidden}).toTensor(); }
  torch::Tensor unembedding() override { return head_.attr("weight").toTensor(); }

 private:
  torch::jit::Module module_;
  torch::jit::Module embed_, final_norm_, head_;
  std::vector<BlockMethods> blocks_;
};

std::string hex_to_bytes(const std::string& hex, std::size_t line) {
  if (!hex.empty() && hex.back() == '\r') {
    throw RuntimeError(fmt::format("bundle vocabulary.hex line {} ends with a carriage return: CRLF line ends, "
                                   "where a bundle has \\n alone (was the file rewritten as text?)",
                                   line));
  }
  if (hex.size() % 2 != 0) {
    throw RuntimeError(fmt::format("bundle vocabulary.hex line {} has an odd number of hex digits", line));
  }
  std::string bytes(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto digit = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      // The byte as \xHH unless printable ASCII: one byte of a UTF-8 character alone is no text.
      const auto byte = static_cast<unsigned char>(c);
      const std::string shown = byte >= 0x20 && byte < 0x7f ? std::string(1, c) : fmt::format("\\x{:02x}", byte);
      throw RuntimeError(
          fmt::format("bundle vocabulary.hex line {}: '{}' is not a lowercase hex digit", line, shown));
    };
    bytes[i] = static_cast<char>(digit(hex[2 * i]) * 16 + digit(hex[2 * i + 1]));
  }
  return bytes;
}

std::vector<std::string> parse_vocabulary(const std::string& text) {
  std::vector<std::string> tokens;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string::npos) throw RuntimeError("bundle vocabulary.hex does not end with a newline: truncated?");
    tokens.push_back(hex_to_bytes(text.substr(start, end - start), tokens.size() + 1));
    start = end + 1;
  }
  return tokens;
}

// Tensors of a bundle are checked in chunks of this many bytes, in parallel.
constexpr std::size_t kChecksumChunk = std::size_t{16} << 20;

std::uint32_t crc32_of(const torch::Tensor& tensor) {
  const torch::Tensor bytes = tensor.to(torch::kCPU).contiguous();
  const auto* data = static_cast<const std::uint8_t*>(bytes.data_ptr());
  const std::size_t size = bytes.nbytes();
  const auto chunks = static_cast<std::int64_t>((size + kChecksumChunk - 1) / kChecksumChunk);
  std::vector<std::uint32_t> crcs(chunks);
  at::parallel_for(0, chunks, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) {
      const std::size_t offset = static_cast<std::size_t>(c) * kChecksumChunk;
      crcs[c] = crc32_fast(data + offset, std::min(kChecksumChunk, size - offset));
    }
  });
  std::uint32_t crc = 0;
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::size_t offset = static_cast<std::size_t>(c) * kChecksumChunk;
    crc = crc32_combine(crc, crcs[c], std::min(kChecksumChunk, size - offset));
  }
  return crc;
}

// LibTorch loads a tensor whose record in the archive is empty, missing or short (a damaged zip
// directory) with no data behind it, or less than its shape spans: reading it would crash. Checked
// before anything reads the tensor: the bytes from the start of its storage to its last element.
void check_storage(const torch::Tensor& tensor, const std::string& name, const std::string& path) {
  if (tensor.numel() == 0) return;
  std::int64_t last = tensor.storage_offset();
  bool overflow = last < 0;
  for (std::int64_t d = 0; d < tensor.dim(); ++d) {
    std::int64_t step = 0;
    overflow |= tensor.stride(d) < 0 || __builtin_mul_overflow(tensor.size(d) - 1, tensor.stride(d), &step) ||
                __builtin_add_overflow(last, step, &last);
  }
  std::int64_t needed = 0;
  overflow |= __builtin_mul_overflow(last + 1, static_cast<std::int64_t>(tensor.element_size()), &needed);
  const bool has_data = tensor.has_storage() && tensor.storage().data() != nullptr;
  const std::size_t held = has_data ? tensor.storage().nbytes() : 0;
  if (overflow || held < static_cast<std::size_t>(needed)) {
    throw RuntimeError(fmt::format("bundle '{}' is damaged: tensor '{}' of shape {} has {} bytes of data where it "
                                   "needs {} (its record in the archive is missing or cut short); re-export the model",
                                   path, name, detail::shape_of(tensor), held,
                                   overflow ? std::string("more than 2^63") : std::to_string(needed)));
  }
}

// The bundle records the CRC-32 of every parameter and buffer (as zlib.crc32 computes it over
// the tensor's bytes) at export: a damaged or altered file fails here instead of running.
void verify_checksums(const torch::jit::Module& module, const std::string& path) {
  if (!module.hasattr("tensor_checksums")) {
    throw RuntimeError(fmt::format("bundle '{}' records no tensor checksums; re-export it with `icgt export`", path));
  }
  const c10::Dict<c10::IValue, c10::IValue> expected = module.attr("tensor_checksums").toGenericDict();
  std::map<const void*, std::uint32_t> crc_of_storage;  // tied tensors are checked once
  std::size_t checked = 0;
  const auto check = [&](const std::string& name, const torch::Tensor& tensor) {
    const auto found = expected.find(name);
    if (found == expected.end()) {
      throw RuntimeError(fmt::format("bundle '{}' has a tensor '{}' that its checksums do not list: the file was "
                                     "altered after export; re-export it",
                                     path, name));
    }
    check_storage(tensor, name, path);
    const void* key = tensor.data_ptr();
    auto [entry, inserted] = crc_of_storage.try_emplace(key, 0);
    if (inserted) entry->second = crc32_of(tensor);
    if (static_cast<std::int64_t>(entry->second) != found->value().toInt()) {
      throw RuntimeError(fmt::format("bundle '{}' is damaged: tensor '{}' does not match the checksum recorded at "
                                     "export (CRC-32 {:08x}, expected {:08x}); re-export the model",
                                     path, name, entry->second, static_cast<std::uint32_t>(found->value().toInt())));
    }
    ++checked;
  };
  for (const auto& parameter : module.named_parameters(/*recurse=*/true)) check(parameter.name, parameter.value);
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) check(buffer.name, buffer.value);
  if (checked != expected.size()) {
    throw RuntimeError(fmt::format("bundle '{}' lists checksums of {} tensors but holds {}: the file was altered "
                                   "after export; re-export it",
                                   path, expected.size(), checked));
  }
}

template <typename T>
T read_attribute(const torch::jit::Module& module, const std::string& name, const std::string& path) {
  if (!module.hasattr(name)) {
    throw RuntimeError(fmt::format("'{}' is a TorchScript file but not an icgt bundle: it has no attribute '{}'. "
                                   "Export models with `icgt export`.",
                                   path, name));
  }
  return module.attr(name).to<T>();
}

}  // namespace

LoadedModel load_torchscript_bundle(const std::string& path, const torch::Device& device) {
  std::error_code error_code;
  const auto status = std::filesystem::status(path, error_code);
  if (!std::filesystem::exists(status)) {
    throw FileNotFoundError(fmt::format("model bundle '{}' does not exist (expected a file written by `icgt export`)", path));
  }
  if (std::filesystem::is_directory(status)) {
    throw ValueError(fmt::format("model bundle '{}' is a folder; expected a bundle file written by `icgt export` "
                                 "(a checkpoint folder must be exported first)",
                                 path));
  }
  if (!std::filesystem::is_regular_file(status)) {
    throw ValueError(fmt::format("model bundle '{}' is not a regular file (a device, pipe or socket); expected a "
                                 "bundle file written by `icgt export`",
                                 path));
  }
  torch::jit::ExtraFilesMap extra_files{{"config.json", ""}, {"vocabulary.hex", ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device, extra_files);
  } catch (const std::exception& error) {
    // LibTorch's message, first line only (a c10::Error goes on with where it was raised), at most
    // 300 characters.
    const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
    std::string reason = c10_error ? c10_error->what_without_backtrace() : error.what();
    reason = detail::escaped(reason.substr(0, std::min(reason.find('\n'), std::size_t{300})));
    throw RuntimeError(fmt::format("'{}' could not be read as a TorchScript bundle (truncated, or not written by "
                                   "`icgt export`?): {}",
                                   path, reason));
  }
  const auto version = read_attribute<std::int64_t>(module, "icgt_format_version", path);
  if (version != kBundleFormatVersion) {
    throw RuntimeError(fmt::format("'{}' is an icgt bundle of format version {}, but this build reads version {}; "
                                   "re-export the model with this icgt",
                                   path, version, kBundleFormatVersion));
  }
  for (const char* part : {"embed", "blocks", "final_norm", "head"}) {
    if (!module.hasattr(part)) throw RuntimeError(fmt::format("bundle '{}' lacks its '{}' submodule", path, part));
  }
  LoadedModel loaded;
  loaded.info.architecture = read_attribute<std::string>(module, "architecture", path);
  loaded.info.num_layers = static_cast<int>(read_attribute<std::int64_t>(module, "num_layers", path));
  loaded.info.hidden_size = static_cast<int>(read_attribute<std::int64_t>(module, "hidden_size", path));
  loaded.info.vocab_size = static_cast<int>(read_attribute<std::int64_t>(module, "vocab_size", path));
  loaded.info.num_heads = static_cast<int>(read_attribute<std::int64_t>(module, "num_heads", path));
  loaded.info.num_kv_heads = static_cast<int>(read_attribute<std::int64_t>(module, "num_kv_heads", path));
  loaded.info.head_dim = static_cast<int>(read_attribute<std::int64_t>(module, "head_dim", path));
  loaded.info.bos_token_id = read_attribute<std::int64_t>(module, "bos_token_id", path);
  loaded.info.max_positions = read_attribute<std::int64_t>(module, "max_position_embeddings", path);
  verify_checksums(module, path);
  loaded.info.config_json = extra_files["config.json"];
  loaded.vocabulary = parse_vocabulary(extra_files["vocabulary.hex"]);
  if (static_cast<int>(loaded.vocabulary.size()) != loaded.info.vocab_size) {
    throw RuntimeError(fmt::format("bundle '{}' lists {} vocabulary entries for a vocabulary of {}", path,
                                   loaded.vocabulary.size(), loaded.info.vocab_size));
  }
  auto backend = std::make_unique<TorchScriptBackend>(std::move(module));
  if (backend->num_blocks() != loaded.info.num_layers) {
    throw RuntimeError(fmt::format("bundle '{}' says {} layers but holds {} blocks", path, loaded.info.num_layers,
                                   backend->num_blocks()));
  }
  loaded.info.dtype = backend->dtype();
  loaded.model = std::move(backend);
  return loaded;
}

}  // namespace icgt
