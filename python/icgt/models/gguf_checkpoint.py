"""Reading a GGUF file (llama.cpp's format) into icgt's ModelConfig and weight names.

Supported architectures: ``llama`` (Llama 2/3, SmolLM2, ...), ``qwen2`` (Qwen2, Qwen2.5) and
``gemma3``. Two things the llama.cpp converter did to the weights are undone here: it permuted the
rows of Llama's query and key projections (for its interleaved rotary layout; it leaves Qwen2's
alone, as llama.cpp runs Qwen2 with the half-split layout transformers uses) and it added 1 to every
Gemma norm weight. Qwen2's query, key and value biases (``blk.N.attn_q.bias`` ...) load as they are.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .scriptable import ModelConfig

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

    >>> gguf_file = GGUFFile(icgt.models.bundles.builtin_source("smollm2-135m").path)
    >>> gguf_file.config.num_layers, gguf_file.config.tie_word_embeddings
    (30, True)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {self.path}")
        try:
            self.reader = _strict_reader_class()(self.path)
        except Exception as error:
            raise ValueError(f"{self.path} is not a readable GGUF file: {_shown(error, 200)}") from error
        self.architecture = self.field("general.architecture")
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(f"{self.path}: GGUF architecture {_shown(self.architecture)} is not supported; "
                             f"expected one of {SUPPORTED_ARCHITECTURES}")
        self.tensors = {tensor.name: tensor for tensor in self.reader.tensors}
        if "token_embd.weight" not in self.tensors:
            raise ValueError(f"{self.path}: the GGUF file has no token_embd.weight tensor")
        if len(self.tensors["token_embd.weight"].shape) != 2:
            raise ValueError(f"{self.path}: token_embd.weight has shape {self._shape(self.tensors['token_embd.weight'])}; "
                             "expected (vocabulary, hidden size)")
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
        try:
            return field.contents()
        except UnicodeDecodeError:
            raise ValueError(f"{self.path}: GGUF metadata {key!r} is not UTF-8 text") from None

    def _arch_field(self, key: str, default: Any = KeyError) -> Any:
        return self.field(f"{self.architecture}.{key}", default)

    def _arch_int(self, key: str, default: Any = KeyError, minimum: int = 1) -> int:
        """An integer hyper-parameter from the file, refused unless it is an integer >= minimum (a
        damaged or hand-made file could hold a string, a float or 0 there); ``default`` if absent."""
        if default is not KeyError and self.reader.get_field(f"{self.architecture}.{key}") is None:
            return default
        value = self._arch_field(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture}.{key} must be an integer >= {minimum}, "
                             f"got {_shown(value)}")
        return value

    def _arch_float(self, key: str, default: Any = KeyError) -> Any:
        """A positive finite number (None stays None where that is the default)."""
        value = self._arch_field(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture}.{key} must be a positive finite "
                             f"number, got {_shown(value)}")
        return float(value)

    def _config(self) -> ModelConfig:
        hidden = self._arch_int("embedding_length")
        heads = self._arch_int("attention.head_count")
        num_layers = self._arch_int("block_count")
        head_dim = self._arch_int("attention.key_length", hidden // heads)
        rope_dims = self._arch_int("rope.dimension_count", head_dim)
        # Checked against the tensors before any list or model is sized by them: a damaged count
        # would otherwise ask for billions of layers.
        blocks = {name.split(".")[1] for name in self.tensors if name.startswith("blk.") and name.count(".") >= 2}
        if num_layers != len(blocks):
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture}.block_count is {num_layers}, but the "
                             f"file holds the tensors of {len(blocks)} blocks")
        embedding = self._shape(self.tensors["token_embd.weight"])
        if embedding[1] != hidden:
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture}.embedding_length is {hidden}, but "
                             f"token_embd.weight has shape {embedding}")
        if rope_dims != head_dim:
            raise ValueError(f"{self.path}: partial rotary embeddings (rope.dimension_count {rope_dims} < "
                             f"head_dim {head_dim}) are not supported")
        bos_token_id = self.field("tokenizer.ggml.bos_token_id")
        if isinstance(bos_token_id, bool) or not isinstance(bos_token_id, int) or bos_token_id < 0:
            raise ValueError(f"{self.path}: GGUF metadata tokenizer.ggml.bos_token_id must be a token id, "
                             f"got {_shown(bos_token_id)}")
        common: dict[str, Any] = dict(
            architecture=self.architecture,
            vocab_size=int(self.tensors["token_embd.weight"].shape[-1]),
            hidden_size=hidden,
            intermediate_size=self._arch_int("feed_forward_length"),
            num_layers=num_layers,
            num_heads=heads,
            num_kv_heads=self._arch_int("attention.head_count_kv", heads),
            head_dim=head_dim,
            rms_norm_eps=self._arch_float("attention.layer_norm_rms_epsilon"),
            rope_theta=self._arch_float("rope.freq_base", 10000.0),
            tie_word_embeddings="output.weight" not in self.tensors,
            bos_token_id=bos_token_id,
            max_position_embeddings=self._arch_int("context_length"),
            rope_scaling=self._rope_scaling(head_dim),
        )
        if self.architecture in ("llama", "qwen2"):
            return ModelConfig(hidden_activation="silu", attention_bias=self.architecture == "qwen2", **common)
        pattern = self._arch_field("attention.sliding_window_pattern", GEMMA3_DEFAULT_SLIDING_PATTERN)
        if isinstance(pattern, list) and all(isinstance(slides, bool) for slides in pattern):
            # one flag per layer, true where the layer slides
            layer_types = ["sliding" if slides else "full" for slides in pattern]
        else:
            pattern = self._arch_int("attention.sliding_window_pattern", GEMMA3_DEFAULT_SLIDING_PATTERN)
            layer_types = ["sliding" if (layer + 1) % pattern else "full" for layer in range(num_layers)]
        # llama.cpp's rule (llama-model.cpp): only Gemma 3 27B scales by hidden/heads instead of head_dim.
        scalar = hidden // heads if num_layers == GEMMA3_27B_LAYERS else head_dim
        return ModelConfig(
            hidden_activation="gelu_tanh",
            layer_types=layer_types,
            sliding_window=self._arch_int("attention.sliding_window"),
            local_rope_theta=self._arch_float("rope.freq_base_swa", GEMMA3_DEFAULT_LOCAL_ROPE_THETA),
            query_pre_attn_scalar=float(scalar),
            final_logit_softcapping=self._arch_float("final_logit_softcapping", None),
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
            return {"rope_type": "linear", "factor": self._arch_float("rope.scaling.factor")}
        raise ValueError(f"{self.path}: rope scaling {_shown(scaling_type)} is not supported; expected none or linear")

    @staticmethod
    def _shape(tensor: Any) -> tuple[int, ...]:
        return tuple(reversed(tensor.shape.tolist()))

    def _dequantized(self, tensor: Any) -> np.ndarray:
        import gguf

        try:
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            # A copy: F32 tensors are read-only views of the memory-mapped file.
            return np.array(values, dtype=np.float32).reshape(self._shape(tensor))
        except (NotImplementedError, ValueError) as error:  # a type gguf cannot dequantise, a shape that does not fit
            raise ValueError(f"{self.path}: tensor {tensor.name!r} ({tensor.tensor_type.name}, shape "
                             f"{self._shape(tensor)}) cannot be read as numbers: {_shown(error, 120)}") from None

    def icgt_name(self, gguf_name: str) -> str | None:
        """icgt's state-dict name of GGUF tensor ``gguf_name``; None for tensors icgt does not load.

        >>> gguf_file.icgt_name("blk.3.ffn_norm.weight"), gguf_file.icgt_name("blk.0.attn_q.bias")
        ('blocks.3.mlp_norm.weight', 'blocks.0.attn.q_proj.bias')
        """
        if gguf_name == "rope_freqs.weight":
            return None
        stem, _, suffix = gguf_name.rpartition(".")
        parts = stem.split(".")
        if len(parts) == 1 and parts[0] in _TOP_TENSORS:
            return f"{_TOP_TENSORS[parts[0]]}.{suffix}"
        if len(parts) == 3 and parts[0] == "blk" and parts[2] in _BLOCK_TENSORS:
            return f"blocks.{parts[1]}.{_BLOCK_TENSORS[parts[2]]}.{suffix}"
        raise ValueError(f"{self.path}: unexpected tensor {_shown(gguf_name)} for architecture {self.architecture}")

    def weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(icgt name, float32 tensor) for every weight, dequantised, in file order.

        >>> name, tensor = next(GGUFFile(icgt.models.bundles.builtin_source("smollm2-135m").path).weights())
        >>> name, tuple(tensor.shape), tensor.dtype
        ('embed.weight', (49152, 576), torch.float32)
        """
        config = self.config
        for gguf_name, tensor in self.tensors.items():
            name = self.icgt_name(gguf_name)
            if name is None:
                continue
            values = torch.from_numpy(self._dequantized(tensor))
            if config.architecture == "llama" and name.endswith(("attn.q_proj.weight", "attn.k_proj.weight")):
                heads = config.num_heads if name.endswith("attn.q_proj.weight") else config.num_kv_heads
                expected = (heads * config.head_dim, config.hidden_size)
                if tuple(values.shape) != expected:  # checked here: the rows are regrouped by head first
                    raise ValueError(f"{self.path}: tensor {gguf_name!r} has shape {tuple(values.shape)}, "
                                     f"expected {expected} from the config")
                values = _unpermute_rotary_rows(values, heads)
            elif config.is_gemma and name.endswith("norm.weight"):
                values = values - 1.0  # the converter stored 1 + w
            yield name, values


def _shown(value: Any, limit: int = 60) -> str:
    """repr() of a value read from a file, on one line and cut to ``limit`` characters."""
    text = (str(value) if isinstance(value, BaseException) else repr(value)).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.lru_cache(maxsize=None)
def _strict_reader_class() -> type:
    """gguf's GGUFReader, refusing every read that runs past the end of the file.

    gguf's own reader returns a short (empty) array there, and walks an array of numbers element by
    element: a damaged count of 2**60 elements past the end of the file is then a hang, not an error.
    """
    import gguf

    class StrictGGUFReader(gguf.GGUFReader):
        def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> np.ndarray:
            end = int(offset) + np.dtype(dtype).itemsize * int(count)
            if end > len(self.data):
                raise ValueError(f"truncated or damaged: a read of {int(count)} value(s) at byte {int(offset)} runs "
                                 f"past the end of the file ({len(self.data)} bytes)")
            return super()._get(offset, dtype, count, override_order)

    return StrictGGUFReader


def _unpermute_rotary_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Undo convert_hf_to_gguf's permute(): within each head, rows (pairs, halves) back to (halves, pairs)."""
    rows, columns = weight.shape
    return weight.reshape(heads, rows // heads // 2, 2, columns).transpose(1, 2).reshape(rows, columns)
