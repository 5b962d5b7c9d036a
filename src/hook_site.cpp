#include <fmt/format.h>

#include <array>
#include <regex>

#include "icgt/activation_probe.hpp"
#include "icgt/errors.hpp"

namespace icgt {
namespace {

struct PointName {
  HookPoint point;
  const char* name;        // icgt's short name
  const char* lens_name;   // TransformerLens's name inside blocks.L
};

constexpr std::array<PointName, 7> kPoints{{
    {HookPoint::ResidPre, "resid_pre", "hook_resid_pre"},
    {HookPoint::Pattern, "pattern", "attn.hook_pattern"},
    {HookPoint::Z, "z", "attn.hook_z"},
    {HookPoint::AttnOut, "attn_out", "hook_attn_out"},
    {HookPoint::ResidMid, "resid_mid", "hook_resid_mid"},
    {HookPoint::MlpOut, "mlp_out", "hook_mlp_out"},
    {HookPoint::ResidPost, "resid_post", "hook_resid_post"},
}};

constexpr const char* kSupported =
    "resid_pre, pattern (attn.hook_pattern), z (attn.hook_z), attn_out, resid_mid, mlp_out, resid_post, or a "
    "full name such as 'blocks.3.attn.hook_z' or 'hook_embed'";

}  // namespace

HookSite HookSite::at(int layer, const std::string& point) {
  for (const PointName& entry : kPoints) {
    const std::string lens = entry.lens_name;
    // "attn.hook_z", "hook_z", "z"
    if (point == entry.name || point == lens || point == lens.substr(lens.find('.') + 1)) return {layer, entry.point};
  }
  throw ValueError(fmt::format("HookSite: '{}' is not a hook point icgt has; expected {}", point, kSupported));
}

HookSite HookSite::parse(const std::string& name) {
  if (name == "hook_embed") return {kEmbeddingLayer, HookPoint::ResidPost};
  static const std::regex pattern(R"(blocks\.(\d{1,9})\.(.+))");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) {
    throw ValueError(fmt::format("HookSite: '{}' is not a hook point icgt has; expected {}", name, kSupported));
  }
  return at(std::stoi(match[1].str()), match[2].str());
}

std::string HookSite::name() const {
  if (layer == kEmbeddingLayer && point == HookPoint::ResidPost) return "hook_embed";
  for (const PointName& entry : kPoints) {
    if (entry.point == point) return fmt::format("blocks.{}.{}", layer, entry.lens_name);
  }
  return fmt::format("blocks.{}.?", layer);
}

}  // namespace icgt
