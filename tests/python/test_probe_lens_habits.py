"""TransformerLens habits on the probe (issue 24, section 3): activations looked up as ActivationCache's
cache["z", 5], residuals by block."""

from collections.abc import Mapping

import pytest
import torch
from toy_bundle import toy_model, write_toy_bundles

import icgt

IDS = torch.tensor([[0, 5, 6, 7, 5, 6, 8, 9], [0, 1, 2, 3, 4, 45, 44, 46]])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return icgt.ActivationProbe(write_toy_bundles(tmp_path_factory.mktemp("toy")), device="cpu")


@pytest.fixture(scope="module")
def plain():
    """The toy bundle's model as plain PyTorch (icgt.models.CausalLM with the bundle's weights, eager)."""
    return toy_model()


# --- activations and residuals ------------------------------------------------------------------

def test_activations_are_looked_up_by_every_form_capture_takes(toy):
    result = toy.run(IDS, capture=[("z", 1), ("pattern", 0), ("resid_post", 2)])
    activations = result.activations
    z = activations["blocks.1.attn.hook_z"]
    assert activations["z", 1] is z and activations[(1, "z")] is z and activations["attn.hook_z", 1] is z
    assert activations["pattern", 0].shape == (2, 4, 8, 8)
    assert activations[2] is activations["resid_post", 2] is activations["blocks.2.hook_resid_post"]
    assert isinstance(activations, Mapping) and len(activations) == 3
    assert list(activations) == activations.keys() == [
        "blocks.0.attn.hook_pattern", "blocks.1.attn.hook_z", "blocks.2.hook_resid_post"]
    assert dict(activations.items()).keys() == dict(activations).keys()
    assert all(a is b for a, b in zip(activations.values(), [activations[name] for name in activations]))
    assert ("z", 1) in activations and "blocks.1.attn.hook_z" in activations
    assert ("z", 2) not in activations and "blocks.1.hook_nothing" not in activations and 2.5 not in activations
    assert activations.get(("z", 1)) is z and activations.get(("z", 2)) is None and activations.get("x", 0) == 0
    assert repr(activations).startswith("Activations({'blocks.0.attn.hook_pattern': [2, 4, 8, 8], ")


@pytest.mark.parametrize("key,message", [
    (("z", 2), r"blocks\.2\.attn\.hook_z was not captured; captured: 'blocks\.1\.attn\.hook_z'.$"),
    ("blocks.1.hook_nothing", r"'blocks\.1\.hook_nothing' is not a hook point \(.*'hook_nothing' is not a hook point "
                              r"icgt has.*\); captured: 'blocks\.1\.attn\.hook_z'"),
    (2.5, r"2\.5 is not a hook point \(.*a hook point is a name such as.*\); captured: 'blocks\.1\.attn\.hook_z'"),
    (("resid_post", 0), r"blocks\.0\.hook_resid_post was not captured; captured: 'blocks\.1\.attn\.hook_z'; layer 0 "
                        r"was asked for with layers=: result\.residual\(0\)"),
])
def test_a_point_not_captured_is_a_key_error_naming_what_was(toy, key, message):
    activations = toy.run(IDS, layers=[0], capture=[("z", 1)]).activations
    with pytest.raises(KeyError, match=message):
        activations[key]


def test_nothing_captured_says_where_captures_are_asked_for(toy):
    with pytest.raises(KeyError, match=r"captured: nothing \(capture= names what a run keeps\)"):
        toy.run(IDS).activations["z", 0]


def test_a_residual_by_block_is_the_one_asked_for_in_that_place(toy, plain):
    result = toy.run(IDS, layers=[2, icgt.EMBEDDING_LAYER, 0], capture=[("resid_post", 1)])
    states = plain.hidden_states(IDS)
    for position, layer in enumerate([2, icgt.EMBEDDING_LAYER, 0]):
        assert torch.equal(result.residual(layer), result.residuals[position])
        torch.testing.assert_close(result.residual(layer), states[layer + 1], rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match=r"layer 1's residual was not asked for; layers=\[2, -1, 0\] were; it was "
                                       r"captured: result\.activations\['blocks\.1\.hook_resid_post'\]"):
        result.residual(1)
    with pytest.raises(KeyError, match=r"layer 5's residual was not asked for; layers=\[2, -1, 0\] were.$"):
        result.residual(5)
    with pytest.raises(TypeError, match="layer must be an integer"):
        result.residual("2")
