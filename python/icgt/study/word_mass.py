"""Where a model's next-token probability goes along a sequence of concept words.

A run's accuracy reads only the probabilities of the node words (icgt.study.analysis). When a model puts
almost none of its probability on them, the renormalised accuracy is a ratio of two tiny numbers and says
nothing about the graph. ``word_mass`` reports, at a few positions, the mass itself beside both accuracies
and the entropy of the whole next-token distribution: the check behind docs/results.md's section on
Qwen2.5-Coder-1.5B and the days (examples/day_word_mass.py runs it).

Example (the toy model, a ring of three words " w1", " w2", " w3"):
    >>> probe = icgt.ActivationProbe(toy_bundle)
    >>> ring = icgt.Graph.ring(3)
    >>> ring.labels = ["w1", "w2", "w3"]
    >>> walk = [[icgt.NOT_A_NODE, 0, 1, 2, 0, 2, 1]]   # the BOS, then six words
    >>> found = word_mass(probe, ring, walk, positions=[1, 6])
    >>> found.mass.shape, bool((found.mass > 0).all() and (found.mass < 1).all())
    ((1, 2), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from .._icgt import NOT_A_NODE, EnergyMetrics, Graph
from ..models.tokens import concept_token_ids
from ..probe import ActivationProbe
from .compute import sequence_token_ids


@dataclass(frozen=True)
class WordMass:
    """What ``word_mass`` found: each array [sequences, positions], float64.

    positions: the words seen at each column (the prediction there is of the next word).
    mass: the next-token probability on all the graph's words together (full-vocabulary softmax).
    accuracy: the probability on the valid next words (the current node's neighbours), as a run reads it.
    renormalized: accuracy / mass, where uniform guessing scores degree / nodes.
    entropy: the entropy of the whole next-token distribution, in nats.
    top_ids, top_probs: [sequences, positions, k], the k likeliest next tokens and their probabilities
    (k = word_mass's top_k; 0 by default).

    >>> WordMass(np.array([3]), *[np.zeros((1, 1))] * 4).top_ids.shape
    (1, 1, 0)
    """

    positions: np.ndarray
    mass: np.ndarray
    accuracy: np.ndarray
    renormalized: np.ndarray
    entropy: np.ndarray
    top_ids: np.ndarray = None  # type: ignore[assignment]  # set in __post_init__ when not given
    top_probs: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        empty = np.zeros((*self.mass.shape, 0))
        if self.top_ids is None:
            object.__setattr__(self, "top_ids", empty.astype(np.int64))
        if self.top_probs is None:
            object.__setattr__(self, "top_probs", empty)


def word_mass(probe: ActivationProbe, graph: Graph, nodes: npt.ArrayLike, positions: Sequence[int], *,
              top_k: int = 0, max_batch: int = 0) -> WordMass:
    """The next-token probability on the graph's words, the accuracy and the entropy, at ``positions``.

    The graph's labels are its words (as a run labels it), each read as its first and only token with a
    leading space (``concept_token_ids``: a word that splits is a SplitWordsError). nodes: integer
    [sequences, 1 + length], as ``icgt.study.compute.sample_sequences`` gives them: NOT_A_NODE at
    column 0 (the BOS), then one node per word. positions: words seen, 1..length; at position t the
    model has read the BOS and t words and predicts word t + 1. top_k: also the k likeliest next tokens
    at each position (WordMass.top_ids, top_probs).

    >>> probe = icgt.ActivationProbe(toy_bundle)
    >>> ring = icgt.Graph.ring(3)
    >>> ring.labels = ["w1", "w2", "w3"]
    >>> found = word_mass(probe, ring, [[icgt.NOT_A_NODE, 0, 1, 2, 0]], [2, 4])
    >>> found.positions.tolist(), bool((found.accuracy <= found.mass).all())
    ([2, 4], True)
    >>> word_mass(probe, ring, [[icgt.NOT_A_NODE, 0, 1, 2, 0]], [4], top_k=3).top_ids.shape
    (1, 1, 3)
    >>> word_mass(probe, ring, [[icgt.NOT_A_NODE, 0, 1]], [3])
    Traceback (most recent call last):
    ...
    ValueError: word_mass: positions must be words seen, 1..2 for sequences of 2 words; got [3]
    """
    nodes = _checked_nodes(nodes, graph.num_nodes)
    length = nodes.shape[1] - 1
    columns = [int(position) for position in positions]
    if not columns or any(not 1 <= position <= length for position in columns):
        raise ValueError(f"word_mass: positions must be words seen, 1..{length} for sequences of {length} words; "
                         f"got {list(positions)}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= probe.vocab_size:
        raise ValueError(f"word_mass: top_k must be an integer 0..{probe.vocab_size} (the vocabulary), got {top_k!r}")
    word_ids = np.array(concept_token_ids(probe.tokenizer, list(graph.labels)), dtype=np.int64)
    token_ids = sequence_token_ids(nodes, word_ids, probe.bos_token_id)
    result = probe.run(torch.from_numpy(token_ids), target_ids=torch.from_numpy(word_ids), logits=columns,
                       log_probs=True, top_k=top_k, max_batch=max_batch)
    probabilities = result.target_probs.double()                      # [sequences, 1 + length, nodes]
    following = EnergyMetrics(graph).rule_following_accuracy(probabilities, torch.from_numpy(nodes))
    log_p = result.logits.double()                                    # [sequences, positions, vocabulary]
    entropy = -torch.special.xlogy(log_p.exp(), log_p.exp()).sum(-1)
    return WordMass(positions=np.array(columns), mass=probabilities.sum(-1)[:, columns].numpy(),
                    accuracy=following.full_vocabulary[:, columns].double().numpy(),
                    renormalized=following.renormalized[:, columns].double().numpy(),
                    entropy=entropy.numpy(),
                    **({} if not top_k else {"top_ids": result.top_k_ids[:, columns].numpy(),
                                             "top_probs": result.top_k_values[:, columns].double().exp().numpy()}))


def _checked_nodes(nodes: npt.ArrayLike, num_nodes: int) -> np.ndarray:
    """nodes as int64 [sequences, 1 + length], or a ValueError that says what is wrong with them."""
    array = np.asarray(nodes)
    if array.ndim != 2 or array.shape[1] < 2 or array.shape[0] < 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"word_mass: nodes must be integers [sequences, 1 + length] with length >= 1, "
                         f"got {array.dtype} of shape {list(array.shape)}")
    array = array.astype(np.int64)
    if (array[:, 0] != NOT_A_NODE).any():
        raise ValueError(f"word_mass: column 0 of nodes is the BOS and must be NOT_A_NODE ({NOT_A_NODE}), "
                         f"got {array[:, 0].tolist()}")
    words = array[:, 1:]
    if words.min() < 0 or words.max() >= num_nodes:
        bad = sorted(set(words[(words < 0) | (words >= num_nodes)].tolist()))
        raise ValueError(f"word_mass: after the BOS every entry of nodes must be a node of the graph, "
                         f"0..{num_nodes - 1}; got {bad}")
    return array
