"""Tiny random-weight Llama, Qwen2, Gemma 2 and Gemma 3 checkpoints: icgt's export against transformers.

Each configuration is built with transformers' own classes, saved with save_pretrained, exported
through icgt's checkpoint-folder path and compared with the transformers model on the same weights:
every hidden state, the raw output of the last block, and the logits. Sequences (64 tokens) are
much longer than the sliding window (8), so the window's exact bounds matter.
"""

from __future__ import annotations

import pytest
import torch
from helpers import max_relative_error, randomise, reference_outputs, save_checkpoint, tiny_tokenizer

import icgt
from icgt.models.export import export_bundle

# Per position, ||icgt - transformers|| / ||transformers|| (float32). Measured: 0 (bit-identical)
# against transformers' default attention (SDPA; eager for Gemma 2), also in bfloat16.
TOLERANCE = 1e-5
LENGTH = 64
WINDOW = 8


def _common(tokenizer):
    return dict(vocab_size=tokenizer.get_vocab_size(), hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def llama_llama3_rope(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    return LlamaForCausalLM(LlamaConfig(**_common(tokenizer), rope_parameters=rope, tie_word_embeddings=False))


def llama_linear_rope_tied(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    common = _common(tokenizer) | {"num_key_value_heads": 4}
    rope = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}
    return LlamaForCausalLM(LlamaConfig(**common, head_dim=8, rope_parameters=rope, tie_word_embeddings=True))


def qwen2_tied(tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    rope = {"rope_type": "default", "rope_theta": 1_000_000.0}
    return Qwen2ForCausalLM(Qwen2Config(**_common(tokenizer), rope_parameters=rope, tie_word_embeddings=True))


def qwen2_sliding_window(tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    # Blocks from max_window_layers on slide (Qwen2's rule); the real Qwen2.5 models turn it off.
    common = _common(tokenizer) | {"num_key_value_heads": 1}
    return Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1,
                                        tie_word_embeddings=False))


def gemma2(tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    return Gemma2ForCausalLM(Gemma2Config(**_common(tokenizer), head_dim=32, sliding_window=WINDOW,
                                          query_pre_attn_scalar=24, attn_logit_softcapping=5.0,
                                          final_logit_softcapping=3.0))


def gemma3(tokenizer):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    rope = {"full_attention": {"rope_type": "linear", "rope_theta": 1_000_000.0, "factor": 4.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
    return Gemma3ForCausalLM(Gemma3TextConfig(
        **_common(tokenizer), head_dim=32, sliding_window=WINDOW, query_pre_attn_scalar=24, rope_parameters=rope,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], final_logit_softcapping=20.0))


def gemma3_conditional_generation(tokenizer):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    vocab = tokenizer.get_vocab_size()
    text = Gemma3TextConfig(**_common(tokenizer), head_dim=16, sliding_window=WINDOW, query_pre_attn_scalar=16,
                            layer_types=["sliding_attention", "sliding_attention", "full_attention"])
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    return Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=1, image_token_index=vocab - 1,
        boi_token_index=vocab - 3, eoi_token_index=vocab - 2))


CONFIGURATIONS = {
    "llama-llama3-rope": llama_llama3_rope,
    "llama-linear-rope-tied": llama_linear_rope_tied,
    "qwen2-tied": qwen2_tied,
    "qwen2-sliding-window": qwen2_sliding_window,
    "gemma2": gemma2,
    "gemma3": gemma3,
    "gemma3-conditional-generation": gemma3_conditional_generation,
}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def exported(request, tokenizer, tmp_path_factory):
    """(transformers model, the icgt bundle loaded with torch.jit.load, bundle path, checkpoint folder)."""
    folder = tmp_path_factory.mktemp(request.param)
    hf_model = randomise(CONFIGURATIONS[request.param](tokenizer), seed=len(request.param))
    save_checkpoint(hf_model, folder, tokenizer)
    bundle = export_bundle(folder, folder / "bundle.pt", progress=False)
    return hf_model, torch.jit.load(str(bundle)), bundle, folder


def test_every_hidden_state_and_the_logits_match_transformers(exported, tokenizer):
    hf_model, bundle, _, _ = exported
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, tokenizer.get_vocab_size() - 3, (2, LENGTH), generator=generator)
    hf_states, hf_raw_last, hf_logits = reference_outputs(hf_model, input_ids)
    with torch.no_grad():
        states = bundle.hidden_states(input_ids)
        logits = bundle(input_ids)
    assert len(states) == len(hf_states) == bundle.num_layers + 1
    for layer in range(bundle.num_layers):  # hidden_states[l] is the input of block l in both
        assert max_relative_error(states[layer], hf_states[layer]) < TOLERANCE, f"hidden state {layer}"
    # transformers' last hidden state has the final norm applied; icgt's is the raw block output.
    assert max_relative_error(states[-1], hf_raw_last) < TOLERANCE
    assert max_relative_error(bundle.final_norm(states[-1]), hf_states[-1]) < TOLERANCE
    assert max_relative_error(logits, hf_logits) < TOLERANCE


def test_the_bundle_config_records_the_checkpoint(exported):
    hf_model, _, bundle, folder = exported
    config = icgt.read_bundle_config(bundle)
    text_config = hf_model.config.get_text_config()
    assert config["num_layers"] == text_config.num_hidden_layers
    assert config["hidden_size"] == text_config.hidden_size
    assert config["sliding_window"] == getattr(text_config, "sliding_window", None)
    kinds = getattr(text_config, "layer_types", None) or ["full_attention"] * text_config.num_hidden_layers
    assert config["layer_types"] == [kind.split("_")[0] for kind in kinds]
    assert config["attention_bias"] == (text_config.model_type == "qwen2")
    assert config["source"] == str(folder.resolve())
    assert config["dtype"] == "float32"


def test_a_bfloat16_export_matches_transformers_in_bfloat16(tokenizer, tmp_path):
    from transformers import Gemma3ForCausalLM

    folder = save_checkpoint(randomise(gemma3(tokenizer), seed=3), tmp_path, tokenizer)
    bundle = torch.jit.load(str(export_bundle(folder, tmp_path / "bf16.pt", "bfloat16", progress=False)))
    hf_model = Gemma3ForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    input_ids = torch.randint(3, 200, (1, LENGTH), generator=torch.Generator().manual_seed(2))
    hf_states, _, hf_logits = reference_outputs(hf_model, input_ids)
    with torch.no_grad():
        states = bundle.hidden_states(input_ids)
        logits = bundle(input_ids)
    assert states[0].dtype == logits.dtype == torch.bfloat16
    assert bundle.embed.weight.dtype == torch.bfloat16
    assert icgt.read_bundle_config(tmp_path / "bf16.pt")["dtype"] == "bfloat16"
    for layer in range(bundle.num_layers):
        assert max_relative_error(states[layer], hf_states[layer]) < 1e-2, f"hidden state {layer}"
    assert max_relative_error(logits, hf_logits) < 1e-2
