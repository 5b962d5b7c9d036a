"""A toy model with a planted order of changes, for validating the energy-accuracy lag through the whole pipeline.

    python tests/python/lag_model.py OUTPUT.pt REPRESENTATION_AT PREDICTION_AT

writes a bundle (docs/bundle-format.md) that icgt runs like any model, on the 4x4 grid whose node i is
the word "w{i+1}" (token i + 1; token 0 is BOS). Its representations turn graph-shaped at context
length REPRESENTATION_AT and its predictions start following the graph at PREDICTION_AT; the planted
lag is log2(PREDICTION_AT / REPRESENTATION_AT) doublings (positive: the representations change first).
Optionally the representations loosen again from a third context length (LOOSENING of the graph's
share lost), as Gemma 3's class means do on the grid, and carry per-token noise (``token_noise``).

What it computes, at position t of a sequence, for node word v (g(t; T) = sigmoid(ln(t / T) / WIDTH)):

- block 0 writes sqrt(1 - g_r) R[v] + noise[t] in the first RANDOM_DIMS dimensions (R: random
  Gaussian codes, one per token; noise: a fixed Gaussian vector per position) and sqrt(g_r) L[v] in the
  next two (L: the grid's Laplacian eigenvectors z2, z3, scaled so that node pairs are as far apart on
  average as under R), with g_r = g(t; REPRESENTATION_AT). The scale-invariant Dirichlet energy of a
  single position's class means (noise aside) is then exactly 1 - g_r (1 - e_L), where e_L is the
  energy of L: a sigmoid in log context with its midpoint at REPRESENTATION_AT.
- With token_noise s > 0, block 0 adds s * sqrt(2) sin(h_t) to the random part, h_t the running sum of
  HISTORY_SCALE-sized Gaussian codes of the tokens so far: a deterministic function of the whole prefix
  that is close to independent noise of variance s^2 per dimension at every token of every sequence
  (the fixed per-position noise is shared by the sequences, and so by the classes visited at one
  position; this is not), so that class means over c tokens carry sampling noise of about
  RANDOM_DIMS s^2 / c in squared norm, as a real model's do.
- It also writes the token (one-hot) and ln t, both times TRACER so small that they move no distance
  the analysis sees, for the head to read; blocks 1 and 2 pass the residual on unchanged.
- The head predicts (1 - g_a) uniformly over the 16 node words + g_a uniformly over the graph
  neighbours of v, with g_a = g(t; PREDICTION_AT): accuracy (1 - g_a) deg(v) / 16 + g_a, a sigmoid with
  its midpoint at PREDICTION_AT.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn

from icgt.models.architectures import find_architecture
from icgt.models.scriptable import CausalLM, ModelConfig
from icgt.models.scriptable.model import DecoderBlock
from toy_bundle import save_bundle

NUM_NODES = 16
VOCAB = NUM_NODES + 1
WORDS = [f"w{i + 1}" for i in range(NUM_NODES)]
RANDOM_DIMS = 24
TOKEN_DIMS = slice(RANDOM_DIMS + 2, RANDOM_DIMS + 2 + VOCAB)
HIDDEN = TOKEN_DIMS.stop + 1
#: Width of the planted sigmoids, in natural-log units of context: 10% to 90% over 0.63 doublings each way.
WIDTH = 0.5
#: The share of the graph's part that representations which loosen lose.
LOOSENING = 0.6
#: The per-position noise's standard deviation, against unit-variance codes.
NOISE = 0.4
TRACER = 1e-4
MAX_POSITIONS = 4096
#: The spread of the per-token history codes (radians): large, so that prefixes one token apart give
#: unrelated phases; float32 keeps a running sum of 600 of them to about 1e-2 radians.
HISTORY_SCALE = 30.0


def grid_edges(rows: int = 4, cols: int = 4) -> list[tuple[int, int]]:
    """The 4-neighbour lattice, row-major, as icgt.Graph.square_grid numbers it."""
    return ([(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
            + [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)])


def _codes(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """R [VOCAB, RANDOM_DIMS], L [VOCAB, 2], the neighbour distribution [VOCAB, VOCAB] and noise [positions, RANDOM_DIMS]."""
    generator = np.random.default_rng(seed)
    random_codes = generator.normal(size=(VOCAB, RANDOM_DIMS))
    adjacency = np.zeros((NUM_NODES, NUM_NODES))
    for a, b in grid_edges():
        adjacency[a, b] = adjacency[b, a] = 1
    _, vectors = np.linalg.eigh(np.diag(adjacency.sum(1)) - adjacency)
    layout = vectors[:, 1:3]
    pairs = lambda x: ((x[:, None] - x[None]) ** 2).sum(-1).mean()  # noqa: E731
    layout *= math.sqrt(pairs(random_codes[1:]) / pairs(layout))
    graph_codes = np.zeros((VOCAB, 2))
    graph_codes[1:] = layout
    neighbours = np.zeros((VOCAB, VOCAB))
    neighbours[0, 1:] = 1 / NUM_NODES
    neighbours[1:, 1:] = adjacency / adjacency.sum(1, keepdims=True)
    noise = NOISE * generator.normal(size=(MAX_POSITIONS, RANDOM_DIMS))
    return tuple(torch.tensor(x, dtype=torch.float32) for x in (random_codes, graph_codes, neighbours, noise))


def history_codes(seed: int) -> Tensor:
    """[VOCAB, RANDOM_DIMS]: the codes whose running sum over a prefix sets its per-token noise (drawn
    from their own generator, so that the other codes stay those of the seed)."""
    generator = np.random.default_rng([seed, 1])
    return torch.tensor(HISTORY_SCALE * generator.normal(size=(VOCAB, RANDOM_DIMS)), dtype=torch.float32)


def _schedule(positions: Tensor, log_midpoint: float, width: float) -> Tensor:
    return torch.sigmoid((torch.log(positions.clamp(min=1.0)) - log_midpoint) / width)


class ScheduleBlock(DecoderBlock):
    """Block 0: the planted representations (see the module's docstring)."""

    def __init__(self, config: ModelConfig, representation_at: float, loosens_at: float, seed: int,
                 token_noise: float = 0.0) -> None:
        super().__init__(config, find_architecture("llama"), 0, torch.float32)
        random_codes, graph_codes, _, noise = _codes(seed)
        self.register_buffer("random_codes", random_codes)
        self.register_buffer("graph_codes", graph_codes)
        self.register_buffer("noise", noise)
        self.register_buffer("history_codes", history_codes(seed))
        self.token_noise = token_noise
        self.log_midpoint = math.log(representation_at)
        self.log_loosening = math.log(loosens_at)
        self.loosening = LOOSENING
        self.token_dims = (TOKEN_DIMS.start, TOKEN_DIMS.stop)
        self.tracer = TRACER
        self.width = WIDTH

    def forward(self, hidden: Tensor, head_gate: Optional[Tensor]) -> Tensor:
        token = hidden[..., self.token_dims[0]:self.token_dims[1]].argmax(-1)
        length = hidden.shape[1]
        positions = torch.arange(length, dtype=torch.float32, device=hidden.device)
        shaped = (_schedule(positions, self.log_midpoint, self.width)
                  * (1 - self.loosening * _schedule(positions, self.log_loosening, self.width)))[None, :, None]
        random_part = torch.sqrt(1 - shaped) * self.random_codes[token] + self.noise[:length][None]
        if self.token_noise > 0:
            history = torch.cumsum(self.history_codes[token], dim=1)
            random_part = random_part + self.token_noise * math.sqrt(2.0) * torch.sin(history)
        graph_part = torch.sqrt(shaped) * self.graph_codes[token]
        tracer = self.tracer * torch.cat([torch.nn.functional.one_hot(token, self.random_codes.shape[0]).float(),
                                     torch.log(positions.clamp(min=1.0))[None, :, None].expand(hidden.shape[0], -1, 1)],
                                    dim=-1)
        return torch.cat([random_part, graph_part, tracer], dim=-1)


class PassBlock(DecoderBlock):
    """Blocks 1 and 2: the residual passes unchanged."""

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__(config, find_architecture("llama"), layer, torch.float32)

    def forward(self, hidden: Tensor, head_gate: Optional[Tensor]) -> Tensor:
        return hidden


class ScheduleHead(nn.Module):
    """Next-token logits: uniform over the node words, moving to uniform over the graph neighbours."""

    def __init__(self, prediction_at: float, seed: int) -> None:
        super().__init__()
        self.register_buffer("neighbours", _codes(seed)[2])
        self.log_midpoint = math.log(prediction_at)
        self.token_dims = (TOKEN_DIMS.start, TOKEN_DIMS.stop)
        self.tracer = TRACER
        self.width = WIDTH
        uniform = torch.full([VOCAB], 1.0 / NUM_NODES)
        uniform[0] = 0.0
        self.register_buffer("uniform", uniform)

    def forward(self, hidden: Tensor) -> Tensor:
        token = hidden[..., self.token_dims[0]:self.token_dims[1]].argmax(-1)
        positions = torch.exp(hidden[..., -1] / self.tracer)
        following = _schedule(positions, self.log_midpoint, self.width)[..., None]
        uniform = self.uniform
        probabilities = (1 - following) * uniform + following * self.neighbours[token]
        return torch.log(probabilities + 1e-12)


def hand_set_model(vocab: int, hidden: int, max_positions: int, token_dims: slice,
                   first_block: Callable[[ModelConfig], nn.Module], head: nn.Module) -> CausalLM:
    """A 3-block Llama of hand-set parts: the embedding writes the token one-hot into token_dims (the rest 0),
    block 0 is first_block(config), blocks 1 and 2 pass the residual on, no final norm, and ``head``."""
    config = ModelConfig.tiny("llama", vocab_size=vocab, hidden_size=hidden, intermediate_size=8, num_layers=3,
                              num_heads=2, num_kv_heads=2, head_dim=hidden // 2, bos_token_id=0,
                              max_position_embeddings=max_positions)
    model = CausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.embed.weight[:, token_dims] = torch.eye(vocab)
    model.blocks = nn.ModuleList([first_block(config)] + [PassBlock(config, layer) for layer in (1, 2)])
    model.final_norm = nn.Identity()
    model.head = head
    return model.eval()


def lag_model(representation_at: float, prediction_at: float, loosens_at: float = math.inf, seed: int = 0,
              token_noise: float = 0.0) -> CausalLM:
    """The toy model with its changes planted at the given context lengths (never loosening by default),
    with per-token noise of standard deviation token_noise per random dimension (none by default)."""
    return hand_set_model(VOCAB, HIDDEN, MAX_POSITIONS, TOKEN_DIMS,
                          lambda config: ScheduleBlock(config, representation_at, loosens_at, seed, token_noise),
                          ScheduleHead(prediction_at, seed))


def write_lag_bundle(path: Path, representation_at: float, prediction_at: float, loosens_at: float = math.inf,
                     seed: int = 0, token_noise: float = 0.0) -> Path:
    """Save the toy lag model as a bundle at path; returns path."""
    return save_bundle(lag_model(representation_at, prediction_at, loosens_at, seed, token_noise), Path(path))


if __name__ == "__main__":
    write_lag_bundle(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
