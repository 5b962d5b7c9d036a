"""icgt's model definitions: masks, rotary frequencies, config checks, per-head gates, TorchScript."""

from __future__ import annotations

import copy

import pytest
import torch

import icgt
from icgt.models.scriptable import FORMAT_VERSION, CausalLM, ModelConfig, rope_inverse_frequencies
from icgt.models.scriptable.layers import attention_mask


def random_model(architecture: str, **overrides) -> CausalLM:
    model = CausalLM(ModelConfig.tiny(architecture, **overrides))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


@pytest.mark.parametrize("window", [0, 1, 5, 19, 40])
def test_attention_mask_is_transformers_causal_and_sliding_window_rule(window):
    from transformers.masking_utils import causal_mask_function, sliding_window_causal_mask_function

    length = 20
    rule = sliding_window_causal_mask_function(window) if window else causal_mask_function
    index = torch.tensor
    expected = torch.tensor([[bool(rule(index(0), index(0), index(q), index(k))) for k in range(length)]
                             for q in range(length)])
    assert torch.equal(attention_mask(length, window, torch.device("cpu")), expected)


@pytest.mark.parametrize("rope", [
    {"rope_type": "default", "rope_theta": 10000.0},
    {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
])
def test_rotary_frequencies_equal_transformers(rope):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = LlamaConfig(hidden_size=256, num_attention_heads=2, rope_parameters=dict(rope))
    init = ROPE_INIT_FUNCTIONS.get(rope["rope_type"], LlamaRotaryEmbedding.compute_default_rope_parameters)
    expected, _ = init(config)
    scaling = None if rope["rope_type"] == "default" else {k: v for k, v in rope.items() if k != "rope_theta"}
    assert torch.equal(rope_inverse_frequencies(128, rope["rope_theta"], scaling), expected)


def test_freq_factors_divide_the_default_frequencies():
    factors = [1.0, 2.0, 4.0, 8.0]
    expected = rope_inverse_frequencies(8, 10000.0, None) / torch.tensor(factors)
    scaling = {"rope_type": "freq_factors", "factors": factors}
    assert torch.equal(rope_inverse_frequencies(8, 10000.0, scaling), expected)


@pytest.mark.parametrize("architecture, overrides, message", [
    ("mistral", {}, "architecture 'mistral' is not supported"),
    ("llama", {"hidden_size": 0}, "hidden_size must be positive"),
    ("llama", {"num_kv_heads": 3}, "must be a multiple of num_kv_heads"),
    ("llama", {"head_dim": 7}, "head_dim must be even"),
    ("llama", {"hidden_activation": "relu"}, "hidden_activation 'relu' is not supported"),
    ("llama", {"layer_types": ["full"]}, "layer_types must list 2 entries"),
    ("llama", {"layer_types": ["full", "local"]}, "layer_types must list 2 entries"),
    ("gemma2", {"sliding_window": None}, "sliding layers need a positive sliding_window"),
    ("llama", {"rope_scaling": {"rope_type": "yarn"}}, "rope_scaling type 'yarn' is not supported"),
    ("llama", {"rope_scaling": {"rope_type": "freq_factors", "factors": [1.0]}}, "head_dim/2 = 4 entries"),
    ("llama", {"final_logit_softcapping": 30.0}, "Llama has no final-logit soft-capping"),
    ("llama", {"attn_logit_softcapping": 50.0}, "Llama has no attention-logit soft-capping"),
    ("gemma3", {"attn_logit_softcapping": 50.0}, "Gemma 3 has no attention-logit soft-capping"),
    ("qwen2", {"final_logit_softcapping": 30.0}, "Qwen2 has no final-logit soft-capping; final_logit"),
    ("qwen2", {"attention_bias": False}, "attention_bias must be True for architecture 'qwen2'"),
    ("llama", {"attention_bias": True}, "attention_bias must be False for architecture 'llama'"),
    ("gemma2", {"attention_bias": True}, "attention_bias must be False for architecture 'gemma2'"),
    ("qwen2", {"attention_bias": 1}, "attention_bias must be a bool, got 1"),
])
def test_inconsistent_configs_are_refused_with_the_reason(architecture, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        ModelConfig.tiny(architecture, **overrides)


def test_config_round_trips_through_a_dict():
    config = ModelConfig.tiny("gemma3")
    assert ModelConfig(**config.to_dict()) == config


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma2", "gemma3"])
def test_head_gate_equals_scaling_each_heads_output_projection_columns(architecture):
    model = random_model(architecture)
    config = model.config
    hidden = torch.randn(2, 7, config.hidden_size, generator=torch.Generator().manual_seed(1))
    gate = torch.tensor([0.0, 1.0, 0.5, 2.0])
    reference = copy.deepcopy(model)
    with torch.no_grad():
        columns = reference.blocks[0].attn.o_proj.weight.view(config.hidden_size, config.num_heads, config.head_dim)
        columns.mul_(gate.view(1, -1, 1))
        expected = reference.blocks[0](hidden, None)
        torch.testing.assert_close(model.blocks[0](hidden, gate), expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(model.blocks[0](hidden, torch.ones(4)), model.blocks[0](hidden, None))


def test_scripted_model_exposes_the_bundle_contract():
    model = random_model("gemma3")
    scripted = torch.jit.script(model)
    module = scripted._c  # the C++ torch::jit::Module, read as C++ reads it with module.attr(name)
    assert module.getattr("icgt_format_version") == FORMAT_VERSION == 4
    assert module.getattr("architecture") == "gemma3"
    assert [module.getattr(name) for name in ("num_layers", "hidden_size", "vocab_size", "num_heads", "bos_token_id")] \
        == [2, 32, 64, 4, 1]
    ids = torch.tensor([[1, 4, 9, 16, 25, 36]])
    with torch.no_grad():
        hidden = scripted.embed(ids)
        for block in scripted.blocks:
            hidden = block(hidden, None)
        manual = scripted.head(scripted.final_norm(hidden))
        assert torch.equal(manual, scripted(ids))
        assert torch.equal(scripted.hidden_states(ids)[-1], hidden)
        assert torch.equal(scripted(ids), model(ids))


def test_the_cpp_loader_reads_the_format_version_the_exporter_writes():
    # One number on each side of the boundary: the C++ constant (icgt::kBundleFormatVersion) and the
    # version that export writes into every bundle.
    assert icgt.BUNDLE_FORMAT_VERSION == FORMAT_VERSION


def test_qwen2_biases_only_its_query_key_and_value_projections():
    model = random_model("qwen2")
    biases = sorted(name for name, _ in model.named_parameters() if name.endswith(".bias"))
    assert biases == [f"blocks.{layer}.attn.qkv_proj.bias" for layer in range(2)]
    assert not any(name.endswith(".bias") for name, _ in random_model("llama").named_parameters())
    attention, x = model.blocks[0].attn, torch.randn(1, 3, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fused = attention.qkv_proj
        torch.testing.assert_close(fused(x), x @ fused.weight.T + fused.bias)
        ids = torch.tensor([[1, 4, 9, 16, 25, 36]])
        logits = model(ids)
        assert torch.equal(torch.jit.script(model)(ids), logits)
        fused.bias[:32].zero_()  # the query bias is used: without it the output changes
        assert not torch.equal(model(ids), logits)


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma3"])
def test_fused_projections_compute_what_the_separate_ones_do(architecture):
    """q, k, v and gate, up from one matrix product each: the same numbers as separate products."""
    model = random_model(architecture)
    block, x = model.blocks[1], torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(4))
    slices = model.parameter_slices()
    parameters = dict(model.named_parameters())

    def part(name):
        target, first, rows = slices[f"blocks.1.{name}"]
        return parameters[target][first:first + rows]

    with torch.no_grad():
        q, k, v = block.attn.qkv_proj(x).split([32, 16, 16], dim=-1)
        bias = architecture == "qwen2"
        for projection, fused in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
            separate = x @ part(f"attn.{projection}.weight").T + (part(f"attn.{projection}.bias") if bias else 0)
            torch.testing.assert_close(fused, separate)
        gate, up = block.mlp.gate_up_proj(x).chunk(2, dim=-1)
        torch.testing.assert_close(gate, x @ part("mlp.gate_proj.weight").T)
        torch.testing.assert_close(up, x @ part("mlp.up_proj.weight").T)


def test_float32_norms_are_the_explicit_formula_bit_for_bit():
    from icgt.models.scriptable.layers import GemmaRMSNorm, RMSNorm

    x = torch.randn(4, 7, 64, generator=torch.Generator().manual_seed(5)) * 3
    for norm in (RMSNorm(64, 1e-6, torch.float32), GemmaRMSNorm(64, 1e-6, torch.float32)):
        with torch.no_grad():
            norm.weight.copy_(torch.randn(64, generator=torch.Generator().manual_seed(6)))
            explicit = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
            expected = norm.weight * explicit if isinstance(norm, RMSNorm) else explicit * (1.0 + norm.weight)
            assert torch.equal(norm(x), expected)


def test_a_wrong_head_gate_shape_is_refused():
    scripted = torch.jit.script(random_model("llama"))
    hidden = torch.zeros(1, 3, 32)
    with pytest.raises(Exception, match=r"head_gate: expected shape \[4\]"):
        scripted.blocks[0](hidden, torch.ones(3))


def test_gemma_embedding_scale_is_rounded_in_the_model_dtype():
    model = CausalLM(ModelConfig.tiny("gemma3", hidden_size=640, num_heads=4, head_dim=8), torch.bfloat16)
    assert model.embed.scale.dtype == torch.bfloat16 and float(model.embed.scale) == 25.25
    assert float(CausalLM(ModelConfig.tiny("llama")).embed.scale) == 1.0
