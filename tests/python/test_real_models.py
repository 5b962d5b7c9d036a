"""The built-in models: icgt's bundles against transformers on the same GGUF weights.

transformers loads the same GGUF file (gguf_file=...), dequantising it itself, with its SDPA
attention. The input is the protocol's text: BOS, then a 1400-step random walk on the 4x4 grid of
concept words, one token each: 1401 tokens, well past Gemma 3's 512-token sliding window.

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
WALK_LENGTH = 1400
PREFIX = 48
#: architecture, num_layers, hidden_size, vocab_size, num_heads, bos_token_id of each bundle.
DESCRIPTIONS = {
    "smollm2-135m": ("llama", 30, 576, 49152, 9, 1),
    "gemma3-270m": ("gemma3", 18, 640, 262144, 4, 2),
    "qwen2.5-coder-1.5b": ("qwen2", 28, 1536, 151936, 12, 151643),
}


def walk_token_ids(bundle: Path, name: str) -> torch.Tensor:
    tokenizer = icgt.load_tokenizer(bundle)
    concept_ids = torch.tensor(icgt.concept_token_ids(tokenizer, DEFAULT_WORDS[name][:16]))
    walk = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0).random_walks(1, WALK_LENGTH, start="per_node")
    bos = torch.tensor([[icgt.read_bundle_config(bundle)["bos_token_id"]]])
    return torch.cat([bos, concept_ids[torch.from_numpy(walk)]], dim=1)


def bundle_outputs(bundle_path: Path, input_ids: torch.Tensor) -> dict:
    """Everything the tests need from the bundle, so that it can be released before transformers loads."""
    bundle = torch.jit.load(str(bundle_path))
    with torch.no_grad():
        states = bundle.hidden_states(input_ids)
        normed_last = bundle.final_norm(states[-1])
        # forward() against embed, each block by child name (as a loaded ModuleList is indexed), final_norm, head
        prefix = input_ids[:, :PREFIX]
        hidden = bundle.embed(prefix)
        for layer in range(bundle.num_layers):
            hidden = getattr(bundle.blocks, str(layer))(hidden, None)
        stepwise = bundle.head(bundle.final_norm(hidden))
        forward = bundle(prefix)
        attributes = ("architecture", "num_layers", "hidden_size", "vocab_size", "num_heads", "bos_token_id")
        return dict(states=states, normed_last=normed_last, logits=bundle.head(normed_last),
                    stepwise=stepwise, forward=forward, num_layers=bundle.num_layers,
                    description=tuple(bundle._c.getattr(attribute) for attribute in attributes),
                    format_version=bundle._c.getattr("icgt_format_version"),
                    children=[name for name, _ in bundle.blocks.named_children()])


@pytest.fixture(scope="module", params=list(DESCRIPTIONS))
def outputs(request):
    """Both models' outputs on the same walk (one model in memory at a time, each loaded once per model)."""
    from transformers import AutoModelForCausalLM

    name = request.param
    bundle_path = request.getfixturevalue(BUNDLE_FIXTURES[name])
    source = Path(icgt.read_bundle_config(bundle_path)["source"])
    input_ids = walk_token_ids(bundle_path, name)
    ours = bundle_outputs(bundle_path, input_ids)
    gc.collect()  # the bundle's weights go before transformers' arrive
    hf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32,
                                                    attn_implementation="sdpa").eval()
    hf_states, hf_raw_last, hf_logits = reference_outputs(hf_model, input_ids)
    del hf_model
    gc.collect()
    return dict(name=name, input_ids=input_ids, **ours, hf_states=hf_states, hf_raw_last=hf_raw_last,
                hf_logits=hf_logits)


def test_the_walk_is_longer_than_the_sliding_window(outputs):
    assert outputs["input_ids"].shape == (1, WALK_LENGTH + 1)
    assert WALK_LENGTH > 512


def test_every_hidden_state_matches_transformers(outputs):
    states, hf_states = outputs["states"], outputs["hf_states"]
    assert len(states) == len(hf_states) == outputs["num_layers"] + 1
    errors = [max_relative_error(ours, theirs) for ours, theirs in zip(states[:-1], hf_states[:-1], strict=True)]
    assert max(errors) < TOLERANCE, errors
    # transformers' last hidden state has the final norm applied; icgt's is the raw block output.
    assert max_relative_error(states[-1], outputs["hf_raw_last"]) < TOLERANCE
    assert max_relative_error(outputs["normed_last"], hf_states[-1]) < TOLERANCE


def test_the_logits_match_transformers(outputs):
    assert max_relative_error(outputs["logits"], outputs["hf_logits"]) < TOLERANCE
    assert torch.equal(outputs["logits"].argmax(-1), outputs["hf_logits"].argmax(-1))


def test_forward_is_embed_blocks_final_norm_head(outputs):
    torch.testing.assert_close(outputs["forward"], outputs["stepwise"], rtol=0, atol=0)


def test_the_bundle_describes_the_model(outputs):
    assert outputs["description"] == DESCRIPTIONS[outputs["name"]]
    assert outputs["format_version"] == icgt.models.FORMAT_VERSION
    assert outputs["children"] == [str(i) for i in range(outputs["num_layers"])]
