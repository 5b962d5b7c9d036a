"""Reading a Hugging Face checkpoint folder (config.json + *.safetensors) into icgt's names.

Supported: the checkpoints whose model_type one of icgt.models.architectures reads (LlamaForCausalLM,
Qwen2ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM), and the text model of a multimodal one
(Gemma3ForConditionalGeneration: its vision tower is skipped). transformers' AutoConfig resolves the
config, so that values a config.json leaves at their class default are read correctly. This module
reads what every transformers decoder config has; the architecture adds its own hyper-parameters and
names its layers' tensors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..extras import require
from .architectures import checkpoint_architecture, find_architecture
from .architectures.base import QKV_PROJECTIONS
from .scriptable import ModelConfig

_ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}

# Where the text model's weights live, by the class that saved them.
_TEXT_PREFIXES = ("model.", "model.language_model.", "language_model.model.")
_HEAD_NAMES = ("lm_head.weight", "language_model.lm_head.weight")
_LAYER_KEY = re.compile(r"layers\.(\d+)\.(.+)\.(weight|bias)")


class HFCheckpoint:
    """A Hugging Face checkpoint folder: its icgt ModelConfig and its weights under icgt's names.

    >>> checkpoint = HFCheckpoint(tiny_llama_checkpoint)
    >>> checkpoint.architecture.title, checkpoint.config.num_layers
    ('Llama', 2)
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in {self.folder}: expected a Hugging Face checkpoint folder")
        self.files = sorted(self.folder.glob("*.safetensors"))
        if not self.files:
            raise FileNotFoundError(f"no *.safetensors weights in {self.folder}")
        self.config = self._config()

    def _config(self) -> ModelConfig:
        transformers = require("transformers", f"reading the checkpoint folder {self.folder}")
        hf_config = transformers.AutoConfig.from_pretrained(self.folder)
        try:
            self.architecture = checkpoint_architecture(hf_config.model_type)
        except ValueError as error:
            raise ValueError(f"{self.folder}: {error}") from None
        return config_from_transformers(hf_config.get_text_config(), self.architecture.name, str(self.folder))

    def weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(icgt name, tensor as stored) for every weight of the text model, file by file.

        >>> dict(HFCheckpoint(tiny_llama_checkpoint).weights())["final_norm.weight"].shape
        torch.Size([32])
        """
        from safetensors import safe_open

        prefix = self._text_prefix()
        for file in self.files:
            with safe_open(file, framework="pt") as tensors:
                for key in tensors.keys():
                    name = self._icgt_name(key, prefix)
                    if name is not None:
                        yield name, tensors.get_tensor(key)

    def _text_prefix(self) -> str:
        from safetensors import safe_open

        keys: set[str] = set()
        for file in self.files:
            with safe_open(file, framework="pt") as tensors:
                keys.update(tensors.keys())
        for prefix in _TEXT_PREFIXES:
            if f"{prefix}embed_tokens.weight" in keys:
                return prefix
        raise ValueError(f"{self.folder}: no token embedding found; expected one of "
                         f"{[p + 'embed_tokens.weight' for p in _TEXT_PREFIXES]}")

    def _icgt_name(self, key: str, prefix: str) -> str | None:
        if key in _HEAD_NAMES:
            return "head.weight"
        if not key.startswith(prefix):
            return None  # another tower (vision, projector) of a multimodal checkpoint
        local = key[len(prefix):]
        if local.endswith("rotary_emb.inv_freq"):
            return None  # derived from the config; old checkpoints stored it anyway
        if local == "embed_tokens.weight":
            return "embed.weight"
        if local == "norm.weight":
            return "final_norm.weight"
        match = _LAYER_KEY.fullmatch(local)
        part = None if match is None else self.architecture.checkpoint_tensors.get(match.group(2))
        if part is None:
            raise ValueError(f"{self.folder}: unexpected tensor {key!r} (biases and other extras are not supported)")
        layer, _, kind = match.groups()
        if kind == "bias" and not (self.architecture.qkv_bias and part in QKV_PROJECTIONS):
            has = "biases only on the query, key and value projections" if self.architecture.qkv_bias else "no biases"
            raise ValueError(f"{self.folder}: unexpected tensor {key!r} ({self.architecture.title} has {has})")
        return f"blocks.{layer}.{part}.{kind}"


def config_from_transformers(hf_config: Any, architecture: str, where: str) -> ModelConfig:
    """icgt's ModelConfig of a transformers (>= 5) text-model config of ``architecture`` (icgt's name).

    >>> from transformers import LlamaConfig
    >>> config_from_transformers(LlamaConfig(num_hidden_layers=2), "llama", "example").num_layers
    2
    """

    def unsupported(what: str) -> ValueError:
        return ValueError(f"{where}: {what} is not supported")

    definition = find_architecture(architecture)
    # transformers' Qwen2 always biases q, k and v, and nothing else, whatever its config says; the
    # attention_bias of Llama (and Gemma) would also bias the output projection, which icgt has not.
    biased = getattr(hf_config, "attention_bias", False) or getattr(hf_config, "mlp_bias", False)
    if biased and not definition.qkv_bias:
        raise unsupported("a model with attention or MLP biases")
    if getattr(hf_config, "use_bidirectional_attention", False):
        raise unsupported("bidirectional attention")
    activation = getattr(hf_config, "hidden_activation", None) or hf_config.hidden_act
    if activation not in _ACTIVATIONS:
        raise unsupported(f"activation {activation!r} (expected one of {sorted(_ACTIVATIONS)})")
    if hf_config.bos_token_id is None:
        raise ValueError(f"{where}: the config has no bos_token_id")
    heads = hf_config.num_attention_heads
    layer_types = [
        "sliding" if kind == "sliding_attention" else "full"
        for kind in getattr(hf_config, "layer_types", None) or ["full_attention"] * hf_config.num_hidden_layers
    ]
    rope = definition.rope_parameters(hf_config)
    specific = definition.transformers_hyperparameters(hf_config, where)
    return ModelConfig(
        architecture=architecture,
        vocab_size=hf_config.vocab_size,
        hidden_size=hf_config.hidden_size,
        intermediate_size=hf_config.intermediate_size,
        num_layers=hf_config.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=hf_config.num_key_value_heads or heads,
        head_dim=getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads,
        rms_norm_eps=hf_config.rms_norm_eps,
        rope_theta=float(rope["rope_theta"]),
        rope_scaling=_rope_scaling(rope, unsupported),
        hidden_activation=_ACTIVATIONS[activation],
        tie_word_embeddings=bool(hf_config.tie_word_embeddings),
        bos_token_id=hf_config.bos_token_id,
        max_position_embeddings=hf_config.max_position_embeddings,
        layer_types=layer_types,
        sliding_window=getattr(hf_config, "sliding_window", None) if "sliding" in layer_types else None,
        attention_bias=definition.qkv_bias,
        **specific,
    )


def _rope_scaling(rope: dict[str, Any], unsupported: Any) -> dict[str, Any] | None:
    rope_type = rope.get("rope_type", "default")
    if rope_type == "default":
        return None
    if rope_type == "linear":
        return {"rope_type": "linear", "factor": float(rope["factor"])}
    if rope_type == "llama3":
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        return {"rope_type": "llama3", **{key: rope[key] for key in keys}}
    raise unsupported(f"rope scaling {rope_type!r} (expected default, linear or llama3)")
