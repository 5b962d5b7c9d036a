"""The built-in models: icgt's bundles against transformers on the same GGUF weights.

transformers loads the same GGUF file (gguf_file=...), dequantising it itself, with its SDPA
attention (its copy is loaded once per session, conftest.transformers_model). The input is the
protocol's text: BOS, then a random walk on the 4x4 grid of concept words, one token each. Gemma 3's
input, 640 tokens, runs 128 positions past its 512-token sliding window, the one long-context check of
the normal suite (a tiny Gemma 3 with a window of 8 checks the window's bounds too,
test_hf_checkpoints.py); SmolLM2's is 64 tokens; Qwen2.5-Coder's check (ICGT_SLOW_TESTS=1) keeps the
protocol's 1401 tokens. Logits are compared every 8 positions and at the last one: transformers
applies its head at those positions only (logits_to_keep), as icgt's head is applied here.

Qwen2.5-Coder 1.5B is 7.1 GB in float32 (its GGUF has an untied head): the bundle's outputs are taken
and the bundle released before transformers loads its own copy, so that one copy is in memory at a time.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from helpers import BUNDLE_FIXTURES, max_relative_error, reference_outputs

import icgt
from icgt.models.tokens import DEFAULT_WORDS

# Per position, ||icgt - transformers|| / ||transformers||, float32, every hidden state and the
# logits. Measured: 0 (bit-identical) for all three models with torch 2.13 / transformers 5.24.
# Against transformers' eager attention instead (a different softmax kernel) the same input gives
# at most 5.1e-5 (SmolLM2) and 1.9e-5 (Gemma 3) on hidden states, 9.8e-6 and 3.6e-6 on logits.
TOLERANCE = 1e-5
#: Tokens of each model's input, BOS included.
LENGTHS = {"smollm2-135m": 64, "gemma3-270m": 640, "qwen2.5-coder-1.5b": 1401}
PREFIX = 48
#: architecture, num_layers, hidden_size, vocab_size, num_heads, bos_token_id of each bundle.
DESCRIPTIONS = {
    "smollm2-135m": ("llama", 30, 576, 49152, 9, 1),
    "gemma3-270m": ("gemma3", 18, 640, 262144, 4, 2),
    "qwen2.5-coder-1.5b": ("qwen2", 28, 1536, 151936, 12, 151643),
}


def walk_token_ids(bundle: Path, name: str, length: int) -> torch.Tensor:
    """BOS and a grid walk of length - 1 steps in the model's concept words: [1, length]."""
    tokenizer = icgt.load_tokenizer(bundle)
    concept_ids = torch.tensor(icgt.concept_token_ids(tokenizer, DEFAULT_WORDS[name][:16]))
    walk = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0).random_walks(1, length - 1, start="per_node")
    bos = torch.tensor([[icgt.read_bundle_config(bundle)["bos_token_id"]]])
    return torch.cat([bos, concept_ids[torch.from_numpy(walk)]], dim=1)


def logit_positions(length: int) -> list[int]:
    """Where the logits are compared: every 8th position and the last."""
    return sorted({*range(0, length, 8), length - 1})


def bundle_outputs(bundle_path: Path, input_ids: torch.Tensor) -> dict:
    """Everything the tests need from the bundle, so that it can be released before transformers loads."""
    bundle = torch.jit.load(str(bundle_path))
    with torch.no_grad():
        states = bundle.hidden_states(input_ids)
        normed_last = bundle.final_norm(states[-1])
        positions = logit_positions(input_ids.shape[1])
        # forward() against embed, each block by child name (as a loaded ModuleList is indexed), final_norm, head
        prefix = input_ids[:, :PREFIX]
        hidden = bundle.embed(prefix)
        for layer in range(bundle.num_layers):
            hidden = getattr(bundle.blocks, str(layer))(hidden, None)
        stepwise = bundle.head(bundle.final_norm(hidden))
        forward = bundle(prefix)
        attributes = ("architecture", "num_layers", "hidden_size", "vocab_size", "num_heads", "bos_token_id")
        return dict(states=states, normed_last=normed_last, logits=bundle.head(normed_last[:, positions]),
                    stepwise=stepwise, forward=forward, num_layers=bundle.num_layers,
                    description=tuple(bundle._c.getattr(attribute) for attribute in attributes),
                    format_version=bundle._c.getattr("icgt_format_version"),
                    children=[name for name, _ in bundle.blocks.named_children()])


@pytest.fixture(scope="module", params=list(DESCRIPTIONS))
def outputs(request, transformers_model):
    """Both models' outputs on the same walk (the bundle released before transformers' copy is loaded)."""
    name = request.param
    bundle_path = request.getfixturevalue(BUNDLE_FIXTURES[name])
    input_ids = walk_token_ids(bundle_path, name, LENGTHS[name])
    ours = bundle_outputs(bundle_path, input_ids)
    gc.collect()  # the bundle's weights go before transformers' arrive
    hf_model = transformers_model(name, bundle_path)
    hf_model.set_attn_implementation("sdpa")
    hf_states, hf_raw_last, hf_logits = reference_outputs(hf_model, input_ids, logit_positions(LENGTHS[name]))
    del hf_model
    gc.collect()  # Qwen2.5-Coder's copy, which the session does not keep, goes here
    return dict(name=name, input_ids=input_ids, **ours, hf_states=hf_states, hf_raw_last=hf_raw_last,
                hf_logits=hf_logits, config=icgt.read_bundle_config(bundle_path))


def test_gemmas_input_runs_past_its_sliding_window(outputs):
    config = outputs["config"]
    assert outputs["input_ids"].shape == (1, LENGTHS[outputs["name"]])
    sliding = "sliding" in config["layer_types"]
    assert sliding == (outputs["name"] == "gemma3-270m")  # the one built-in model with sliding-window layers
    if sliding:  # from position 512 on, its sliding layers no longer see the first tokens
        assert config["sliding_window"] == 512 and outputs["input_ids"].shape[1] == 512 + 128


def test_every_hidden_state_matches_transformers(outputs):
    states, hf_states = outputs["states"], outputs["hf_states"]
    assert len(states) == len(hf_states) == outputs["num_layers"] + 1
    errors = [max_relative_error(ours, theirs) for ours, theirs in zip(states[:-1], hf_states[:-1], strict=True)]
    assert max(errors) < TOLERANCE, errors
    # transformers' last hidden state has the final norm applied; icgt's is the raw block output.
    assert max_relative_error(states[-1], outputs["hf_raw_last"]) < TOLERANCE
    assert max_relative_error(outputs["normed_last"], hf_states[-1]) < TOLERANCE


def test_the_logits_match_transformers(outputs):
    assert outputs["logits"].shape == outputs["hf_logits"].shape == (1, len(logit_positions(LENGTHS[outputs["name"]])),
                                                                      DESCRIPTIONS[outputs["name"]][3])
    assert max_relative_error(outputs["logits"], outputs["hf_logits"]) < TOLERANCE
    assert torch.equal(outputs["logits"].argmax(-1), outputs["hf_logits"].argmax(-1))


def test_forward_is_embed_blocks_final_norm_head(outputs):
    torch.testing.assert_close(outputs["forward"], outputs["stepwise"], rtol=0, atol=0)


def test_the_bundle_describes_the_model(outputs):
    assert outputs["description"] == DESCRIPTIONS[outputs["name"]]
    assert outputs["format_version"] == icgt.models.FORMAT_VERSION
    assert outputs["children"] == [str(i) for i in range(outputs["num_layers"])]
