"""The TorchScript-compatible building blocks of icgt's Llama, Qwen2 and Gemma decoders.

Every module computes what the matching transformers module computes, in the same dtype order
(norms in float32, rotary tables in float32 then cast), so that float32 results agree with
transformers to rounding. Parameters are created with torch.empty: the loader fills them.
"""

from __future__ import annotations

from typing import Optional  # TorchScript reads Optional[Tensor], not "Tensor | None"

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Linear(nn.Module):
    """y = x W^T, plus a bias b only where the model has one (Qwen2's query, key and value projections)."""

    def __init__(self, in_features: int, out_features: int, dtype: torch.dtype, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype), requires_grad=False) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class RMSNorm(nn.Module):
    """Llama's RMSNorm: normalise in float32, cast back, then multiply by the weight."""

    def __init__(self, dim: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim, dtype=dtype), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32:
            # One fused kernel, bit for bit the formula below in float32 (tests/python/test_models.py).
            return F.rms_norm(x, [x.size(-1)], self.weight, self.eps)
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class GemmaRMSNorm(nn.Module):
    """Gemma's RMSNorm: the weight is stored zero-centred and applied as (1 + w), all in float32."""

    def __init__(self, dim: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim, dtype=dtype), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32:
            return F.rms_norm(x, [x.size(-1)], 1.0 + self.weight, self.eps)
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.weight.float())).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions 0..T-1 from fixed inverse frequencies (half-split layout)."""

    def __init__(self, inv_freq: Tensor) -> None:
        super().__init__()
        # Derived from the config, so checkpoints need not carry it; TorchScript still saves it.
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(self, length: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        positions = torch.arange(length, device=self.inv_freq.device, dtype=torch.float32)
        freqs = positions[:, None] * self.inv_freq[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Apply the rotary rotation to x [B, heads, T, head_dim] (transformers' rotate_half convention).

    >>> cos, sin = RotaryEmbedding(torch.tensor([1.0]))(2, torch.float32)
    >>> rotate(torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]]), cos, sin).squeeze()
    tensor([[1.0000, 0.0000],
            [0.5403, 0.8415]])
    """
    half = x.size(-1) // 2
    rotated_half = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated_half * sin


def attention_mask(length: int, sliding_window: int, device: torch.device) -> Tensor:
    """Boolean [T, T] mask: query i sees key j iff 0 <= i - j, and i - j < sliding_window when it is > 0.

    This is transformers' rule (create_sliding_window_causal_mask: kv_idx > q_idx - sliding_window).

    >>> attention_mask(4, 2, torch.device("cpu")).int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    positions = torch.arange(length, device=device)
    distance = positions[:, None] - positions[None, :]
    allowed = distance >= 0
    if sliding_window > 0:
        allowed = allowed & (distance < sliding_window)
    return allowed


class Attention(nn.Module):
    """Grouped-query causal self-attention with rotary positions, in steps that the probe can drive.

    ``sliding_window`` 0 means global attention. ``softcap`` 0 means no attention-logit soft-capping
    (Gemma 2 caps; scaled_dot_product_attention cannot, so capped layers use the explicit softmax).
    ``qk_norm``, a norm class (the architecture's) or None, adds an RMSNorm over head_dim on queries and
    keys before the rotation (Gemma 3).
    ``qkv_bias`` gives the query, key and value projections a bias (Qwen2).

    The steps, each exported for C++: ``project`` (queries, keys, values after norms and rotation),
    ``attend`` (per-head outputs z [batch, pos, head, head_dim] through SDPA), ``pattern`` (the
    attention weights of a range of queries, explicitly), ``mix`` (z from given weights) and
    ``output`` (the output projection of z). ``forward`` is project, attend, gate, output.
    """

    def __init__(self, hidden_size: int, num_heads: int, num_kv_heads: int, head_dim: int, scale: float,
                 inv_freq: Tensor, sliding_window: int, softcap: float, qk_norm: type[nn.Module] | None, eps: float,
                 dtype: torch.dtype, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.scale = scale
        self.sliding_window = sliding_window
        self.softcap = softcap
        # Queries, keys and values from one matrix product (checkpoints' q_proj, k_proj, v_proj,
        # stacked by rows at load: see CausalLM.parameter_slices).
        self.qkv_proj = Linear(hidden_size, (num_heads + 2 * num_kv_heads) * head_dim, dtype, qkv_bias)
        self.o_proj = Linear(num_heads * head_dim, hidden_size, dtype)
        self.q_norm = nn.Identity() if qk_norm is None else qk_norm(head_dim, eps, dtype)
        self.k_norm = nn.Identity() if qk_norm is None else qk_norm(head_dim, eps, dtype)
        self.rotary = RotaryEmbedding(inv_freq)

    def forward(self, x: Tensor, head_gate: Optional[Tensor]) -> Tensor:
        q, k, v = self.project(x)
        z = self.attend(q, k, v)
        if head_gate is not None:
            if head_gate.dim() != 1 or head_gate.size(0) != self.num_heads:
                raise ValueError(f"head_gate: expected shape [{self.num_heads}] (one factor per attention "
                                 f"head), got {head_gate.shape}")
            z = z * head_gate.to(device=z.device, dtype=z.dtype).view(1, 1, self.num_heads, 1)
        return self.output(z)

    @torch.jit.export
    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries [B, heads, T, head_dim], keys and values [B, kv_heads, T, head_dim], rotated."""
        batch, length = x.size(0), x.size(1)
        kv_width = self.num_kv_heads * self.head_dim
        q, k, v = self.qkv_proj(x).split([self.num_heads * self.head_dim, kv_width, kv_width], dim=-1)
        q = q.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = self.q_norm(q)
        k = self.k_norm(k)
        cos, sin = self.rotary(length, x.dtype)
        return rotate(q, cos, sin), rotate(k, cos, sin), v

    @torch.jit.export
    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Per-head outputs z [B, T, heads, head_dim] (a view), through the fused attention kernel."""
        length = q.size(2)
        if self.softcap > 0.0:
            return self.mix(self.pattern(q, k, 0, length), v)
        if 0 < self.sliding_window < length:
            mask = attention_mask(length, self.sliding_window, q.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale, enable_gqa=True)
        return out.transpose(1, 2)

    @torch.jit.export
    def pattern(self, q: Tensor, k: Tensor, first_query: int, num_queries: int) -> Tensor:
        """Attention weights [B, heads, num_queries, T] of queries first_query.. over all keys.

        Computed as transformers' eager attention does (scores scaled, soft-capped, masked, softmax
        in float32, cast to the model dtype); masked entries are exactly 0.
        """
        length = k.size(2)
        groups = self.num_heads // self.num_kv_heads
        queries = q.narrow(2, first_query, num_queries)
        scores = torch.matmul(queries, k.repeat_interleave(groups, dim=1).transpose(2, 3)) * self.scale
        if self.softcap > 0.0:
            scores = torch.tanh(scores / self.softcap) * self.softcap
        mask = attention_mask(length, self.sliding_window, q.device).narrow(0, first_query, num_queries)
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)

    @torch.jit.export
    def mix(self, weights: Tensor, v: Tensor) -> Tensor:
        """Per-head outputs z [B, T, heads, head_dim] of given attention weights [B, heads, T, T]."""
        groups = self.num_heads // self.num_kv_heads
        return torch.matmul(weights, v.repeat_interleave(groups, dim=1)).transpose(1, 2)

    @torch.jit.export
    def output(self, z: Tensor) -> Tensor:
        """The output projection of per-head outputs z [B, T, heads, head_dim]: [B, T, hidden]."""
        return self.o_proj(z.reshape(z.size(0), z.size(1), self.num_heads * self.head_dim))


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)): SwiGLU for Llama (silu), GeGLU for Gemma (tanh-approximated gelu).

    gate and up come from one matrix product (checkpoints' gate_proj and up_proj stacked by rows).
    """

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.gelu = activation == "gelu_tanh"
        self.gate_up_proj = Linear(hidden_size, 2 * intermediate_size, dtype)
        self.down_proj = Linear(intermediate_size, hidden_size, dtype)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        activated = F.gelu(gate, approximate="tanh") if self.gelu else F.silu(gate)
        return self.down_proj(activated.mul_(up))
