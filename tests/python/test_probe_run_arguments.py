"""The Python probe's run: its real keyword arguments, logits="all", and capture="all" or glob patterns."""

import inspect
import re

import numpy as np
import pytest
import torch

import icgt
from icgt import _icgt
from toy_bundle import write_toy_bundles

IDS = torch.tensor([[0, 5, 6, 7, 5, 6, 8, 9], [0, 1, 2, 3, 4, 45, 44, 46]])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return icgt.ActivationProbe(write_toy_bundles(tmp_path_factory.mktemp("toy")), device="cpu")


def compiled_run_parameters():
    """(name, default) of the compiled run's arguments, read from pybind's signature line."""
    signature = _icgt.ActivationProbe.run.__doc__.splitlines()[0]
    arguments = re.split(r", (?=\w+: )", signature[signature.index("(") + 1:signature.rindex(") ->")])[1:]  # after self
    return [(argument.split(":")[0], argument.split(" = ")[1] if " = " in argument else None) for argument in arguments]


def test_run_shows_the_compiled_runs_keyword_arguments_with_their_defaults():
    ours = inspect.signature(icgt.ActivationProbe.run).parameters
    theirs = compiled_run_parameters()
    assert list(ours)[1:] == ["tokens"] + [name for name, _ in theirs[1:]]
    for name, default in theirs[1:]:
        expected = {"[]": (), "None": None, "False": False, "'full_vocabulary'": "full_vocabulary"}.get(default)
        if default is not None and default.isdigit():
            expected = int(default)
        assert ours[name].default == expected, name
        assert ours[name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name


def test_run_passes_every_argument_on_by_position_and_by_name(toy):
    by_name = toy.run(IDS, layers=[1], capture=["blocks.0.attn.hook_z"], target_ids=[5, 6], top_k=2)
    by_position = toy.run(IDS, [1], ["blocks.0.attn.hook_z"], None, [5, 6], "full_vocabulary", None, 2)
    assert torch.equal(by_name.residuals, by_position.residuals)
    assert torch.equal(by_name.activations["blocks.0.attn.hook_z"], by_position.activations["blocks.0.attn.hook_z"])
    assert torch.equal(by_name.target_probs, by_position.target_probs)
    assert torch.equal(by_name.top_k_ids, by_position.top_k_ids)
    seen = []
    start = toy.run(IDS, capture=[("resid_pre", 1)]).activations["blocks.1.hook_resid_pre"]
    resumed = toy.run(IDS, layers=[2], start_residual=start, start_layer=1, max_batch=1, progress=seen.append)
    assert torch.equal(resumed.residuals, toy.run(IDS, layers=[2]).residuals) and seen == [1, 2, 1, 2]  # a pass a sequence


def test_logits_all_are_every_position(toy):
    every = toy.run(IDS, logits="all", log_probs=True)
    assert every.logits.shape == (2, 8, 50)
    assert torch.equal(every.logits, toy.run(IDS, logits=list(range(8)), log_probs=True).logits)
    assert toy.run(" w1 w2", logits="all").logits.shape == (1, 3, 50)  # BOS and two words


@pytest.mark.parametrize("positions", [torch.tensor([0, -1]), np.array([0, -1]), range(0, 8, 7), (0, -1)])
def test_logits_positions_may_be_any_sequence_of_integers(toy, positions):
    assert torch.equal(toy.run(IDS, logits=positions).logits, toy.run(IDS, logits="all").logits[:, [0, 7]])


@pytest.mark.parametrize("logits", ["first", "ALL", 3, 2.0, [1.5], [True], [[0]], ["0"], object()])
def test_other_logits_are_a_value_error_naming_the_accepted_forms(toy, logits):
    with pytest.raises(ValueError, match=r"logits=.*; expected 'last', 'all' or a list of positions"):
        toy.run(IDS, logits=logits)


def test_the_hook_point_names_are_every_point_the_compiled_run_takes(toy):
    names = toy.hook_point_names
    assert len(names) == 1 + 7 * toy.num_layers and len(set(names)) == len(names)
    assert names[0] == "hook_embed" and names[-1] == "blocks.2.hook_resid_post"
    assert list(toy.run(IDS[:, :3], capture=names).activations) == names


def test_capture_all_captures_every_hook_point(toy):
    result = toy.run(IDS, capture="all", layers=[icgt.EMBEDDING_LAYER, 2])
    assert list(result.activations) == toy.hook_point_names
    assert torch.equal(result.activations["hook_embed"], result.residuals[0])
    assert torch.equal(result.activations["blocks.2.hook_resid_post"], result.residuals[1])
    assert list(toy.run(IDS, capture=["all"]).activations) == toy.hook_point_names


def test_capture_glob_patterns_expand_to_the_names_they_match(toy):
    patterns = toy.run(IDS, capture="blocks.*.attn.hook_pattern").activations
    assert list(patterns) == [f"blocks.{layer}.attn.hook_pattern" for layer in range(3)]
    explicit = toy.run(IDS, capture=[("pattern", 0), ("pattern", 1), ("pattern", 2)]).activations
    assert all(torch.equal(patterns[name], explicit[name]) for name in patterns)
    mixed = toy.run(IDS, capture=(("z", 0), "blocks.[12].hook_mlp_out", 1, "blocks.?.hook_resid_pre")).activations
    assert set(mixed) == {"blocks.0.attn.hook_z", "blocks.1.hook_mlp_out", "blocks.2.hook_mlp_out",
                          "blocks.1.hook_resid_post", "blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre",
                          "blocks.2.hook_resid_pre"}
    assert list(toy.run(IDS, capture="blocks.0.attn.hook_z").activations) == ["blocks.0.attn.hook_z"]


def test_overlapping_patterns_capture_a_point_once(toy):
    overlapping = toy.run(IDS, capture=["blocks.0.*", "blocks.*.attn.hook_z"]).activations
    assert list(overlapping).count("blocks.0.attn.hook_z") == 1 and len(overlapping) == 7 + 2
    named_and_matched = toy.run(IDS, capture=["blocks.0.attn.hook_z", "blocks.0.attn.*"]).activations
    assert set(named_and_matched) == {"blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern"}


@pytest.mark.parametrize("capture,error,message", [
    ("blocks.*.hook_q", ValueError,
     r"capture pattern 'blocks\.\*\.hook_q' matches no hook point; the names are like 'hook_embed', "
     r"'blocks\.0\.hook_resid_pre', 'blocks\.0\.attn\.hook_pattern', 'blocks\.0\.attn\.hook_z'"),
    (["blocks.0.attn.hook_z", "blocks.9.*"], ValueError, r"capture pattern 'blocks\.9\.\*' matches no hook point"),
    ("every", ValueError, "'every' is not a hook point icgt has"),
    ([3.5], TypeError, "a hook point is a name"),
])
def test_bad_captures_are_clear_errors(toy, capture, error, message):
    with pytest.raises(error, match=message):
        toy.run(IDS, capture=capture)
