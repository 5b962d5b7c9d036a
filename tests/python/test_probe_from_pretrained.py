"""ActivationProbe.from_pretrained: a name or path to a ready probe, with the dtype experiments choose."""

import warnings

import pytest
import torch

import icgt
from helpers import save_checkpoint, tiny_llama, tiny_tokenizer
from icgt.study import compute
from icgt.study import config as configs
from toy_bundle import write_toy_bundles


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory):
    return write_toy_bundles(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tiny_llama(), tmp_path_factory.mktemp("checkpoint") / "tiny-llama", tiny_tokenizer())


def test_a_bundle_is_opened_as_it_is(toy_bundle):
    probe = icgt.ActivationProbe.from_pretrained(toy_bundle, device="cpu")
    assert isinstance(probe, icgt.ActivationProbe) and probe.bundle == toy_bundle and probe.dtype == torch.float32
    same = icgt.ActivationProbe(toy_bundle, device="cpu")
    assert torch.equal(probe.run(" w1 w2", logits="all").logits, same.run(" w1 w2", logits="all").logits)
    assert icgt.ActivationProbe.from_pretrained(str(toy_bundle), "float32", "cpu").bundle == toy_bundle


def test_a_checkpoint_is_exported_on_first_use_in_the_automatic_dtype(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", "0")  # float32 is what "auto" chooses then
    probe = icgt.ActivationProbe.from_pretrained(checkpoint, device="cpu", cache=tmp_path, progress=False)
    assert probe.dtype == torch.float32 and probe.bundle.parent == tmp_path / "bundles"
    assert probe.to_str_tokens(" alpha")[0] == "<s>" and probe.num_layers == 2

    def export_again(*args, **kwargs):
        raise AssertionError("the cached bundle was exported again")

    monkeypatch.setattr(icgt.models.bundles, "export_bundle", export_again)
    again = icgt.ActivationProbe.from_pretrained(checkpoint, device="cpu", cache=tmp_path, progress=False)
    assert again.bundle == probe.bundle


def test_auto_is_the_dtype_experiments_choose(toy_bundle, checkpoint, monkeypatch):
    for native, expected in [("1", "bfloat16"), ("0", "float32")]:
        monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", native)
        assert compute.model_dtype(checkpoint, "auto", "cpu")[0] == expected
        assert compute.model_dtype("gemma3-270m", device="cpu")[0] == expected  # a built-in name is not fetched
        assert compute.model_dtype(toy_bundle) == ("float32", "auto: the bundle holds float32 weights")
    assert compute.model_dtype(checkpoint, "float32") == ("float32", "asked for")
    # The warning names the line that asked for bfloat16, whichever of the three asked.
    with pytest.warns(compute.SlowBfloat16Warning, match="without native bfloat16") as caught:
        assert compute.model_dtype(checkpoint, "bfloat16", "cpu") == ("bfloat16", "asked for")
    with pytest.warns(compute.SlowBfloat16Warning, match="without native bfloat16") as caught_by_config:
        assert compute.chosen_dtype(configs.preset("grid", dtype="bfloat16"), "cpu") == ("bfloat16", "asked for")
    with pytest.warns(compute.SlowBfloat16Warning, match="without native bfloat16") as caught_by_probe, \
            pytest.raises(ValueError, match="is a float32 bundle"):
        icgt.ActivationProbe.from_pretrained(toy_bundle, "bfloat16", "cpu")
    assert [warning[0].filename for warning in (caught, caught_by_config, caught_by_probe)] == [__file__] * 3
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute.model_dtype(checkpoint, "bfloat16", "cpu") == ("bfloat16", "asked for")


@pytest.mark.parametrize("model,dtype,error,message", [
    ("bundle", "bfloat16", ValueError, "is a float32 bundle, but dtype 'bfloat16' was asked for"),
    ("bundle", "float16", ValueError, r"dtype 'float16' is not supported; expected one of \['bfloat16', 'float32'\]"),
    ("/no/such/model.gguf", "auto", FileNotFoundError, "model path not found: /no/such/model.gguf"),
    ("no-such-model", "auto", ValueError, "unknown model 'no-such-model': expected a built-in name"),
])
def test_what_cannot_be_opened_is_a_clear_error(toy_bundle, monkeypatch, model, dtype, error, message):
    monkeypatch.setenv("ICGT_NATIVE_BFLOAT16", "1")  # no slow-bfloat16 warning beside the error
    with pytest.raises(error, match=message):
        icgt.ActivationProbe.from_pretrained(toy_bundle if model == "bundle" else model, dtype, "cpu")
