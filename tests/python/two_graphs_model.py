"""Toy models with a known answer to the two-graph question (icgt.study.two_graphs), run through the whole
pipeline like any model.

    python tests/python/two_graphs_model.py OUTPUT.pt orthogonal|shared|first_only|neither MIXTURE SEED

writes a bundle (docs/bundle-format.md) over the words "w1" .. "w16" (token i + 1 is node i of the 4x4 grid;
token 0 is BOS) for the runs whose second graph is the permuted grid of second_graph_seed SEED (the graph that
icgt.study.two_graphs draws for that seed). Block 0 writes each token's place in both graphs' spectral
layouts (z2, z3) and the token itself, TRACER-small, for the head:

- "orthogonal": FIRST_SCALE times the grid's layout in dimensions 0-1, the second graph's in 2-3: the two
  graphs in orthogonal subspaces, the grid's the larger (PCs 1-2 draw the grid, PCs 3-4 the second graph;
  variance shares 0.61 and 0.39, both far above the relabelling null; principal-angle cosines 0).
- "shared": both layouts added in dimensions 0-1: one plane for both (cosines 1).
- "first_only": the grid's layout in dimensions 0-1 and nothing of the second graph.
- "neither": a random code per node (UNRELATED_SEED) in dimensions 0-3, unrelated to either graph.

The head predicts what the walks do: 1 - MIXTURE uniformly over the current node's grid neighbours, MIXTURE over
its neighbours in the second graph; the graphs share no edge, so accuracy is 1 - MIXTURE against the grid and
MIXTURE against the second graph.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from icgt.models.architectures import find_architecture
from icgt.models.scriptable import CausalLM, ModelConfig
from icgt.models.scriptable.model import DecoderBlock
from icgt.study.two_graphs import second_graph_edges
from lag_model import grid_edges, hand_set_model
from toy_bundle import save_bundle

NUM_NODES = 16
VOCAB = NUM_NODES + 1
WORDS = [f"w{i + 1}" for i in range(NUM_NODES)]
#: Large enough that PCs 1-2 draw the grid, small enough that the second graph's share (0.39) is far above
#: the relabelling null: beside a grid of scale 2 its 0.2 would be within the null's spread.
FIRST_SCALE = 1.25
#: The seed of the "neither" toy's random codes.
UNRELATED_SEED = 7
KINDS = ("orthogonal", "shared", "first_only", "neither")
TRACER = 1e-4
#: The residual: 4 layout dimensions, then the token (one-hot, TRACER-small), then zeros.
TOKEN_DIMS = (4, 4 + VOCAB)
HIDDEN = 24  # 4 + VOCAB, rounded up to two heads of an even size (the rotary embedding's)
MAX_POSITIONS = 2048


def layout(edges) -> np.ndarray:
    """The Laplacian eigenvectors z2, z3 [n, 2] of a graph on the 16 nodes."""
    adjacency = np.zeros((NUM_NODES, NUM_NODES))
    for a, b in edges:
        adjacency[a, b] = adjacency[b, a] = 1
    return np.linalg.eigh(np.diag(adjacency.sum(1)) - adjacency)[1][:, 1:3]


def neighbour_rows(edges) -> np.ndarray:
    """[VOCAB, VOCAB]: row u + 1 uniform over node u's neighbours (as tokens); after BOS, any word."""
    table = np.zeros((VOCAB, VOCAB))
    table[0, 1:] = 1
    for a, b in edges:
        table[a + 1, b + 1] = table[b + 1, a + 1] = 1
    return table / table.sum(1, keepdims=True)


class LayoutBlock(DecoderBlock):
    """Block 0: both layouts (see the module's docstring), and the token for the head."""

    def __init__(self, config: ModelConfig, codes: Tensor) -> None:
        super().__init__(config, find_architecture("llama"), 0, torch.float32)
        self.register_buffer("codes", codes)
        self.token_dims = TOKEN_DIMS
        self.tracer = TRACER

    def forward(self, hidden: Tensor, head_gate: Optional[Tensor]) -> Tensor:
        tokens = hidden[..., self.token_dims[0]:self.token_dims[1]]
        token = tokens.argmax(-1)
        return torch.cat([self.codes[token], self.tracer * tokens, hidden[..., self.token_dims[1]:]], dim=-1)


class MixtureHead(nn.Module):
    """Next-token logits: the walks' own next-step distribution."""

    def __init__(self, following: Tensor) -> None:
        super().__init__()
        self.register_buffer("following", following)
        self.token_dims = TOKEN_DIMS

    def forward(self, hidden: Tensor) -> Tensor:
        token = hidden[..., self.token_dims[0]:self.token_dims[1]].argmax(-1)
        return torch.log(self.following[token] + 1e-12)


def two_graphs_model(kind: str, mixture: float, seed: int) -> CausalLM:
    """The toy model of ``kind`` (one of KINDS) for the permuted grid of second_graph_seed ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    first = grid_edges()
    second = second_graph_edges("permuted", first, NUM_NODES, seed)
    codes = np.zeros((VOCAB, 4))
    if kind == "neither":
        codes[1:] = np.random.default_rng(UNRELATED_SEED).normal(size=(NUM_NODES, 4))
    else:
        codes[1:, 0:2] = FIRST_SCALE * layout(first)
    if kind in ("orthogonal", "shared"):
        codes[1:, (2 if kind == "orthogonal" else 0):(4 if kind == "orthogonal" else 2)] += layout(second)
    following = (1 - mixture) * neighbour_rows(first) + mixture * neighbour_rows(second)
    tensor = lambda values: torch.tensor(values, dtype=torch.float32)  # noqa: E731
    return hand_set_model(VOCAB, HIDDEN, MAX_POSITIONS, slice(*TOKEN_DIMS),
                          lambda config: LayoutBlock(config, tensor(codes)), MixtureHead(tensor(following)))


def write_two_graphs_bundle(path: Path, kind: str, mixture: float, seed: int = 0) -> Path:
    """Save the toy model as a bundle at path; returns path."""
    return save_bundle(two_graphs_model(kind, mixture, seed), Path(path))


if __name__ == "__main__":
    write_two_graphs_bundle(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
