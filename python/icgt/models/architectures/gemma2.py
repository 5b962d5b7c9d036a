"""Gemma 2: sandwich-normed blocks, (1 + w) norms, a scaled embedding and soft-capped logits.

Attention soft-capping rules out the fused attention kernel, so its layers compute the softmax
explicitly (docs/architecture.md). Its GGUF files are not read.
"""

from __future__ import annotations

from typing import Any

from .base import CHECKPOINT_PROJECTIONS, Architecture


class Gemma2(Architecture):
    """Each sub-layer between a pre-norm and a post-norm; GeGLU MLP; local and global layers alternate.

    >>> ARCHITECTURE.checkpoint_tensors["post_attention_layernorm"], ARCHITECTURE.attention_softcap
    ('post_attn_norm', True)
    """

    name = "gemma2"
    title = "Gemma 2"
    model_types = ("gemma2",)
    activation = "gelu_tanh"
    zero_centred_norms = True
    post_norms = True
    scaled_embedding = True
    attention_softcap = True
    final_softcap = True
    checkpoint_tensors = {
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "post_attn_norm",
        "pre_feedforward_layernorm": "mlp_norm",
        "post_feedforward_layernorm": "post_mlp_norm",
        **CHECKPOINT_PROJECTIONS,
    }
    tiny = {"layer_types": ["sliding", "full"], "sliding_window": 4, "query_pre_attn_scalar": 8.0,
            "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}

    def transformers_hyperparameters(self, text_config: Any, where: str) -> dict[str, Any]:
        """The attention scale's scalar and the soft-caps (the attention's only where the architecture has it).

        >>> from transformers import Gemma2Config
        >>> ARCHITECTURE.transformers_hyperparameters(Gemma2Config(attn_logit_softcapping=40.0), "example")
        {'query_pre_attn_scalar': 256, 'attn_logit_softcapping': 40.0, 'final_logit_softcapping': 30.0}
        """
        return {
            "query_pre_attn_scalar": text_config.query_pre_attn_scalar,
            # transformers' Gemma 3 ignores attn_logit_softcapping; so does icgt (Gemma3.attention_softcap).
            "attn_logit_softcapping": text_config.attn_logit_softcapping if self.attention_softcap else None,
            "final_logit_softcapping": text_config.final_logit_softcapping,
        }


ARCHITECTURE = Gemma2()
