"""Inside the built-in models: the probe's hook points, attention patterns, logits and head
ablations against transformers on the same GGUF weights, over BOS and a 63-step grid walk (64
tokens). Gemma 3's sliding window is checked past its 512 tokens in test_real_models.py (the fused
blocks) and, for the patterns and hook points, on a tiny Gemma 3 whose window of 8 is shorter than
its input in test_probe_internals.py; transformers' copy of each model is loaded once per session
(conftest.transformers_model).

transformers' SDPA run (hooks on its modules) is the reference for per-head outputs, attn_out,
mlp_out, the residuals and the logits; its eager run (output_attentions) for the attention weights,
which SDPA never forms. Eager and SDPA attention round differently, so the residual entering a deep
block differs between the two runs by ~1e-5: for the patterns, the probe is given the eager run's
residual at each compared block (a resid_pre hook), so that both sides weigh the same input.
"""

from __future__ import annotations

import gc

import pytest
from helpers import BUNDLE_FIXTURES, hf_internals, max_relative_error
from test_real_models import walk_token_ids

import icgt

TOLERANCE = 1e-5
LENGTH = 64
#: Blocks read in each model: first, middle, last; Gemma's global block 5 besides its sliding ones.
LAYERS = {"smollm2-135m": [0, 14, 29], "gemma3-270m": [0, 5, 9, 17]}
POINTS = {"resid_pre": "hook_resid_pre", "z": "attn.hook_z", "attn_out": "hook_attn_out",
          "resid_mid": "hook_resid_mid", "mlp_out": "hook_mlp_out", "resid_post": "hook_resid_post"}
POSITIONS = [*range(0, LENGTH, 9), LENGTH - 1]


@pytest.fixture(scope="module", params=list(LAYERS))
def compared(request, transformers_model):
    """icgt's and transformers' internals of one model on the walk, plain and with heads ablated."""
    name = request.param
    bundle = request.getfixturevalue(BUNDLE_FIXTURES[name])
    ids = walk_token_ids(bundle, name, LENGTH)
    layers = LAYERS[name]
    ablate = {layers[0]: [1], layers[1]: [0, 2]}
    probe = icgt.ActivationProbe(bundle, device="cpu")
    sites = [(point, layer) for layer in layers for point in [*POINTS, "pattern"]]
    ours = probe.run(ids, capture=sites, logits=POSITIONS)
    ablated = probe.run(ids, logits=POSITIONS,
                        ablations=[icgt.HeadAblation(layer, heads) for layer, heads in ablate.items()])
    del probe
    gc.collect()
    hf_model = transformers_model(name, bundle)
    theirs = hf_internals(hf_model, ids, attention="sdpa", layers=layers)
    theirs_ablated = hf_internals(hf_model, ids, attention="sdpa", layers=[], ablate=ablate)["logits"]
    eager = hf_internals(hf_model, ids, attention="eager", layers=layers)
    del hf_model
    gc.collect()
    probe = icgt.ActivationProbe(bundle, device="cpu")
    inputs = {("resid_pre", layer): (lambda _layer, _x, layer=layer: eager[("resid_pre", layer)]) for layer in layers}
    ours_from_eager = probe.run(ids, hooks=inputs, capture=[("pattern", layer) for layer in layers])
    patterns = {layer: (ours_from_eager.activations[f"blocks.{layer}.attn.hook_pattern"], eager[("pattern", layer)])
                for layer in layers}
    return dict(name=name, layers=layers, ours=ours, ablated=ablated, theirs=theirs, theirs_ablated=theirs_ablated,
                patterns=patterns)


def test_each_point_inside_the_blocks_equals_transformers(compared):
    for layer in compared["layers"]:
        for point, lens_name in POINTS.items():
            ours = compared["ours"].activations[f"blocks.{layer}.{lens_name}"]
            assert max_relative_error(ours, compared["theirs"][(point, layer)]) < TOLERANCE, (point, layer)


def test_attention_patterns_equal_transformers_eager_attention(compared):
    for layer, (ours, theirs) in compared["patterns"].items():
        assert ours.shape == theirs.shape == (1, ours.shape[1], LENGTH, LENGTH)
        assert max_relative_error(ours, theirs) < TOLERANCE, layer
    # The pattern of the plain run is the same up to the residual's drift between the two kernels.
    for layer, (_, theirs) in compared["patterns"].items():
        plain = compared["ours"].activations[f"blocks.{layer}.attn.hook_pattern"]
        assert max_relative_error(plain, theirs) < 1e-3, layer


def test_logits_at_chosen_positions_equal_transformers(compared):
    assert max_relative_error(compared["ours"].logits, compared["theirs"]["logits"][:, POSITIONS]) < TOLERANCE


def test_head_zero_ablation_equals_the_same_ablation_by_a_hook_in_transformers(compared):
    ours, theirs = compared["ablated"].logits, compared["theirs_ablated"][:, POSITIONS]
    assert max_relative_error(ours, theirs) < TOLERANCE
    # and the ablation changed the predictions: the comparison is not of two plain runs
    assert max_relative_error(ours, compared["theirs"]["logits"][:, POSITIONS]) > 1e-3
