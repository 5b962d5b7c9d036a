"""Reading a GGUF file (llama.cpp's format) into icgt's ModelConfig and weight names.

This module reads what every GGUF file has (llama.cpp's common metadata keys, the embedding, output and
rotary tensors); the file's architecture (icgt.models.architectures, those with GGUF tensor names:
``llama``, ``qwen2``, ``gemma3``) adds its own hyper-parameters, names its block tensors and undoes
what llama.cpp's converter did to them (Llama's permuted query and key rows, Gemma's norms plus 1).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .architectures import gguf_architecture
from .scriptable import ModelConfig

_TOP_TENSORS = {"token_embd": "embed", "output_norm": "final_norm", "output": "head"}


class GGUFFile:
    """An open GGUF file: its metadata, its architecture, its icgt ModelConfig and its weights under icgt's names.

    >>> gguf_file = GGUFFile(icgt.models.bundles.builtin_source("smollm2-135m").path)
    >>> gguf_file.architecture.title, gguf_file.config.num_layers, gguf_file.config.tie_word_embeddings
    ('Llama', 30, True)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {self.path}")
        try:
            self.reader = _strict_reader_class()(self.path)
        except Exception as error:
            raise ValueError(f"{self.path} is not a readable GGUF file: {_shown(error, 200)}") from error
        general_architecture = self.field("general.architecture")
        try:
            self.architecture = gguf_architecture(general_architecture)
        except ValueError as error:
            raise ValueError(f"{self.path}: {error}") from None
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

    def architecture_field(self, key: str, default: Any = KeyError) -> Any:
        """The value of metadata ``<architecture>.key``, as ``field`` reads it.

        >>> gguf_file.architecture_field("context_length")
        8192
        """
        return self.field(f"{self.architecture.name}.{key}", default)

    def architecture_int(self, key: str, default: Any = KeyError, minimum: int = 1) -> int:
        """An integer hyper-parameter ``<architecture>.key``, refused unless it is an integer >= minimum (a
        damaged or hand-made file could hold a string, a float or 0 there); ``default`` if absent.

        >>> gguf_file.architecture_int("block_count"), gguf_file.architecture_int("no_such_key", 0)
        (30, 0)
        """
        if default is not KeyError and self.reader.get_field(f"{self.architecture.name}.{key}") is None:
            return default
        value = self.architecture_field(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture.name}.{key} must be an integer "
                             f">= {minimum}, got {_shown(value)}")
        return value

    def architecture_float(self, key: str, default: Any = KeyError) -> Any:
        """A positive finite number ``<architecture>.key`` (None stays None where that is the default).

        >>> gguf_file.architecture_float("attention.layer_norm_rms_epsilon") > 0
        True
        """
        value = self.architecture_field(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture.name}.{key} must be a positive finite "
                             f"number, got {_shown(value)}")
        return float(value)

    def _config(self) -> ModelConfig:
        hidden = self.architecture_int("embedding_length")
        heads = self.architecture_int("attention.head_count")
        num_layers = self.architecture_int("block_count")
        head_dim = self.architecture_int("attention.key_length", hidden // heads)
        rope_dims = self.architecture_int("rope.dimension_count", head_dim)
        # Checked against the tensors before any list or model is sized by them: a damaged count
        # would otherwise ask for billions of layers.
        blocks = {name.split(".")[1] for name in self.tensors if name.startswith("blk.") and name.count(".") >= 2}
        if num_layers != len(blocks):
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture.name}.block_count is {num_layers}, "
                             f"but the file holds the tensors of {len(blocks)} blocks")
        embedding = self._shape(self.tensors["token_embd.weight"])
        if embedding[1] != hidden:
            raise ValueError(f"{self.path}: GGUF metadata {self.architecture.name}.embedding_length is {hidden}, but "
                             f"token_embd.weight has shape {embedding}")
        if rope_dims != head_dim:
            raise ValueError(f"{self.path}: partial rotary embeddings (rope.dimension_count {rope_dims} < "
                             f"head_dim {head_dim}) are not supported")
        bos_token_id = self.field("tokenizer.ggml.bos_token_id")
        if isinstance(bos_token_id, bool) or not isinstance(bos_token_id, int) or bos_token_id < 0:
            raise ValueError(f"{self.path}: GGUF metadata tokenizer.ggml.bos_token_id must be a token id, "
                             f"got {_shown(bos_token_id)}")
        common: dict[str, Any] = dict(
            architecture=self.architecture.name,
            vocab_size=int(self.tensors["token_embd.weight"].shape[-1]),
            hidden_size=hidden,
            intermediate_size=self.architecture_int("feed_forward_length"),
            num_layers=num_layers,
            num_heads=heads,
            num_kv_heads=self.architecture_int("attention.head_count_kv", heads),
            head_dim=head_dim,
            rms_norm_eps=self.architecture_float("attention.layer_norm_rms_epsilon"),
            rope_theta=self.architecture_float("rope.freq_base", 10000.0),
            tie_word_embeddings="output.weight" not in self.tensors,
            bos_token_id=bos_token_id,
            max_position_embeddings=self.architecture_int("context_length"),
            rope_scaling=self._rope_scaling(head_dim),
            hidden_activation=self.architecture.activation,
            attention_bias=self.architecture.qkv_bias,
        )
        return ModelConfig(**common, **self.architecture.gguf_hyperparameters(self, common))

    def _rope_scaling(self, head_dim: int) -> dict[str, Any] | None:
        if "rope_freqs.weight" in self.tensors:
            # llama.cpp stores Llama 3.1 scaling as one divisor per rotary frequency.
            factors = self._dequantized(self.tensors["rope_freqs.weight"]).reshape(-1)
            return {"rope_type": "freq_factors", "factors": [float(f) for f in factors]}
        scaling_type = self.architecture_field("rope.scaling.type", "none")
        if scaling_type == "none":
            return None
        if scaling_type == "linear":
            return {"rope_type": "linear", "factor": self.architecture_float("rope.scaling.factor")}
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
        if len(parts) == 3 and parts[0] == "blk" and parts[2] in self.architecture.gguf_tensors:
            return f"blocks.{parts[1]}.{self.architecture.gguf_tensors[parts[2]]}.{suffix}"
        raise ValueError(f"{self.path}: unexpected tensor {_shown(gguf_name)} for architecture "
                         f"{self.architecture.name}")

    def weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(icgt name, float32 tensor) for every weight, dequantised, in file order.

        >>> name, tensor = next(GGUFFile(icgt.models.bundles.builtin_source("smollm2-135m").path).weights())
        >>> name, tuple(tensor.shape), tensor.dtype
        ('embed.weight', (49152, 576), torch.float32)
        """
        for gguf_name, tensor in self.tensors.items():
            name = self.icgt_name(gguf_name)
            if name is not None:
                values = torch.from_numpy(self._dequantized(tensor))
                yield name, self.architecture.weight_from_gguf(name, values, self.config,
                                                             f"{self.path}: tensor {gguf_name!r}")


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
