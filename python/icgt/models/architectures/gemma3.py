"""Gemma 3: Gemma 2's blocks with q/k norms, no attention soft-cap, and a rotary base of its own on the
sliding-window layers (which are never rope-scaled).

Its GGUF files (llama.cpp's gemma3) store every norm weight plus 1, as llama.cpp applies norms as w:
reading one subtracts it again. Multimodal checkpoints (Gemma3ForConditionalGeneration, model_type
gemma3) give their text model.
"""

from __future__ import annotations

from typing import Any

from .base import GGUF_PROJECTIONS, GGUFMetadata
from .gemma2 import Gemma2

# llama.cpp's defaults for keys a GGUF may omit (llama-model.cpp): every 6th layer is global and the
# sliding layers have rotary base 10000.
DEFAULT_SLIDING_PATTERN = 6
DEFAULT_LOCAL_ROPE_THETA = 10000.0
# llama.cpp's rule (llama-model.cpp): only Gemma 3 27B (62 layers) scales queries by hidden/heads.
GEMMA3_27B_LAYERS = 62


class Gemma3(Gemma2):
    """Gemma 2's sandwich blocks plus an RMSNorm over head_dim on queries and keys; read from GGUF too.

    >>> ARCHITECTURE.gguf_tensors["post_ffw_norm"], ARCHITECTURE.checkpoint_tensors["self_attn.q_norm"]
    ('post_mlp_norm', 'attn.q_norm')
    """

    name = "gemma3"
    title = "Gemma 3"
    model_types = ("gemma3_text", "gemma3")
    qk_norm = True
    # transformers' Gemma 3 and llama.cpp both ignore attn_logit_softcapping: honouring it would break parity.
    attention_softcap = False
    gguf_tensors = {
        "attn_norm": "attn_norm",
        "post_attention_norm": "post_attn_norm",
        "ffn_norm": "mlp_norm",
        "post_ffw_norm": "post_mlp_norm",
        "attn_q_norm": "attn.q_norm",
        "attn_k_norm": "attn.k_norm",
        **GGUF_PROJECTIONS,
    }
    checkpoint_tensors = {**Gemma2.checkpoint_tensors, "self_attn.q_norm": "attn.q_norm",
                          "self_attn.k_norm": "attn.k_norm"}
    tiny = {"layer_types": ["sliding", "full"], "sliding_window": 4, "query_pre_attn_scalar": 8.0,
            "local_rope_theta": 10000.0, "rope_theta": 1_000_000.0}

    def gguf_hyperparameters(self, metadata: GGUFMetadata, common: dict[str, Any]) -> dict[str, Any]:
        """Which layers slide and how far, the sliding layers' rotary base, the attention scale's scalar
        and the final soft-cap, with llama.cpp's defaults where the file leaves them out.

        >>> class OnlyTheWindow:  # the metadata of a file that gives the sliding window and nothing else
        ...     def architecture_field(self, key, default=KeyError):
        ...         return 512 if key == "attention.sliding_window" else default
        ...     architecture_int = architecture_float = architecture_field
        >>> common = {"num_layers": 6, "hidden_size": 640, "num_heads": 4, "head_dim": 256}
        >>> read = ARCHITECTURE.gguf_hyperparameters(OnlyTheWindow(), common)
        >>> read["layer_types"], read["local_rope_theta"], read["query_pre_attn_scalar"]
        (['sliding', 'sliding', 'sliding', 'sliding', 'sliding', 'full'], 10000.0, 256.0)
        """
        num_layers = common["num_layers"]
        pattern = metadata.architecture_field("attention.sliding_window_pattern", DEFAULT_SLIDING_PATTERN)
        if isinstance(pattern, list) and all(isinstance(slides, bool) for slides in pattern):
            # one flag per layer, true where the layer slides
            layer_types = ["sliding" if slides else "full" for slides in pattern]
        else:
            pattern = metadata.architecture_int("attention.sliding_window_pattern", DEFAULT_SLIDING_PATTERN)
            layer_types = ["sliding" if (layer + 1) % pattern else "full" for layer in range(num_layers)]
        if num_layers == GEMMA3_27B_LAYERS:
            scalar = common["hidden_size"] // common["num_heads"]
        else:
            scalar = common["head_dim"]
        return {
            "layer_types": layer_types,
            "sliding_window": metadata.architecture_int("attention.sliding_window"),
            "local_rope_theta": metadata.architecture_float("rope.freq_base_swa", DEFAULT_LOCAL_ROPE_THETA),
            "query_pre_attn_scalar": float(scalar),
            "final_logit_softcapping": metadata.architecture_float("final_logit_softcapping", None),
        }

    def weight_from_gguf(self, name: str, values: Any, config: Any, where: str) -> Any:
        """Norm weights less the 1 the converter added; other weights as stored.

        >>> import torch
        >>> ARCHITECTURE.weight_from_gguf("final_norm.weight", torch.tensor([1.0, 1.5]), None, "norm").tolist()
        [0.0, 0.5]
        """
        return values - 1.0 if name.endswith("norm.weight") else values

    def rope_parameters(self, text_config: Any) -> dict[str, Any]:
        """The rope parameters of the full-attention layers (Gemma 3 gives each layer type its own).

        >>> from transformers import Gemma3TextConfig
        >>> ARCHITECTURE.rope_parameters(Gemma3TextConfig())["rope_theta"]
        1000000.0
        """
        return text_config.rope_parameters["full_attention"]

    def transformers_hyperparameters(self, text_config: Any, where: str) -> dict[str, Any]:
        """Gemma 2's, and the sliding layers' rotary base (refused if they are rope-scaled).

        >>> from transformers import Gemma3TextConfig
        >>> ARCHITECTURE.transformers_hyperparameters(Gemma3TextConfig(), "example")["local_rope_theta"]
        10000.0
        """
        local_rope = text_config.rope_parameters["sliding_attention"]
        if local_rope.get("rope_type", "default") != "default":
            raise ValueError(f"{where}: rope scaling {local_rope['rope_type']!r} on sliding-window layers "
                             "is not supported")
        return {**super().transformers_hyperparameters(text_config, where),
                "local_rope_theta": float(local_rope["rope_theta"])}


ARCHITECTURE = Gemma3()
