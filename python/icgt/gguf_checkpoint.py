"""Reading a GGUF file (llama.cpp's format) into icgt's ModelConfig and weight names.

Supported architectures: ``llama`` (Llama 2/3, SmolLM2, ...), ``qwen2`` (Qwen2, Qwen2.5) and
``gemma3``. Two things the llama.cpp converter did to the weights are undone here: it permuted the
rows of Llama's query and key projections (for its interleaved rotary layout; it leaves Qwen2's
alone, as llama.cpp runs Qwen2 with the half-split layout transformers uses) and it added 1 to every
Gemma norm weight. Qwen2's query, key and value biases (``blk.N.attn_q.bias`` ...) load as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .models import ModelConfig

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "gemma3")

# llama.cpp defaults for keys a GGUF may omit (llama-model.cpp): Gemma 3 makes every 6th layer
# global and gives its sliding layers rotary base 10000.
GEMMA3_DEFAULT_SLIDING_PATTERN = 6
GEMMA3_DEFAULT_LOCAL_ROPE_THETA = 10000.0
GEMMA3_27B_LAYERS = 62

_BLOCK_TENSORS = {
    "attn_norm": "attn_norm",
    "attn_q": "attn.q_proj",
    "attn_k": "attn.k_proj",
    "attn_v": "attn.v_proj",
    "attn_output": "attn.o_proj",
    "ffn_norm": "mlp_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_attention_norm": "post_attn_norm",
    "post_ffw_norm": "post_mlp_norm",
    "attn_q_norm": "attn.q_norm",
    "attn_k_norm": "attn.k_norm",
}
_TOP_TENSORS = {"token_embd": "embed", "output_norm": "final_norm", "output": "head"}


class GGUFFile:
    """An open GGUF file: its metadata, its icgt ModelConfig and its weights under icgt's names.

    >>> gguf_file = GGUFFile(icgt.bundles.builtin_source("smollm2-135m").path)
    >>> gguf_file.config.num_layers, gguf_file.config.tie_word_embeddings
    (30, True)
    """

    def __init__(self, path: str | Path) -> None:
        import gguf

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {self.path}")
        try:
            self.reader = gguf.GGUFReader(self.path)
        except Exception as error:
            raise ValueError(f"{self.path} is not a readable GGUF file: {error}") from error
        self.architecture = self.field("general.architecture")
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(f"{self.path}: GGUF architecture {self.architecture!r} is not supported; "
                             f"expected one of {SUPPORTED_ARCHITECTURES}")
        self.tensors = {tensor.name: tensor for tensor in self.reader.tensors}
        if "token_embd.weight" not in self.tensors:
            raise ValueError(f"{self.path}: the GGUF file has no token_embd.weight tensor")
        self.config = self._config()

    def field(self, key: str, default: Any = KeyError) -> Any:
        """The value of metadata ``key``; ``default`` when it is absent, else ValueError naming the key.

        >>> gguf_file.field("llama.rope.freq_base")
        100000.0
        """
        field = self.reader.get_field(key)
        if field is None:
            if default is KeyError:
                raise ValueError(f"{self.path}: GGUF metadata lacks the required key {key!r}")
            return default
        return field.contents()

    def _arch_field(self, key: str, default: Any = KeyError) -> Any:
        return self.field(f"{self.architecture}.{key}", default)

    def _config(self) -> ModelConfig:
        hidden = self._arch_field("embedding_length")
        heads = self._arch_field("attention.head_count")
        num_layers = self._arch_field("block_count")
        head_dim = self._arch_field("attention.key_length", hidden // heads)
        rope_dims = self._arch_field("rope.dimension_count", head_dim)
        if rope_dims != head_dim:
            raise ValueError(f"{self.path}: partial rotary embeddings (rope.dimension_count {rope_dims} < "
                             f"head_dim {head_dim}) are not supported")
        common: dict[str, Any] = dict(
            architecture=self.architecture,
            vocab_size=int(self.tensors["token_embd.weight"].shape[-1]),
            hidden_size=hidden,
            intermediate_size=self._arch_field("feed_forward_length"),
            num_layers=num_layers,
            num_heads=heads,
            num_kv_heads=self._arch_field("attention.head_count_kv", heads),
            head_dim=head_dim,
            rms_norm_eps=self._arch_field("attention.layer_norm_rms_epsilon"),
            rope_theta=self._arch_field("rope.freq_base", 10000.0),
            tie_word_embeddings="output.weight" not in self.tensors,
            bos_token_id=self.field("tokenizer.ggml.bos_token_id"),
            max_position_embeddings=self._arch_field("context_length"),
            rope_scaling=self._rope_scaling(head_dim),
        )
        if self.architecture in ("llama", "qwen2"):
            return ModelConfig(hidden_activation="silu", attention_bias=self.architecture == "qwen2", **common)
        pattern = self._arch_field("attention.sliding_window_pattern", GEMMA3_DEFAULT_SLIDING_PATTERN)
        if isinstance(pattern, list):  # one flag per layer, true where the layer slides
            layer_types = ["sliding" if slides else "full" for slides in pattern]
        else:
            layer_types = ["sliding" if (layer + 1) % pattern else "full" for layer in range(num_layers)]
        # llama.cpp's rule (llama-model.cpp): only Gemma 3 27B scales by hidden/heads instead of head_dim.
        scalar = hidden // heads if num_layers == GEMMA3_27B_LAYERS else head_dim
        return ModelConfig(
            hidden_activation="gelu_tanh",
            layer_types=layer_types,
            sliding_window=self._arch_field("attention.sliding_window"),
            local_rope_theta=self._arch_field("rope.freq_base_swa", GEMMA3_DEFAULT_LOCAL_ROPE_THETA),
            query_pre_attn_scalar=float(scalar),
            final_logit_softcapping=self._arch_field("final_logit_softcapping", None),
            **common,
        )

    def _rope_scaling(self, head_dim: int) -> dict[str, Any] | None:
        if "rope_freqs.weight" in self.tensors:
            # llama.cpp stores Llama 3.1 scaling as one divisor per rotary frequency.
            factors = self._dequantized(self.tensors["rope_freqs.weight"]).reshape(-1)
            return {"rope_type": "freq_factors", "factors": [float(f) for f in factors]}
        scaling_type = self._arch_field("rope.scaling.type", "none")
        if scaling_type == "none":
            return None
        if scaling_type == "linear":
            return {"rope_type": "linear", "factor": float(self._arch_field("rope.scaling.factor"))}
        raise ValueError(f"{self.path}: rope scaling {scaling_type!r} is not supported; expected none or linear")

    def _dequantized(self, tensor: Any) -> np.ndarray:
        import gguf

        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        # A copy: F32 tensors are read-only views of the memory-mapped file.
        return np.array(values, dtype=np.float32).reshape(tuple(reversed(tensor.shape.tolist())))

    def icgt_name(self, gguf_name: str) -> str | None:
        """icgt's state-dict name of GGUF tensor ``gguf_name``; None for tensors icgt does not load.

        >>> gguf_file.icgt_name("blk.3.ffn_norm.weight"), gguf_file.icgt_name("blk.0.attn_q.bias")
        ('blocks.3.mlp_norm.weight', 'blocks.0.attn.q_proj.bias')
        """
        if gguf_name == "rope_freqs.weight":
            return None
        stem, suffix = gguf_name.rsplit(".", 1)
        parts = stem.split(".")
        if len(parts) == 1 and parts[0] in _TOP_TENSORS:
            return f"{_TOP_TENSORS[parts[0]]}.{suffix}"
        if len(parts) == 3 and parts[0] == "blk" and parts[2] in _BLOCK_TENSORS:
            return f"blocks.{parts[1]}.{_BLOCK_TENSORS[parts[2]]}.{suffix}"
        raise ValueError(f"{self.path}: unexpected tensor {gguf_name!r} for architecture {self.architecture}")

    def weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(icgt name, float32 tensor) for every weight, dequantised, in file order.

        >>> name, tensor = next(GGUFFile(icgt.bundles.builtin_source("smollm2-135m").path).weights())
        >>> name, tuple(tensor.shape), tensor.dtype
        ('embed.weight', (49152, 576), torch.float32)
        """
        config = self.config
        for gguf_name, tensor in self.tensors.items():
            name = self.icgt_name(gguf_name)
            if name is None:
                continue
            values = torch.from_numpy(self._dequantized(tensor))
            if config.architecture == "llama" and name.endswith("attn.q_proj.weight"):
                values = _unpermute_rotary_rows(values, config.num_heads)
            elif config.architecture == "llama" and name.endswith("attn.k_proj.weight"):
                values = _unpermute_rotary_rows(values, config.num_kv_heads)
            elif config.is_gemma and name.endswith("norm.weight"):
                values = values - 1.0  # the converter stored 1 + w
            yield name, values


def _unpermute_rotary_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Undo convert_hf_to_gguf's permute(): within each head, rows (pairs, halves) back to (halves, pairs)."""
    rows, columns = weight.shape
    return weight.reshape(heads, rows // heads // 2, 2, columns).transpose(1, 2).reshape(rows, columns)
