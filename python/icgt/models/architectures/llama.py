"""Llama (Llama 2 and 3, SmolLM2, ...): the pre-norm decoder with nothing optional.

llama.cpp's converter permutes the rows of the query and key projections within each head (its rotary
kernel pairs neighbouring features; transformers pairs the two halves): reading a GGUF file undoes it.
"""

from __future__ import annotations

from typing import Any

from .base import CHECKPOINT_PROJECTIONS, GGUF_PROJECTIONS, Architecture

_ROTATED_PROJECTIONS = {"attn.q_proj.weight": "num_heads", "attn.k_proj.weight": "num_kv_heads"}


class Llama(Architecture):
    """Pre-norm blocks (RMSNorm applied as w), SwiGLU MLP, rotary positions, optionally rope-scaled.

    >>> ARCHITECTURE.gguf_tensors["ffn_norm"], ARCHITECTURE.checkpoint_tensors["post_attention_layernorm"]
    ('mlp_norm', 'mlp_norm')
    """

    name = "llama"
    title = "Llama"
    model_types = ("llama",)
    activation = "silu"
    gguf_tensors = {"attn_norm": "attn_norm", "ffn_norm": "mlp_norm", **GGUF_PROJECTIONS}
    checkpoint_tensors = {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm",
                          **CHECKPOINT_PROJECTIONS}
    #: Whether the converter permuted the query and key rows (convert_hf_to_gguf.py's LlamaModel.permute).
    gguf_rows_permuted = True

    def weight_from_gguf(self, name: str, values: Any, config: Any, where: str) -> Any:
        """The query and key projections with their rows in transformers' order again; others as stored.

        >>> import torch
        >>> from icgt.models.scriptable import ModelConfig
        >>> stored = torch.tensor([[0.0], [2.0], [1.0], [3.0]])  # one head of 4 rows, pairs interleaved
        >>> config = ModelConfig.tiny("llama", num_heads=1, num_kv_heads=1, head_dim=4, hidden_size=1)
        >>> ARCHITECTURE.weight_from_gguf("blocks.0.attn.q_proj.weight", stored, config, "q").flatten().tolist()
        [0.0, 1.0, 2.0, 3.0]
        """
        kind = next((kind for suffix, kind in _ROTATED_PROJECTIONS.items() if name.endswith(suffix)), None)
        if kind is None or not self.gguf_rows_permuted:
            return values
        heads = getattr(config, kind)
        expected = (heads * config.head_dim, config.hidden_size)
        if tuple(values.shape) != expected:  # checked here: the rows are regrouped by head first
            raise ValueError(f"{where} has shape {tuple(values.shape)}, expected {expected} from the config")
        return unpermute_rotary_rows(values, heads)


def unpermute_rotary_rows(weight: Any, heads: int) -> Any:
    """Undo convert_hf_to_gguf's permute(): within each head, rows (pairs, halves) back to (halves, pairs).

    >>> import torch
    >>> unpermute_rotary_rows(torch.arange(8.0).view(8, 1), heads=2).flatten().tolist()
    [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
    """
    rows, columns = weight.shape
    return weight.reshape(heads, rows // heads // 2, 2, columns).transpose(1, 2).reshape(rows, columns)


ARCHITECTURE = Llama()
