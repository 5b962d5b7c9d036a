#include "probe_device.hpp"

#include <ATen/Version.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/cpu/Utils.h>
#include <c10/util/Exception.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>

#include <cstdlib>

#include "icgt/errors.hpp"
#include "tensor_checks.hpp"

namespace icgt::detail {
namespace {

// Overrides the hardware's answer, so that both dtypes can be tested, and chosen, on any machine.
constexpr const char* kNativeBFloat16Variable = "ICGT_NATIVE_BFLOAT16";
// Ampere (compute capability 8.0) is the first NVIDIA generation with bfloat16 arithmetic.
constexpr int kFirstBFloat16ComputeCapability = 8;

std::string cpu_words(const std::string& capability) {
  return fmt::format("CPU (torch CPU capability {})", capability);
}

std::string device_words(const torch::Device& device) {
  return device.is_cpu() ? cpu_words(at::get_cpu_capability()) : fmt::format("CUDA device {}", device.str());
}

// The operator behind Python's torch.ops.mkldnn._is_mkldnn_bf16_supported(); none in a torch
// built without oneDNN.
std::optional<bool> onednn_native_bfloat16() {
  const auto op = c10::Dispatcher::singleton().findSchema({"mkldnn::_is_mkldnn_bf16_supported", ""});
  if (!op) return std::nullopt;
  return op->typed<bool()>().call();
}

// The bfloat16 instructions among torch.cpu.get_capabilities(), x86's and ARM's.
std::vector<std::string> cpu_bfloat16_instructions() {
  const auto capabilities = at::cpu::get_cpu_capabilities();
  std::vector<std::string> present;
  for (const char* name : {"avx512_bf16", "amx_bf16", "avx_ne_convert", "bf16", "sve_bf16"}) {
    const auto found = capabilities.find(name);
    if (found != capabilities.end() && found->second.isBool() && found->second.toBool()) present.emplace_back(name);
  }
  return present;
}

// The compute capability of a CUDA device from the CUDA driver that torch loaded: a CPU build of
// LibTorch has no CUDA headers, and the driver's C interface, unlike the runtime's device
// properties, is stable. None where no CUDA driver is loaded (a ROCm build).
std::optional<std::pair<int, int>> cuda_compute_capability(int index) {
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (driver == nullptr) return std::nullopt;
  using Init = int (*)(unsigned int);
  using DeviceGet = int (*)(int*, int);
  using DeviceGetAttribute = int (*)(int*, int, int);
  const auto init = reinterpret_cast<Init>(dlsym(driver, "cuInit"));
  const auto device_get = reinterpret_cast<DeviceGet>(dlsym(driver, "cuDeviceGet"));
  const auto attribute = reinterpret_cast<DeviceGetAttribute>(dlsym(driver, "cuDeviceGetAttribute"));
  constexpr int kMajor = 75, kMinor = 76;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR and _MINOR
  int device = 0, major = 0, minor = 0;
  const bool known = init != nullptr && device_get != nullptr && attribute != nullptr && init(0) == 0 &&
                     device_get(&device, index) == 0 && attribute(&major, kMajor, device) == 0 &&
                     attribute(&minor, kMinor, device) == 0;
  dlclose(driver);
  if (!known) return std::nullopt;
  return std::pair(major, minor);
}

}  // namespace

torch::Device resolve_device(const std::string& name, const char* function) {
  if (name == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const c10::Error&) {
  }
  if (!device || !(device->is_cpu() || device->is_cuda())) {
    throw ValueError(fmt::format("{}: device '{}' is not understood; expected 'auto', 'cpu', 'cuda' or 'cuda:N'",
                                 function, name));
  }
  if (device->is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw RuntimeError(fmt::format("{}: device '{}' was asked for, but this torch sees no CUDA GPU; use 'cpu' or "
                                     "'auto'",
                                     function, name));
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (device->has_index() && device->index() >= count) {
      throw ValueError(fmt::format("{}: device '{}' does not exist; this machine has cuda:0..cuda:{}", function, name,
                                   count - 1));
    }
    if (!device->has_index()) device.emplace(torch::kCUDA, 0);
  }
  return *device;
}

BFloat16Support cpu_bfloat16_support(std::optional<bool> onednn_native, const std::string& capability,
                                     const std::vector<std::string>& bfloat16_instructions) {
  const std::string cpu = cpu_words(capability);
  if (!onednn_native) return {false, cpu + " without native bfloat16: this torch has no oneDNN to compute it"};
  if (!*onednn_native) return {false, cpu + " without native bfloat16, as oneDNN reports"};
  // oneDNN also says yes on AVX-512 CPUs without bfloat16 instructions, where it emulates them.
  if (bfloat16_instructions.empty()) {
    return {false, cpu + " without native bfloat16: oneDNN would emulate it, the CPU has no bfloat16 instructions"};
  }
  return {true, fmt::format("{} with native bfloat16 ({}), as oneDNN reports", cpu,
                            fmt::join(bfloat16_instructions, ", "))};
}

BFloat16Support cuda_bfloat16_support(const torch::Device& device, std::optional<std::pair<int, int>> capability) {
  const std::string gpu = device_words(device);
  if (!capability) return {false, gpu + " of unknown compute capability (no CUDA driver in this process)"};
  const auto [major, minor] = *capability;
  if (major < kFirstBFloat16ComputeCapability) {
    return {false, fmt::format("{} of compute capability {}.{}, without native bfloat16 (from {}.0)", gpu, major,
                               minor, kFirstBFloat16ComputeCapability)};
  }
  return {true, fmt::format("{} of compute capability {}.{}, with native bfloat16", gpu, major, minor)};
}

BFloat16Support bfloat16_support(const torch::Device& device, const char* function) {
  const char* forced = std::getenv(kNativeBFloat16Variable);
  if (forced != nullptr && *forced != '\0') {
    const std::string value = forced;
    if (value != "0" && value != "1") {
      throw ValueError(fmt::format("{}: {} is '{}'; expected 1 (the device computes bfloat16 natively), 0 (it does "
                                   "not) or unset (ask the hardware)",
                                   function, kNativeBFloat16Variable, escaped(value)));
    }
    const bool native = value == "1";
    return {native, fmt::format("{} taken {} ({}={})", device_words(device),
                                native ? "to compute bfloat16 natively" : "to lack native bfloat16",
                                kNativeBFloat16Variable, value)};
  }
  if (device.is_cuda()) return cuda_bfloat16_support(device, cuda_compute_capability(device.index()));
  return cpu_bfloat16_support(onednn_native_bfloat16(), at::get_cpu_capability(), cpu_bfloat16_instructions());
}

}  // namespace icgt::detail
