"""Two toy models with a known answer to the coverage question (icgt.study.coverage), run through the whole
pipeline like any model, for a grid of any size.

    python tests/python/coverage_model.py OUTPUT.pt ROWS COLS coverage|context

writes a bundle (docs/bundle-format.md) over the words "w1" .. "wN" (token i + 1 is node i of the grid; token
0 is BOS). Block 0 writes the token (one-hot) and one number c(t) into the residual; the head predicts c(t)
uniformly over the current node's grid neighbours and 1 - c(t) uniformly over all N words, so that the
renormalised accuracy's skill, (accuracy - d/N) / (1 - d/N), is exactly c(t) at every position:

- "coverage": c(t) is the walk's edge coverage, the share of the grid's edges among the distinct pairs of
  consecutive words up to position t (counted in the block from the context's bigrams). Its accuracy is a
  function of coverage alone: the curves of different grid sizes collapse against coverage, and not
  against context length (a larger grid takes longer to cover).
- "context": c(t) = sigmoid(ln(t / MIDPOINT) / WIDTH), a function of context length alone: the curves
  collapse against context length, and not against coverage.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from icgt.models.architectures import find_architecture
from icgt.models.scriptable import CausalLM, ModelConfig
from icgt.models.scriptable.model import DecoderBlock
from lag_model import grid_edges, hand_set_model
from toy_bundle import save_bundle

#: The context model's schedule: its midpoint (in words) and width (natural-log units of context).
MIDPOINT = 30.0
WIDTH = 0.5
MAX_POSITIONS = 2048


def words(num_nodes: int) -> list[str]:
    """The toy's words, node i is "w{i+1}"."""
    return [f"w{i + 1}" for i in range(num_nodes)]


def _edge_mask(rows: int, cols: int) -> Tensor:
    """[vocab * vocab]: 1 at the index a * vocab + b of each grid edge (a < b, as tokens)."""
    vocab = rows * cols + 1
    mask = torch.zeros(vocab * vocab)
    for a, b in grid_edges(rows, cols):
        mask[(a + 1) * vocab + (b + 1)] = 1.0
    return mask


class ScheduleBlock(DecoderBlock):
    """Block 0: the residual keeps the token and gets c(t) in its dimension ``vocab``."""

    def __init__(self, config: ModelConfig, rows: int, cols: int, kind: str) -> None:
        super().__init__(config, find_architecture("llama"), 0, torch.float32)
        self.vocab = rows * cols + 1
        self.by_coverage = kind == "coverage"
        self.register_buffer("edge_mask", _edge_mask(rows, cols))
        self.num_edges = float(len(grid_edges(rows, cols)))
        self.log_midpoint = math.log(MIDPOINT)
        self.width = WIDTH

    def forward(self, hidden: Tensor, head_gate: Optional[Tensor]) -> Tensor:
        token = hidden[..., :self.vocab].argmax(-1)
        if self.by_coverage:
            before = torch.cat([torch.zeros_like(token[:, :1]), token[:, :-1]], dim=1)
            pair = torch.minimum(before, token) * self.vocab + torch.maximum(before, token)
            steps = torch.nn.functional.one_hot(pair, self.vocab * self.vocab).float() * self.edge_mask
            shown = torch.cummax(steps, dim=1).values.sum(-1) / self.num_edges
        else:
            positions = torch.arange(hidden.shape[1], dtype=torch.float32, device=hidden.device).clamp(min=1.0)
            shown = torch.sigmoid((torch.log(positions) - self.log_midpoint) / self.width)[None].expand(
                hidden.shape[0], -1)
        return torch.cat([hidden[..., :self.vocab], shown[..., None], hidden[..., self.vocab + 1:]], dim=-1)


class MixtureHead(nn.Module):
    """Next-token logits: c(t) over the grid neighbours of the current node, 1 - c(t) over all node words."""

    def __init__(self, rows: int, cols: int) -> None:
        super().__init__()
        vocab = rows * cols + 1
        neighbours = torch.zeros(vocab, vocab)
        for a, b in grid_edges(rows, cols):
            neighbours[a + 1, b + 1] = neighbours[b + 1, a + 1] = 1.0
        neighbours[0, 1:] = 1.0  # after BOS: any word
        self.register_buffer("neighbours", neighbours / neighbours.sum(1, keepdim=True))
        uniform = torch.full([vocab], 1.0 / (vocab - 1))
        uniform[0] = 0.0
        self.register_buffer("uniform", uniform)
        self.vocab = vocab

    def forward(self, hidden: Tensor) -> Tensor:
        token = hidden[..., :self.vocab].argmax(-1)
        shown = hidden[..., self.vocab:self.vocab + 1]
        return torch.log(shown * self.neighbours[token] + (1 - shown) * self.uniform + 1e-12)


def coverage_model(rows: int, cols: int, kind: str) -> CausalLM:
    """The toy model of ``kind`` ("coverage" or "context") on the rows x cols grid."""
    if kind not in ("coverage", "context"):
        raise ValueError(f"kind must be 'coverage' or 'context', got {kind!r}")
    vocab = rows * cols + 1
    hidden = -(-(vocab + 1) // 4) * 4  # two heads of an even size (the rotary embedding's)
    return hand_set_model(vocab, hidden, MAX_POSITIONS, slice(0, vocab),
                          lambda config: ScheduleBlock(config, rows, cols, kind), MixtureHead(rows, cols))


def write_coverage_bundle(path: Path, rows: int, cols: int, kind: str) -> Path:
    """Save the toy model as a bundle at path; returns path."""
    return save_bundle(coverage_model(rows, cols, kind), Path(path))


if __name__ == "__main__":
    write_coverage_bundle(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
