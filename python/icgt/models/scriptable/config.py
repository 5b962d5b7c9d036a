"""The hyper-parameters of a decoder-only model, as read from a checkpoint's metadata."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..architectures import find_architecture

LAYER_TYPES = ("full", "sliding")
ROPE_TYPES = ("default", "linear", "llama3", "freq_factors")
ACTIVATIONS = ("silu", "gelu_tanh")


@dataclass
class ModelConfig:
    """Every hyper-parameter icgt's decoder needs; nothing has a hidden default.

    ``architecture`` names one of icgt.models.architectures, which decides the blocks' options and
    which of the optional hyper-parameters below a config may set.
    ``rope_scaling`` applies to the full-attention layers (all layers of a Llama); it is None or a
    dict with ``rope_type`` one of "linear" (``factor``), "llama3" (``factor``, ``low_freq_factor``,
    ``high_freq_factor``, ``original_max_position_embeddings``) or "freq_factors" (``factors``: one
    divisor per rotary frequency, as llama.cpp stores Llama 3.1 scaling in GGUF). ``local_rope_theta``
    is the rotary base of Gemma 3's sliding-window layers (None elsewhere). ``query_pre_attn_scalar``
    sets the attention scale 1/sqrt(query_pre_attn_scalar) (Llama: head_dim). ``attention_bias`` adds
    biases to the query, key and value projections (not the output projection): it is True exactly
    for the architectures that have them (Qwen2).

    >>> config = ModelConfig.tiny("llama")
    >>> config.num_layers, config.attention_scale == config.head_dim ** -0.5
    (2, True)
    """

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    hidden_activation: str
    tie_word_embeddings: bool
    bos_token_id: int
    max_position_embeddings: int
    layer_types: list[str] = field(default_factory=list)
    rope_scaling: dict[str, Any] | None = None
    local_rope_theta: float | None = None
    sliding_window: int | None = None
    query_pre_attn_scalar: float | None = None
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None
    attention_bias: bool = False

    def __post_init__(self) -> None:
        if not self.layer_types:
            self.layer_types = ["full"] * self.num_layers
        self.validate()

    @property
    def attention_scale(self) -> float:
        """The factor on q.k before the softmax.

        >>> ModelConfig.tiny("gemma2", query_pre_attn_scalar=16.0).attention_scale
        0.25
        """
        return (self.query_pre_attn_scalar or self.head_dim) ** -0.5

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent hyper-parameter (run on construction).

        >>> ModelConfig.tiny("llama", num_kv_heads=3)
        Traceback (most recent call last):
        ValueError: ModelConfig: num_heads (4) must be a multiple of num_kv_heads (3)
        """

        def fail(what: str) -> None:
            raise ValueError(f"ModelConfig: {what}")

        try:
            architecture = find_architecture(self.architecture)
        except ValueError as error:
            raise ValueError(f"ModelConfig: {error}") from None
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                     "num_kv_heads", "head_dim"):
            if getattr(self, name) <= 0:
                fail(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_heads % self.num_kv_heads:
            fail(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        if self.query_pre_attn_scalar is not None and not self.query_pre_attn_scalar > 0:
            fail(f"query_pre_attn_scalar must be positive, got {self.query_pre_attn_scalar}")
        if self.head_dim % 2:
            fail(f"head_dim must be even for rotary embeddings, got {self.head_dim}")
        if self.hidden_activation not in ACTIVATIONS:
            fail(f"hidden_activation {self.hidden_activation!r} is not supported; expected one of {ACTIVATIONS}")
        if len(self.layer_types) != self.num_layers or not set(self.layer_types) <= set(LAYER_TYPES):
            fail(f"layer_types must list {self.num_layers} entries from {LAYER_TYPES}, got {self.layer_types}")
        if "sliding" in self.layer_types and not (self.sliding_window and self.sliding_window > 0):
            fail(f"sliding layers need a positive sliding_window, got {self.sliding_window}")
        if self.rope_scaling is not None:
            rope_type = self.rope_scaling.get("rope_type")
            if rope_type not in ROPE_TYPES:
                fail(f"rope_scaling type {rope_type!r} is not supported; expected one of {ROPE_TYPES}")
            if rope_type == "freq_factors" and len(self.rope_scaling["factors"]) != self.head_dim // 2:
                fail(f"rope freq_factors must have head_dim/2 = {self.head_dim // 2} entries, "
                     f"got {len(self.rope_scaling['factors'])}")
        if not isinstance(self.attention_bias, bool):
            fail(f"attention_bias must be a bool, got {self.attention_bias!r}")
        if self.attention_bias != architecture.qkv_bias:
            # The attention_bias options of transformers' Llama and Gemma would also bias the output
            # projection, which icgt does not implement.
            fail(f"attention_bias must be {architecture.qkv_bias} for architecture {self.architecture!r} "
                 f"({architecture.title} {'always has' if architecture.qkv_bias else 'has no'} q/k/v biases)")
        if self.attn_logit_softcapping and not architecture.attention_softcap:
            fail(f"{architecture.title} has no attention-logit soft-capping; attn_logit_softcapping must be None")
        if self.final_logit_softcapping and not architecture.final_softcap:
            fail(f"{architecture.title} has no final-logit soft-capping; final_logit_softcapping must be None")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``ModelConfig(**d)`` rebuilds the config.

        >>> config = ModelConfig.tiny("gemma3")
        >>> ModelConfig(**config.to_dict()) == config
        True
        """
        return dataclasses.asdict(self)

    @classmethod
    def tiny(cls, architecture: str, **overrides: Any) -> ModelConfig:
        """A 2-layer toy configuration of ``architecture`` for tests and examples.

        >>> ModelConfig.tiny("gemma3").layer_types
        ['sliding', 'full']
        >>> ModelConfig.tiny("qwen2").attention_bias
        True
        """
        definition = find_architecture(architecture)
        base: dict[str, Any] = dict(
            architecture=architecture, vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2,
            num_heads=4, num_kv_heads=2, head_dim=8, rms_norm_eps=1e-6, rope_theta=10000.0,
            hidden_activation=definition.activation, tie_word_embeddings=True, bos_token_id=1,
            max_position_embeddings=128, attention_bias=definition.qkv_bias,
        )
        base.update(definition.tiny)
        base.update(overrides)
        return cls(**base)


def rope_inverse_frequencies(head_dim: int, theta: float, scaling: dict[str, Any] | None):
    """The rotary inverse frequencies (float32, head_dim/2 entries) exactly as transformers computes them.

    >>> rope_inverse_frequencies(4, 10000.0, None).tolist()
    [1.0, 0.009999999776482582]
    """
    import torch

    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rope_type = "default" if scaling is None else scaling["rope_type"]
    if rope_type == "linear":
        return inv_freq / scaling["factor"]
    if rope_type == "freq_factors":
        return inv_freq / torch.tensor(scaling["factors"], dtype=torch.float32)
    if rope_type == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_context = scaling["original_max_position_embeddings"]
        wavelength = 2 * math.pi / inv_freq
        # Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
        scaled = torch.where(wavelength > old_context / low, inv_freq / factor, inv_freq)
        smooth = (old_context / wavelength - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_medium = ~(wavelength < old_context / high) * ~(wavelength > old_context / low)
        return torch.where(is_medium, smoothed, scaled)
    return inv_freq
