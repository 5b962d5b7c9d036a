"""Two toy models with a known answer to the held-out-edge question (icgt.study.heldout), run through the
whole pipeline like any model.

    python tests/python/heldout_model.py OUTPUT.pt induction|full_graph|uniform

writes a bundle (docs/bundle-format.md) over the words "w1" .. "w16" (token i + 1 is node i of the 4x4 grid;
token 0 is BOS):

- "induction": bigram recall and nothing else. Block 0 is one hand-set attention head: the query is the
  current token, each key the token before the key's position, each value the key's own token, with
  logit BETA on a match and 0 elsewhere. So after u the head copies what followed u before, and the head
  predicts in proportion to it. A pair never shown gets only the weight of the non-matching positions,
  as every other unseen word does: the held-out neighbour no more than a non-neighbour.
- "full_graph": a model that knows the whole grid: after u it predicts u's neighbours in the full grid,
  uniformly, whatever the context shows. The held-out neighbour gets what a shown neighbour gets.
- "uniform": every node word alike, whatever the context: no graph followed, so no reading.
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
from lag_model import PassBlock, grid_edges, hand_set_model
from toy_bundle import save_bundle

NUM_NODES = 16
VOCAB = NUM_NODES + 1
WORDS = [f"w{i + 1}" for i in range(NUM_NODES)]
#: The residual: the token (one-hot), then what the induction head read (a distribution over tokens).
TOKEN_DIMS = (0, VOCAB)
READ_DIMS = (VOCAB, 2 * VOCAB)
HIDDEN = 2 * VOCAB + 2  # 36: two heads of an even size (the rotary embedding's); the last two stay 0
#: The induction head's logit on a match: with about 90 earlier occurrences of a word and 1400 positions,
#: the non-matching positions keep about 1e-5 of the attention.
BETA = 14.0
#: The floor of every probability (log(0) is not a logit).
FLOOR = 1e-6
MAX_POSITIONS = 2048


class InductionBlock(DecoderBlock):
    """Block 0: one induction head, hand-set (see the module's docstring); the residual keeps the token."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, find_architecture("llama"), 0, torch.float32)
        self.beta = BETA
        self.vocab = VOCAB

    def forward(self, hidden: Tensor, head_gate: Optional[Tensor]) -> Tensor:
        tokens = hidden[..., :self.vocab]
        length = hidden.shape[1]
        # keys: the token before each position (none before position 0); values: each position's token.
        before = torch.cat([torch.zeros_like(tokens[:, :1]), tokens[:, :-1]], dim=1)
        scores = self.beta * (tokens @ before.transpose(1, 2))
        causal = torch.ones(length, length, dtype=torch.bool, device=hidden.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        read = torch.softmax(scores, dim=-1) @ tokens
        return torch.cat([tokens, read, hidden[..., 2 * self.vocab:]], dim=-1)


class ReadHead(nn.Module):
    """Next-token logits: the log of what the induction head read, over the node words only."""

    def __init__(self) -> None:
        super().__init__()
        self.read_dims = READ_DIMS
        self.floor = FLOOR
        nodes_only = torch.ones(VOCAB)
        nodes_only[0] = 0.0
        self.register_buffer("nodes_only", nodes_only)

    def forward(self, hidden: Tensor) -> Tensor:
        read = hidden[..., self.read_dims[0]:self.read_dims[1]] * self.nodes_only
        return torch.log(read + self.floor)


class GraphHead(nn.Module):
    """Next-token logits: uniform over the current node's neighbours in the full grid."""

    def __init__(self) -> None:
        super().__init__()
        adjacency = np.zeros((VOCAB, VOCAB))
        adjacency[0, 1:] = 1  # after BOS: any word
        for a, b in grid_edges():
            adjacency[a + 1, b + 1] = adjacency[b + 1, a + 1] = 1
        self.register_buffer("following", torch.tensor(adjacency / adjacency.sum(1, keepdims=True),
                                                        dtype=torch.float32))
        self.vocab = VOCAB
        self.floor = FLOOR

    def forward(self, hidden: Tensor) -> Tensor:
        token = hidden[..., :self.vocab].argmax(-1)
        return torch.log(self.following[token] + self.floor)


class UniformHead(nn.Module):
    """Next-token logits: the same for every node word, whatever the context (a model that follows nothing)."""

    def __init__(self) -> None:
        super().__init__()
        nodes_only = torch.zeros(VOCAB)
        nodes_only[0] = -30.0
        self.register_buffer("logits", nodes_only)
        self.vocab = VOCAB

    def forward(self, hidden: Tensor) -> Tensor:
        return 0.0 * hidden[..., :self.vocab] + self.logits


def heldout_model(kind: str) -> CausalLM:
    """The toy model of ``kind``: "induction", "full_graph" or "uniform"."""
    first_block = {"induction": InductionBlock, "full_graph": lambda config: PassBlock(config, 0),
                   "uniform": lambda config: PassBlock(config, 0)}[kind]
    head = {"induction": ReadHead, "full_graph": GraphHead, "uniform": UniformHead}[kind]()
    return hand_set_model(VOCAB, HIDDEN, MAX_POSITIONS, slice(*TOKEN_DIMS), first_block, head)


def write_heldout_bundle(path: Path, kind: str) -> Path:
    """Save the toy model of ``kind`` as a bundle at path; returns path."""
    return save_bundle(heldout_model(kind), Path(path))


if __name__ == "__main__":
    write_heldout_bundle(Path(sys.argv[1]), sys.argv[2])
