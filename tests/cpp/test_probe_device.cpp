#include "catch_torch.hpp"
#include <ATen/Context.h>
#include <ATen/Version.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "icgt/activation_probe.hpp"
#include "icgt/errors.hpp"
#include "probe_device.hpp"

using icgt::ActivationProbe;
using icgt::detail::cpu_bfloat16_support;
using icgt::detail::cuda_bfloat16_support;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

// Sets (or, with nullopt, removes) ICGT_NATIVE_BFLOAT16 while it lives, and restores what was there.
class NativeBFloat16Variable {
 public:
  explicit NativeBFloat16Variable(const std::optional<std::string>& value) {
    if (const char* before = std::getenv(kName)) before_ = before;
    if (value) {
      setenv(kName, value->c_str(), 1);
    } else {
      unsetenv(kName);
    }
  }
  ~NativeBFloat16Variable() {
    if (before_) {
      setenv(kName, before_->c_str(), 1);
    } else {
      unsetenv(kName);
    }
  }
  NativeBFloat16Variable(const NativeBFloat16Variable&) = delete;
  NativeBFloat16Variable& operator=(const NativeBFloat16Variable&) = delete;

 private:
  static constexpr const char* kName = "ICGT_NATIVE_BFLOAT16";
  std::optional<std::string> before_;
};

}  // namespace

TEST_CASE("a CPU computes bfloat16 natively when oneDNN does and the CPU has bfloat16 instructions") {
  const auto amx = cpu_bfloat16_support(true, "AVX512", {"avx512_bf16", "amx_bf16"});
  CHECK(amx.native);
  CHECK(amx.why == "CPU (torch CPU capability AVX512) with native bfloat16 (avx512_bf16, amx_bf16), as oneDNN reports");
  CHECK(cpu_bfloat16_support(true, "DEFAULT", {"bf16"}).native);  // an ARM CPU with BF16

  const auto emulated = cpu_bfloat16_support(true, "AVX512", {});
  CHECK_FALSE(emulated.native);
  CHECK(emulated.why == "CPU (torch CPU capability AVX512) without native bfloat16: oneDNN would emulate it, the CPU "
                        "has no bfloat16 instructions");

  const auto refused = cpu_bfloat16_support(false, "AVX2", {});
  CHECK_FALSE(refused.native);
  CHECK(refused.why == "CPU (torch CPU capability AVX2) without native bfloat16, as oneDNN reports");

  const auto no_onednn = cpu_bfloat16_support(std::nullopt, "AVX2", {"avx512_bf16"});
  CHECK_FALSE(no_onednn.native);
  CHECK(no_onednn.why == "CPU (torch CPU capability AVX2) without native bfloat16: this torch has no oneDNN to compute "
                         "it");
}

TEST_CASE("a CUDA GPU computes bfloat16 natively from compute capability 8.0") {
  const torch::Device gpu(torch::kCUDA, 1);
  const auto turing = cuda_bfloat16_support(gpu, std::pair(7, 5));
  CHECK_FALSE(turing.native);
  CHECK(turing.why == "CUDA device cuda:1 of compute capability 7.5, without native bfloat16 (from 8.0)");
  const auto ampere = cuda_bfloat16_support(gpu, std::pair(8, 0));
  CHECK(ampere.native);
  CHECK(ampere.why == "CUDA device cuda:1 of compute capability 8.0, with native bfloat16");
  CHECK(cuda_bfloat16_support(gpu, std::pair(9, 0)).native);
  const auto unknown = cuda_bfloat16_support(gpu, std::nullopt);
  CHECK_FALSE(unknown.native);
  CHECK(unknown.why == "CUDA device cuda:1 of unknown compute capability (no CUDA driver in this process)");
}

TEST_CASE("ICGT_NATIVE_BFLOAT16 overrides the hardware's answer, read at every call") {
  const std::string cpu = "CPU (torch CPU capability " + at::get_cpu_capability() + ")";
  {
    NativeBFloat16Variable forced("1");
    CHECK(ActivationProbe::native_bfloat16("cpu"));
    const auto choice = ActivationProbe::automatic_dtype("cpu");
    CHECK(choice.dtype == "bfloat16");
    CHECK(choice.reason == cpu + " taken to compute bfloat16 natively (ICGT_NATIVE_BFLOAT16=1): bfloat16");
  }
  {
    NativeBFloat16Variable forced("0");
    CHECK_FALSE(ActivationProbe::native_bfloat16("cpu"));
    const auto choice = ActivationProbe::automatic_dtype("cpu");
    CHECK(choice.dtype == "float32");
    CHECK(choice.reason == cpu + " taken to lack native bfloat16 (ICGT_NATIVE_BFLOAT16=0): float32");
  }
  {
    NativeBFloat16Variable empty("");  // as unset: the hardware answers
    CHECK_THAT(ActivationProbe::automatic_dtype("cpu").reason, StartsWith(cpu) && !Contains("ICGT_NATIVE_BFLOAT16"));
  }
}

TEST_CASE("a bad ICGT_NATIVE_BFLOAT16 or device is a ValueError naming the function") {
  {
    NativeBFloat16Variable bad("yes");
    CHECK_THROWS_AS(ActivationProbe::native_bfloat16("cpu"), icgt::ValueError);
    CHECK_THROWS_WITH(ActivationProbe::native_bfloat16("cpu"),
                      StartsWith("ActivationProbe.native_bfloat16: ICGT_NATIVE_BFLOAT16 is 'yes'; expected 1"));
    CHECK_THROWS_WITH(ActivationProbe::automatic_dtype("cpu"),
                      StartsWith("ActivationProbe.automatic_dtype: ICGT_NATIVE_BFLOAT16 is 'yes'; expected 1"));
  }
  CHECK_THROWS_AS(ActivationProbe::native_bfloat16("tpu"), icgt::ValueError);
  CHECK_THROWS_WITH(ActivationProbe::native_bfloat16("tpu"),
                    StartsWith("ActivationProbe.native_bfloat16: device 'tpu' is not understood"));
  CHECK_THROWS_WITH(ActivationProbe::automatic_dtype("cpu:x"),
                    StartsWith("ActivationProbe.automatic_dtype: device 'cpu:x' is not understood"));
  if (!torch::cuda::is_available()) {
    CHECK_THROWS_AS(ActivationProbe::native_bfloat16("cuda"), icgt::RuntimeError);
    CHECK_THROWS_WITH(ActivationProbe::automatic_dtype("cuda:0"),
                      StartsWith("ActivationProbe.automatic_dtype: device 'cuda:0' was asked for, but this torch sees "
                                 "no CUDA GPU"));
  }
}

TEST_CASE("this machine's own answer: one verdict in both functions, the override's words absent") {
  NativeBFloat16Variable unset(std::nullopt);
  for (const std::string device : {"auto", "cpu"}) {
    const auto choice = ActivationProbe::automatic_dtype(device);
    const bool native = ActivationProbe::native_bfloat16(device);
    CHECK(choice.dtype == (native ? "bfloat16" : "float32"));
    CHECK_THAT(choice.reason, EndsWith(": " + choice.dtype) && !Contains("ICGT_NATIVE_BFLOAT16"));
  }
  const auto cpu = ActivationProbe::automatic_dtype("cpu");
  CHECK_THAT(cpu.reason, StartsWith("CPU (torch CPU capability " + at::get_cpu_capability() + ")"));
  if (at::hasMKLDNN()) CHECK_THAT(cpu.reason, Contains("oneDNN") && !Contains("has no oneDNN"));
  // Forcing the answer the hardware gives changes the dtype of neither.
  NativeBFloat16Variable same(ActivationProbe::native_bfloat16("cpu") ? "1" : "0");
  CHECK(ActivationProbe::automatic_dtype("cpu").dtype == cpu.dtype);
}
