"""What an architecture module defines: an ``Architecture`` whose options and hooks the readers and the
scriptable model ask, instead of testing architecture names.

The defaults describe a pre-norm decoder with nothing optional (no biases, no soft-caps, no q/k norm,
norms applied as w, an unscaled embedding); a subclass sets what its architecture has. This module
imports nothing of icgt, so that ``ModelConfig`` can check a config against its architecture.
"""

from __future__ import annotations

from typing import Any, Protocol

#: The projections of every supported architecture, by llama.cpp's GGUF name (blk.N.<name>.weight).
GGUF_PROJECTIONS = {
    "attn_q": "attn.q_proj",
    "attn_k": "attn.k_proj",
    "attn_v": "attn.v_proj",
    "attn_output": "attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
#: The same projections by transformers' name (model.layers.N.<name>.weight).
CHECKPOINT_PROJECTIONS = {
    "self_attn.q_proj": "attn.q_proj",
    "self_attn.k_proj": "attn.k_proj",
    "self_attn.v_proj": "attn.v_proj",
    "self_attn.o_proj": "attn.o_proj",
    "mlp.gate_proj": "mlp.gate_proj",
    "mlp.up_proj": "mlp.up_proj",
    "mlp.down_proj": "mlp.down_proj",
}
#: icgt's names of the query, key and value projections: the only ones that may have a bias.
QKV_PROJECTIONS = ("attn.q_proj", "attn.k_proj", "attn.v_proj")


class GGUFMetadata(Protocol):
    """The checked reads of a GGUF file's ``<architecture>.<key>`` metadata (GGUFFile has them)."""

    def architecture_field(self, key: str, default: Any = KeyError) -> Any:
        """The value of ``key``, or ``default`` when it is absent (no default: an error naming the key)."""

    def architecture_int(self, key: str, default: Any = KeyError, minimum: int = 1) -> int:
        """``key`` as an integer >= ``minimum``, or ``default`` when it is absent."""

    def architecture_float(self, key: str, default: Any = KeyError) -> Any:
        """``key`` as a positive finite number, or ``default`` when it is absent."""


class Architecture:
    """One decoder architecture: its names, its block options, its tensor names and its readers' hooks.

    >>> from icgt.models.architectures import find_architecture
    >>> gemma3 = find_architecture("gemma3")
    >>> gemma3.title, gemma3.post_norms, gemma3.qk_norm, gemma3.checkpoint_tensors["pre_feedforward_layernorm"]
    ('Gemma 3', True, True, 'mlp_norm')
    """

    #: icgt's name, as ModelConfig.architecture and every bundle's config.json record it; a GGUF file's
    #: general.architecture where GGUF files are read.
    name: str = ""
    #: The name people write, for messages.
    title: str = ""
    #: transformers' model_type values of the checkpoints whose (text) model this architecture reads.
    model_types: tuple[str, ...] = ()
    #: The MLP's activation ("silu" or "gelu_tanh"): GGUF files do not record it, checkpoint configs do.
    activation: str = "silu"

    #: Norm weights stored zero-centred and applied as (1 + w) (Gemma), rather than as w.
    zero_centred_norms: bool = False
    #: A second norm after each sub-layer, before it joins the residual (Gemma's sandwich).
    post_norms: bool = False
    #: Token embeddings multiplied by sqrt(hidden_size), rounded in the model dtype (Gemma).
    scaled_embedding: bool = False
    #: An RMSNorm over head_dim on queries and keys before the rotation (Gemma 3).
    qk_norm: bool = False
    #: Biases on the query, key and value projections, never on the others (Qwen2).
    qkv_bias: bool = False
    #: Whether a config may soft-cap the attention logits (attn_logit_softcapping).
    attention_softcap: bool = False
    #: Whether a config may soft-cap the output logits (final_logit_softcapping).
    final_softcap: bool = False

    #: icgt's name (under blocks.N.) of each block tensor, by llama.cpp's GGUF name; None: GGUF files of
    #: this architecture are not read.
    gguf_tensors: dict[str, str] | None = None
    #: icgt's name (under blocks.N.) of each layer tensor, by transformers' name (under layers.N.).
    checkpoint_tensors: dict[str, str] = {}
    #: The hyper-parameters of its 2-layer toy configuration (ModelConfig.tiny) that differ from Llama's.
    tiny: dict[str, Any] = {}

    def gguf_hyperparameters(self, metadata: GGUFMetadata, common: dict[str, Any]) -> dict[str, Any]:
        """The ModelConfig fields of a GGUF file that are this architecture's own, read from ``metadata``;
        ``common`` holds those every GGUF file has (num_layers, hidden_size, num_heads, head_dim, ...).

        >>> Architecture().gguf_hyperparameters(gguf_file, {"num_layers": 30})  # nothing of its own
        {}
        """
        return {}

    def weight_from_gguf(self, name: str, values: Any, config: Any, where: str) -> Any:
        """The weight of icgt's parameter ``name`` from a GGUF tensor's ``values``, undoing what llama.cpp's
        converter did to it; ``config`` is the file's ModelConfig, ``where`` names the tensor for errors.

        >>> Architecture().weight_from_gguf("embed.weight", [1.0, 2.0], None, "token_embd.weight")  # as stored
        [1.0, 2.0]
        """
        return values

    def rope_parameters(self, text_config: Any) -> dict[str, Any]:
        """transformers' rope parameters of the full-attention layers of ``text_config`` (all its layers here).

        >>> from transformers import LlamaConfig
        >>> Architecture().rope_parameters(LlamaConfig(rope_theta=500000.0))["rope_theta"]
        500000.0
        """
        return text_config.rope_parameters

    def transformers_hyperparameters(self, text_config: Any, where: str) -> dict[str, Any]:
        """The ModelConfig fields of a transformers (text) config that are this architecture's own; ``where``
        names the config for errors.

        >>> from transformers import LlamaConfig
        >>> Architecture().transformers_hyperparameters(LlamaConfig(), "example")
        {}
        """
        return {}

    def __repr__(self) -> str:
        return f"<architecture {self.name}>"
