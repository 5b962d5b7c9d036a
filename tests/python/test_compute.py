"""Computing one run (icgt.study.compute) on the toy model: the dtype it chooses and why, the warning
for bfloat16 where it is slow, the progress bar over every pass, and what run.json records of them."""

from __future__ import annotations

import warnings

import pytest

from icgt.study import compute
from icgt.study import config as configs
from toy_bundle import save_bundle, toy_model

WORDS = [f"w{i}" for i in range(16)]
SHORT = {"num_sequences": 3, "sequence_length": 40, "layers": "all", "energy_window": 10, "pca_window": 20,
         "null_permutations": 10, "bootstrap": 10}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return save_bundle(toy_model(), tmp_path_factory.mktemp("compute") / "toy.pt")


@pytest.mark.parametrize(("native", "expected"), [("1", "bfloat16"), ("0", "float32")])
def test_auto_follows_the_hardware_for_a_model_to_export(monkeypatch, native, expected):
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", native)
    dtype, why = compute.chosen_dtype(configs.preset("grid", model="gemma3-270m"), "cpu")
    assert dtype == expected
    assert why.startswith("auto: ") and "ICGT_NATIVE_BFLOAT16" in why


def test_auto_keeps_a_bundles_own_dtype(toy, monkeypatch):
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", "1")
    assert compute.chosen_dtype(configs.preset("grid", model=str(toy), words=WORDS)) == (
        "float32", "auto: the bundle holds float32 weights")


def test_an_explicit_dtype_is_obeyed_and_slow_bfloat16_is_named(monkeypatch):
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", "0")
    with pytest.warns(compute.SlowBfloat16Warning, match="without native bfloat16.*6x slower.*'float32'"):
        assert compute.chosen_dtype(configs.preset("grid", dtype="bfloat16"), "cpu") == ("bfloat16", "asked for")
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute.chosen_dtype(configs.preset("grid", dtype="bfloat16"), "cpu") == ("bfloat16", "asked for")
        assert compute.chosen_dtype(configs.preset("grid", dtype="float32"), "cpu") == ("float32", "asked for")


class RecordingBar:
    """tqdm's interface as compute_run uses it, keeping its total and its count."""

    bars: list[RecordingBar] = []

    def __init__(self, total=None, **_):
        self.total, self.n = total, 0
        RecordingBar.bars.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def update(self, count):
        self.n += count


@pytest.mark.parametrize("max_batch", [1, 2, 0])
def test_the_progress_bar_counts_every_pass_and_ends_at_its_total(toy, monkeypatch, max_batch):
    RecordingBar.bars = []
    monkeypatch.setattr(compute, "tqdm", RecordingBar)
    config = configs.preset("grid", model=str(toy), words=WORDS, max_batch=max_batch, **SHORT)
    computed = compute.compute_run(config, progress=True)
    passes = {1: 3, 2: 2, 0: 1}[max_batch]  # the toy's 3 x 41 tokens fit one automatic pass
    [bar] = RecordingBar.bars
    assert bar.total == passes * (3 + 1)  # the embedding and the toy's 3 blocks in each pass
    assert bar.n == bar.total
    assert computed.record["dtype_choice"] == {"asked": "auto", "chosen": "float32",
                                               "reason": "auto: the bundle holds float32 weights"}
    assert set(computed.record["hardware"]) == {"cpu", "capability", "threads", "cores", "kernel_limits"}


def test_the_kernel_limits_in_effect_are_named(monkeypatch):
    from icgt import hardware

    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert hardware.describe(threads=2)["kernel_limits"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert "kernels limited by ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2" in hardware.describe_line()
    for name in hardware.KERNEL_LIMITS:
        monkeypatch.delenv(name, raising=False)
    assert hardware.describe(threads=2)["kernel_limits"] == {} and "limited" not in hardware.describe_line()
