"""icgt's decoder-only language model: embed, blocks, final norm and head as separate submodules.

The split is the bundle contract (docs/bundle-format.md): C++ runs ``embed``, then each
``blocks[i]`` with an optional per-head gate, then ``final_norm`` and ``head``, calling its hooks
in between. Everything is TorchScript-compatible.
"""

from __future__ import annotations

import struct  # noqa: F401  (docstring example)
import zlib
from typing import Optional  # TorchScript reads Optional[Tensor], not "Tensor | None"

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import find_architecture
from ..architectures.base import Architecture
from .config import ModelConfig, rope_inverse_frequencies
from .layers import Attention, GatedMLP, GemmaRMSNorm, RMSNorm

FORMAT_VERSION = 4


def tensor_crc32(tensor: Tensor) -> int:
    """The CRC-32 (zlib's) of a tensor's bytes in memory order, as the C++ loader computes it.

    >>> tensor_crc32(torch.tensor([1.0])) == zlib.crc32(struct.pack("<f", 1.0))
    True
    """
    data = tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy()
    return zlib.crc32(data)


def tensor_checksums(module: nn.Module) -> dict[str, int]:
    """CRC-32 of every parameter and buffer of ``module`` under every name it has (tied ones too)."""
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    return {name: tensor_crc32(tensor) for name, tensor in named}


class Embedding(nn.Module):
    """Token embedding times a scale in the model dtype (Gemma: sqrt(hidden), rounded as Gemma rounds it; Llama: 1)."""

    def __init__(self, vocab_size: int, hidden_size: int, scale: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size, dtype=dtype), requires_grad=False)
        # Rounded through float32 first, as transformers rounds it (bfloat16 sqrt(640) becomes 25.25).
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).to(dtype), persistent=False)

    def forward(self, input_ids: Tensor) -> Tensor:
        return F.embedding(input_ids, self.weight) * self.scale


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: x + post(attn(norm(x))), then x + post(mlp(norm(x))), where the post-norms
    are Gemma's sandwich and identities in architectures without them (Llama, Qwen2).

    Besides ``forward``, each block exports the steps the probe drives when it reads or changes
    the inside of a block: ``attention_input`` (what the attention reads), ``attention_output``
    (what it adds to the residual, from per-head outputs z) and ``mlp_output`` (what the MLP adds);
    the post-norms belong to the last two, so those are what the sub-layers add to the residual stream.
    """

    def __init__(self, config: ModelConfig, architecture: Architecture, layer: int, dtype: torch.dtype) -> None:
        super().__init__()
        norm = norm_class(architecture)
        eps = config.rms_norm_eps
        self.attn_norm = norm(config.hidden_size, eps, dtype)
        self.attn = _attention(config, architecture, layer, dtype)
        self.post_attn_norm = norm(config.hidden_size, eps, dtype) if architecture.post_norms else nn.Identity()
        self.mlp_norm = norm(config.hidden_size, eps, dtype)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_activation, dtype)
        self.post_mlp_norm = norm(config.hidden_size, eps, dtype) if architecture.post_norms else nn.Identity()

    def forward(self, hidden: Tensor, head_gate: Optional[Tensor]) -> Tensor:
        hidden = hidden + self.post_attn_norm(self.attn(self.attention_input(hidden), head_gate))
        return hidden + self.mlp_output(hidden)

    @torch.jit.export
    def attention_input(self, hidden: Tensor) -> Tensor:
        return self.attn_norm(hidden)

    @torch.jit.export
    def attention_output(self, z: Tensor) -> Tensor:
        return self.post_attn_norm(self.attn.output(z))

    @torch.jit.export
    def mlp_output(self, hidden: Tensor) -> Tensor:
        return self.post_mlp_norm(self.mlp(self.mlp_norm(hidden)))


def norm_class(architecture: Architecture) -> type[nn.Module]:
    """The RMSNorm of ``architecture``: Gemma's (1 + w) where its norms are zero-centred, else Llama's w.

    >>> norm_class(find_architecture("gemma2")).__name__, norm_class(find_architecture("qwen2")).__name__
    ('GemmaRMSNorm', 'RMSNorm')
    """
    return GemmaRMSNorm if architecture.zero_centred_norms else RMSNorm


def _attention(config: ModelConfig, architecture: Architecture, layer: int, dtype: torch.dtype) -> Attention:
    sliding = config.layer_types[layer] == "sliding"
    if sliding and config.local_rope_theta is not None:
        # Gemma 3's local layers have their own base and are never rope-scaled.
        inv_freq = rope_inverse_frequencies(config.head_dim, config.local_rope_theta, None)
    else:
        inv_freq = rope_inverse_frequencies(config.head_dim, config.rope_theta, config.rope_scaling)
    return Attention(
        config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim, config.attention_scale,
        inv_freq, sliding_window=config.sliding_window if sliding else 0,
        softcap=config.attn_logit_softcapping or 0.0,
        qk_norm=norm_class(architecture) if architecture.qk_norm else None,
        eps=config.rms_norm_eps, dtype=dtype, qkv_bias=config.attention_bias,
    )


class Head(nn.Module):
    """Logits = x E^T, then Gemma's final tanh soft-cap where the config has one (softcap 0: none)."""

    def __init__(self, weight: nn.Parameter, softcap: float) -> None:
        super().__init__()
        self.weight = weight
        self.softcap = softcap

    def forward(self, hidden: Tensor) -> Tensor:
        logits = F.linear(hidden, self.weight)
        if self.softcap > 0.0:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class CausalLM(nn.Module):
    """A decoder-only language model split into embed / blocks / final_norm / head.

    Tied models share one tensor between ``embed.weight`` and ``head.weight``. Weights start
    uninitialised: fill them with load_state_dict.

    >>> model = CausalLM(ModelConfig.tiny("gemma3"))
    >>> model.load_state_dict({k: torch.randn_like(v) for k, v in model.state_dict().items()})
    <All keys matched successfully>
    >>> ids = torch.tensor([[1, 5, 9]])
    >>> model(ids).shape, len(model.hidden_states(ids))
    (torch.Size([1, 3, 64]), 3)
    """

    # The Python-side config stays out of TorchScript; the bundle carries it as config.json.
    __jit_ignored_attributes__ = ["config"]

    def __init__(self, config: ModelConfig, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.config = config
        # Plain (non-Final) attributes, so C++ can read them with module.attr(name).
        self.icgt_format_version = FORMAT_VERSION
        self.architecture = config.architecture
        self.num_layers = config.num_layers
        self.hidden_size = config.hidden_size
        self.vocab_size = config.vocab_size
        self.num_heads = config.num_heads
        self.num_kv_heads = config.num_kv_heads
        self.head_dim = config.head_dim
        self.bos_token_id = config.bos_token_id
        self.max_position_embeddings = config.max_position_embeddings
        # CRC-32 of every parameter and buffer by name, filled by record_checksums before export.
        self.tensor_checksums = torch.jit.Attribute({}, dict[str, int])

        architecture = find_architecture(config.architecture)
        scale = config.hidden_size ** 0.5 if architecture.scaled_embedding else 1.0
        self.embed = Embedding(config.vocab_size, config.hidden_size, scale, dtype)
        self.blocks = nn.ModuleList([DecoderBlock(config, architecture, layer, dtype)
                                     for layer in range(config.num_layers)])
        self.final_norm = norm_class(architecture)(config.hidden_size, config.rms_norm_eps, dtype)
        head_weight = self.embed.weight if config.tie_word_embeddings else nn.Parameter(
            torch.empty(config.vocab_size, config.hidden_size, dtype=dtype), requires_grad=False)
        self.head = Head(head_weight, config.final_logit_softcapping or 0.0)

    @torch.jit.ignore
    def parameter_slices(self) -> dict[str, tuple[str, int, int]]:
        """Where a checkpoint's separate projections go: name -> (fused parameter, first row, rows).

        Queries, keys and values are one matrix (qkv_proj) and so are the MLP's gate and up
        (gate_up_proj), stacked by rows, so that each takes one matrix product.

        >>> CausalLM(ModelConfig.tiny("llama")).parameter_slices()["blocks.0.attn.k_proj.weight"]
        ('blocks.0.attn.qkv_proj.weight', 32, 16)
        """
        config = self.config
        queries, keys = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
        slices = {}
        for layer in range(config.num_layers):
            for suffix in ("weight", "bias") if config.attention_bias else ("weight",):
                fused = f"blocks.{layer}.attn.qkv_proj.{suffix}"
                slices[f"blocks.{layer}.attn.q_proj.{suffix}"] = (fused, 0, queries)
                slices[f"blocks.{layer}.attn.k_proj.{suffix}"] = (fused, queries, keys)
                slices[f"blocks.{layer}.attn.v_proj.{suffix}"] = (fused, queries + keys, keys)
            fused = f"blocks.{layer}.mlp.gate_up_proj.weight"
            slices[f"blocks.{layer}.mlp.gate_proj.weight"] = (fused, 0, config.intermediate_size)
            slices[f"blocks.{layer}.mlp.up_proj.weight"] = (fused, config.intermediate_size, config.intermediate_size)
        return slices

    @torch.jit.ignore
    def num_checkpoint_tensors(self) -> int:
        """How many tensors a checkpoint of this model holds (separate projections counted separately)."""
        fused = {target for target, _, _ in self.parameter_slices().values()}
        return len([name for name, _ in self.named_parameters() if name not in fused]) + len(self.parameter_slices())

    @torch.jit.ignore
    def initialise_randomly(self, seed: int) -> CausalLM:
        """Weights as an untrained model has them (transformers' initialisation: N(0, 0.02) matrices,
        norms at their identity: 1 for Llama's, 0 for Gemma's zero-centred ones); returns the model.

        >>> model = CausalLM(ModelConfig.tiny("gemma3")).initialise_randomly(seed=0)
        >>> float(model.final_norm.weight.abs().max()), round(float(model.embed.weight.std()), 2)
        (0.0, 0.02)
        """
        generator = torch.Generator(device=self.embed.weight.device).manual_seed(seed)
        identity = 0.0 if find_architecture(self.config.architecture).zero_centred_norms else 1.0
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                if name.endswith("norm.weight"):
                    parameter.fill_(identity)
                elif name.endswith(".bias"):
                    parameter.zero_()
                else:
                    parameter.normal_(0.0, 0.02, generator=generator)
        return self.eval()

    @torch.jit.ignore
    def record_checksums(self) -> None:
        """Store each tensor's CRC-32 in ``tensor_checksums``, which the C++ loader verifies.

        >>> model = CausalLM(ModelConfig.tiny("llama"))
        >>> model.load_state_dict({k: torch.zeros_like(v) for k, v in model.state_dict().items()})
        <All keys matched successfully>
        >>> model.record_checksums()
        >>> model.tensor_checksums["final_norm.weight"] == tensor_crc32(model.final_norm.weight)
        True
        """
        self.tensor_checksums = tensor_checksums(self)

    def forward(self, input_ids: Tensor) -> Tensor:
        """Logits [B, T, vocab] of input_ids [B, T], no head gates."""
        hidden = self.embed(input_ids)
        for block in self.blocks:
            hidden = block(hidden, None)
        return self.head(self.final_norm(hidden))

    @torch.jit.export
    def hidden_states(self, input_ids: Tensor) -> list[Tensor]:
        """[embed output, output of block 0, ..., output of block L-1]: entry l+1 is block l's output.

        Unlike transformers' hidden_states, the last entry is the raw block output (no final norm).
        """
        hidden = self.embed(input_ids)
        states = [hidden]
        for block in self.blocks:
            hidden = block(hidden, None)
            states.append(hidden)
        return states

