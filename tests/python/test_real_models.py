"""SmolLM2-135M and Gemma 3 270M: icgt's bundles against transformers on the same GGUF weights.

transformers loads the same GGUF file (gguf_file=...), dequantising it itself, with its SDPA
attention. The input is the protocol's text: BOS, then a 1400-step random walk on the 4x4 grid of
concept words, one token each: 1401 tokens, well past Gemma 3's 512-token sliding window.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import max_relative_error, reference_outputs

import icgt
from icgt.tokens import DEFAULT_WORDS

# Per position, ||icgt - transformers|| / ||transformers||, float32, every hidden state and the
# logits. Measured: 0 (bit-identical) for both models with torch 2.13 / transformers 5.24. Against
# transformers' eager attention instead (a different softmax kernel) the same input gives at most
# 5.1e-5 (SmolLM2) and 1.9e-5 (Gemma 3) on hidden states, 9.8e-6 and 3.6e-6 on logits.
TOLERANCE = 1e-5
WALK_LENGTH = 1400


def walk_token_ids(bundle: Path, name: str) -> torch.Tensor:
    tokenizer = icgt.load_tokenizer(bundle)
    concept_ids = torch.tensor(icgt.concept_token_ids(tokenizer, DEFAULT_WORDS[name][:16]))
    walk = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0).random_walks(1, WALK_LENGTH, start="per_node")
    bos = torch.tensor([[icgt.read_bundle_config(bundle)["bos_token_id"]]])
    return torch.cat([bos, concept_ids[torch.from_numpy(walk)]], dim=1)


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma3-270m"])
def outputs(request):
    """Both models' outputs on the same walk (transformers is loaded, run and released once per model)."""
    from transformers import AutoModelForCausalLM

    name = request.param
    bundle_path = request.getfixturevalue("smollm2_bundle" if name == "smollm2-135m" else "gemma3_bundle")
    source = Path(icgt.read_bundle_config(bundle_path)["source"])
    input_ids = walk_token_ids(bundle_path, name)
    bundle = torch.jit.load(str(bundle_path))
    with torch.no_grad():
        states = bundle.hidden_states(input_ids)
        logits = bundle.head(bundle.final_norm(states[-1]))
    hf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32,
                                                    attn_implementation="sdpa").eval()
    hf_states, hf_raw_last, hf_logits = reference_outputs(hf_model, input_ids)
    del hf_model
    return dict(name=name, bundle=bundle, input_ids=input_ids, states=states, logits=logits,
                hf_states=hf_states, hf_raw_last=hf_raw_last, hf_logits=hf_logits)


def test_the_walk_is_longer_than_the_sliding_window(outputs):
    assert outputs["input_ids"].shape == (1, WALK_LENGTH + 1)
    assert WALK_LENGTH > 512


def test_every_hidden_state_matches_transformers(outputs):
    states, hf_states = outputs["states"], outputs["hf_states"]
    assert len(states) == len(hf_states) == outputs["bundle"].num_layers + 1
    errors = [max_relative_error(ours, theirs) for ours, theirs in zip(states[:-1], hf_states[:-1], strict=True)]
    assert max(errors) < TOLERANCE, errors
    # transformers' last hidden state has the final norm applied; icgt's is the raw block output.
    assert max_relative_error(states[-1], outputs["hf_raw_last"]) < TOLERANCE
    assert max_relative_error(outputs["bundle"].final_norm(states[-1]), hf_states[-1]) < TOLERANCE


def test_the_logits_match_transformers(outputs):
    assert max_relative_error(outputs["logits"], outputs["hf_logits"]) < TOLERANCE
    assert torch.equal(outputs["logits"].argmax(-1), outputs["hf_logits"].argmax(-1))


def test_forward_is_embed_blocks_final_norm_head(outputs):
    bundle, prefix = outputs["bundle"], outputs["input_ids"][:, :48]
    with torch.no_grad():
        hidden = bundle.embed(prefix)
        for layer in range(bundle.num_layers):  # a loaded ModuleList is indexed by child name
            hidden = getattr(bundle.blocks, str(layer))(hidden, None)
        torch.testing.assert_close(bundle(prefix), bundle.head(bundle.final_norm(hidden)), rtol=0, atol=0)


def test_the_bundle_describes_the_model(outputs):
    bundle, name = outputs["bundle"], outputs["name"]
    expected = {"smollm2-135m": ("llama", 30, 576, 49152, 9, 1), "gemma3-270m": ("gemma3", 18, 640, 262144, 4, 2)}
    attributes = ("architecture", "num_layers", "hidden_size", "vocab_size", "num_heads", "bos_token_id")
    assert tuple(bundle._c.getattr(attribute) for attribute in attributes) == expected[name]
    assert bundle._c.getattr("icgt_format_version") == icgt.models.FORMAT_VERSION
    assert [name for name, _ in bundle.blocks.named_children()] == [str(i) for i in range(bundle.num_layers)]
