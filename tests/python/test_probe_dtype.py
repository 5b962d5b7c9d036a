"""ActivationProbe.native_bfloat16 and automatic_dtype: the hardware's answer against what torch
itself reports, the ICGT_NATIVE_BFLOAT16 override, and the errors."""

import pytest
import torch

import icgt

Probe = icgt.ActivationProbe
# The bfloat16 instructions among torch.cpu.get_capabilities(): x86's, then ARM's.
BFLOAT16_INSTRUCTIONS = ["avx512_bf16", "amx_bf16", "avx_ne_convert", "bf16", "sve_bf16"]


@pytest.fixture(autouse=True)
def hardware_answers(monkeypatch):
    """Every test starts without the override, whatever the environment of the test run."""
    monkeypatch.delenv("ICGT_NATIVE_BFLOAT16", raising=False)


def test_the_cpu_answer_is_onednn_with_bfloat16_instructions():
    capabilities = torch.cpu.get_capabilities()
    instructions = [name for name in BFLOAT16_INSTRUCTIONS if capabilities.get(name) is True]
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported() and bool(instructions)
    assert Probe.native_bfloat16("cpu") is native
    choice = Probe.automatic_dtype("cpu")
    assert choice.dtype == ("bfloat16" if native else "float32")
    assert choice.reason.startswith(f"CPU (torch CPU capability {torch.backends.cpu.get_cpu_capability()}) ")
    assert choice.reason.endswith(f": {choice.dtype}")
    assert "oneDNN" in choice.reason
    for name in instructions:
        assert name in choice.reason or not native


def test_auto_is_the_answer_of_the_device_auto_picks():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert Probe.native_bfloat16() is Probe.native_bfloat16(device)
    assert Probe.automatic_dtype().reason == Probe.automatic_dtype(device).reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_a_gpu_answers_from_its_compute_capability():
    major, minor = torch.cuda.get_device_capability(0)
    assert Probe.native_bfloat16("cuda:0") is (major >= 8)
    assert Probe.automatic_dtype("cuda").reason.startswith(f"CUDA device cuda:0 of compute capability {major}.{minor}")


@pytest.mark.parametrize("value, native", [("1", True), ("0", False)])
def test_the_override_is_read_at_every_call(monkeypatch, value, native):
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", value)
    assert Probe.native_bfloat16("cpu") is native
    assert icgt._icgt.ActivationProbe.native_bfloat16(device="cpu") is native
    choice = Probe.automatic_dtype("cpu")
    dtype = "bfloat16" if native else "float32"
    assert choice.dtype == dtype
    assert f"(ICGT_NATIVE_BFLOAT16={value}): {dtype}" in choice.reason
    assert repr(choice) == f"ActivationProbe.AutomaticDtype(dtype='{dtype}', reason={choice.reason!r})"
    monkeypatch.delenv("ICGT_NATIVE_BFLOAT16")
    assert "ICGT_NATIVE_BFLOAT16" not in Probe.automatic_dtype("cpu").reason


def test_an_empty_override_leaves_the_answer_to_the_hardware(monkeypatch):
    hardware = Probe.automatic_dtype("cpu")
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", "")
    assert Probe.automatic_dtype("cpu").reason == hardware.reason


@pytest.mark.parametrize("function", ["native_bfloat16", "automatic_dtype"])
@pytest.mark.parametrize("value", ["yes", "2", " 1", "true"])
def test_a_bad_override_is_a_value_error(monkeypatch, function, value):
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", value)
    with pytest.raises(ValueError, match=rf"^ActivationProbe.{function}: ICGT_NATIVE_BFLOAT16 is '{value}'; expected 1"):
        getattr(Probe, function)("cpu")


@pytest.mark.parametrize("function", ["native_bfloat16", "automatic_dtype"])
@pytest.mark.parametrize("device", ["tpu", "cpu:x", "", "gpu"])
def test_a_bad_device_is_a_value_error(function, device):
    with pytest.raises(ValueError, match=rf"^ActivationProbe.{function}: device '{device}' is not understood; "
                                         r"expected 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        getattr(Probe, function)(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there")
def test_cuda_without_a_gpu_is_a_runtime_error():
    with pytest.raises(RuntimeError, match=r"ActivationProbe.native_bfloat16: device 'cuda' was asked for, but this "
                                           r"torch sees no CUDA GPU"):
        Probe.native_bfloat16("cuda")


def test_a_device_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError):
        Probe.automatic_dtype(0)
