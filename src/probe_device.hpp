#pragma once
// The probe's devices: what a device name means on this machine (the constructor's device), and
// whether a device computes bfloat16 natively (ActivationProbe::native_bfloat16, automatic_dtype).

#include <torch/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace icgt::detail {

/// "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N" as a device of this machine;
/// `function` names the caller in errors: ValueError for a name of no such device, RuntimeError for
/// CUDA where torch sees no GPU.
torch::Device resolve_device(const std::string& name, const char* function);

/// Whether a device computes bfloat16 natively, and the device and the evidence in words.
struct BFloat16Support {
  bool native = false;
  std::string why;  ///< e.g. "CPU (torch CPU capability AVX2) without native bfloat16, as oneDNN reports"
};

/// The answer for a resolved device: forced by ICGT_NATIVE_BFLOAT16 ("0" or "1") when it is set,
/// else the hardware's. Another value of the variable is a ValueError naming `function`.
BFloat16Support bfloat16_support(const torch::Device& device, const char* function);

/// The CPU's answer from what torch reports: oneDNN's verdict (none when this torch has no oneDNN),
/// torch's CPU capability ("AVX2", "AVX512", ...) and the CPU's bfloat16 instructions (names of
/// at::cpu::get_cpu_capabilities()). Native when oneDNN computes bfloat16 and the CPU has such
/// instructions.
BFloat16Support cpu_bfloat16_support(std::optional<bool> onednn_native, const std::string& capability,
                                     const std::vector<std::string>& bfloat16_instructions);

/// A CUDA device's answer from its compute capability (major, minor); none when it is unknown.
BFloat16Support cuda_bfloat16_support(const torch::Device& device, std::optional<std::pair<int, int>> capability);

}  // namespace icgt::detail
