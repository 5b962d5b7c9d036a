"""The GGUF path on small synthetic files written the way llama.cpp's converter writes them.

The real SmolLM2, Gemma 3 and Qwen2.5-Coder files are covered by test_real_models.py; these files add
what those lack (Llama 3.1 rope_freqs, linear rope scaling, a tied Llama head, a Qwen2 whose rows a
wrong permutation would scramble) and every refusal.
"""

from __future__ import annotations

import math

import gguf
import numpy as np
import pytest
import torch
from helpers import max_relative_error, randomise, reference_outputs

from icgt.models.export import load_model
from icgt.models.gguf_checkpoint import GGUFFile

HIDDEN, HEADS, KV_HEADS, LAYERS, VOCAB = 64, 4, 2, 2, 96
HEAD_DIM = HIDDEN // HEADS
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}


def tiny_llama(rope: dict, tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, rope_parameters=rope,
                         tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2, max_position_embeddings=256)
    return randomise(LlamaForCausalLM(config), seed=7)


def tiny_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, bos_token_id=1,
                         eos_token_id=2, max_position_embeddings=256)
    return randomise(Qwen2ForCausalLM(config), seed=11)


def converter_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute (the row order llama.cpp's rotary kernel expects)."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama3_rope_factors(rope: dict) -> np.ndarray:
    """convert_hf_to_gguf.py's rope_freqs for Llama 3.1 scaling: one divisor per frequency."""
    inv_freq = 1.0 / (rope["rope_theta"] ** (np.arange(0, HEAD_DIM, 2, dtype=np.float32) / HEAD_DIM))
    old, low, high, factor = (rope[k] for k in ("original_max_position_embeddings", "low_freq_factor",
                                                 "high_freq_factor", "factor"))
    factors = []
    for frequency in inv_freq:
        wavelength = 2 * math.pi / frequency
        if wavelength < old / high:
            factors.append(1.0)
        elif wavelength > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


#: llama.cpp's architecture of each transformers model_type the converter writes here.
GGUF_ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3_text": "gemma3"}


def write_gguf(path, hf_model, *, architecture=None, metadata=None, drop=(), extra_tensors=None,
               rope_freqs=None, skip_keys=()):
    """A float32 GGUF of a transformers model (GGUF_ARCHITECTURES), written as llama.cpp's converter writes it.

    Tensors are renamed by gguf-py's map (the converter's); the converter permutes the query and key
    rows of Llama (LlamaModel.permute) but not of Qwen2 or Qwen3 (plain TextModels, which also write
    Qwen2's q/k/v biases as blk.N.attn_q.bias etc.), and stores every Gemma 3 norm weight plus 1
    (Gemma3Model). The metadata is the model config's, under ``architecture`` (default: the model's
    own; another name makes a file that claims a different architecture).
    """
    config = hf_model.config
    own_architecture = GGUF_ARCHITECTURES[config.model_type]
    architecture = architecture or own_architecture
    gguf_arch = next(arch for arch, name in gguf.MODEL_ARCH_NAMES.items() if name == own_architecture)
    converter = gguf.get_tensor_name_map(gguf_arch, config.num_hidden_layers)
    tensors = {}
    for key, value in hf_model.state_dict().items():
        value = value.numpy().astype(np.float32)
        if key == "lm_head.weight" and config.tie_word_embeddings:
            continue
        stem, suffix = key.rsplit(".", 1)
        if own_architecture == "llama" and stem.endswith("self_attn.q_proj"):
            value = converter_permute(value, config.num_attention_heads)
        elif own_architecture == "llama" and stem.endswith("self_attn.k_proj"):
            value = converter_permute(value, config.num_key_value_heads)
        elif own_architecture == "gemma3" and stem.endswith("norm"):
            value = value + 1.0
        tensors[f"{converter.get_name(stem)}.{suffix}"] = value
    if rope_freqs is not None:
        tensors["rope_freqs.weight"] = rope_freqs
    tensors.update(extra_tensors or {})
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    # Gemma 3 gives each layer type its own rope parameters; the file's rope.freq_base is the global layers'.
    rope = config.rope_parameters.get("full_attention", config.rope_parameters)
    fields = {"block_count": config.num_hidden_layers, "context_length": config.max_position_embeddings,
              "embedding_length": config.hidden_size, "feed_forward_length": config.intermediate_size,
              "attention.head_count": config.num_attention_heads,
              "attention.head_count_kv": config.num_key_value_heads, "rope.freq_base": float(rope["rope_theta"]),
              "attention.layer_norm_rms_epsilon": float(config.rms_norm_eps), "rope.dimension_count": head_dim}
    if own_architecture == "gemma3":
        fields.update({"attention.key_length": head_dim, "attention.value_length": head_dim,
                       "attention.sliding_window": config.sliding_window})
    fields.update(metadata or {})
    writer = gguf.GGUFWriter(str(path), architecture)
    for key, value in fields.items():
        if key in skip_keys:
            continue
        full_key = f"{architecture}.{key}"
        if isinstance(value, list):
            writer.add_array(full_key, value)
        elif isinstance(value, str):
            writer.add_string(full_key, value)
        elif isinstance(value, float):
            writer.add_float32(full_key, value)
        else:
            writer.add_uint32(full_key, value)
    writer.add_bos_token_id(config.bos_token_id)
    for name, value in tensors.items():
        if name not in drop:
            writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def assert_matches(model, hf_model):
    input_ids = torch.randint(0, VOCAB, (1, 48), generator=torch.Generator().manual_seed(3))
    hf_states, _, hf_logits = reference_outputs(hf_model, input_ids)
    with torch.no_grad():
        states = model.hidden_states(input_ids)
        logits = model(input_ids)
    for layer in range(LAYERS):
        assert max_relative_error(states[layer], hf_states[layer]) < 1e-5, f"hidden state {layer}"
    assert max_relative_error(logits, hf_logits) < 1e-5


def test_llama31_rope_freqs_untied_head_and_permuted_rows_match_transformers(tmp_path):
    hf_model = tiny_llama(LLAMA3_ROPE, tied=False)
    path = write_gguf(tmp_path / "llama31.gguf", hf_model, rope_freqs=llama3_rope_factors(LLAMA3_ROPE))
    model = load_model(path)
    assert model.config.rope_scaling["rope_type"] == "freq_factors"
    assert not model.config.tie_word_embeddings
    assert_matches(model, hf_model)


def test_linear_rope_scaling_and_a_tied_head_match_transformers(tmp_path):
    hf_model = tiny_llama({"rope_type": "linear", "rope_theta": 500000.0, "factor": 4.0}, tied=True)
    path = write_gguf(tmp_path / "linear.gguf", hf_model,
                      metadata={"rope.scaling.type": "linear", "rope.scaling.factor": 4.0})
    model = load_model(path)
    assert model.config.rope_scaling == {"rope_type": "linear", "factor": 4.0}
    assert model.head.weight is model.embed.weight
    assert_matches(model, hf_model)


def test_qwen2_biases_unpermuted_rows_and_an_untied_head_match_transformers(tmp_path):
    hf_model = tiny_qwen2()
    # As the real Qwen2.5 files: no rope.dimension_count (it defaults to head_dim).
    path = write_gguf(tmp_path / "qwen2.gguf", hf_model, skip_keys=("rope.dimension_count",))
    assert "blk.1.attn_v.bias" in GGUFFile(path).tensors
    model = load_model(path)
    config = model.config
    assert (config.architecture, config.attention_bias, config.rope_theta, config.head_dim) == \
        ("qwen2", True, 1_000_000.0, HEAD_DIM)
    assert not config.tie_word_embeddings
    target, first, rows = model.parameter_slices()["blocks.1.attn.k_proj.bias"]
    fused_bias = dict(model.named_parameters())[target][first:first + rows]
    assert torch.equal(fused_bias, hf_model.model.layers[1].self_attn.k_proj.bias)
    assert_matches(model, hf_model)


@pytest.fixture(scope="module")
def hf_llama():
    return tiny_llama({"rope_type": "default", "rope_theta": 500000.0}, tied=True)


@pytest.mark.parametrize("change, error, message", [
    (dict(architecture="phi3"), ValueError, "GGUF architecture 'phi3' is not supported"),
    (dict(skip_keys=("block_count",)), ValueError, "lacks the required key 'llama.block_count'"),
    (dict(metadata={"rope.scaling.type": "yarn"}), ValueError, "rope scaling 'yarn' is not supported"),
    (dict(metadata={"rope.dimension_count": 8}), ValueError, "partial rotary embeddings"),
    (dict(extra_tensors={"blk.0.attn_qkv.weight": np.zeros((3, HIDDEN), np.float32)}), ValueError,
     "unexpected tensor 'blk.0.attn_qkv.weight'"),
    (dict(extra_tensors={"blk.0.attn_q.bias": np.zeros(HIDDEN, np.float32)}), ValueError,
     "unexpected weight 'blocks.0.attn.q_proj.bias'"),
    (dict(drop=("blk.1.ffn_up.weight",)), ValueError, r"1 weight\(s\) missing"),
    (dict(drop=("token_embd.weight",)), ValueError, "the GGUF file has no token_embd.weight tensor"),
    (dict(metadata={"feed_forward_length": 80}), ValueError, "has shape .* expected"),
])
def test_bad_gguf_files_are_refused_with_the_reason(tmp_path, hf_llama, change, error, message):
    path = write_gguf(tmp_path / "bad.gguf", hf_llama, **change)
    with pytest.raises(error, match=message):
        load_model(path)


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "noise.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="is not a readable GGUF file"):
        GGUFFile(path)


def test_a_missing_gguf_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        GGUFFile(tmp_path / "absent.gguf")
