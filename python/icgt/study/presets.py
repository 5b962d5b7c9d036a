"""The paper's settings and the mechanism experiments as named presets: plain data, nothing imported
beyond the word lists, so that the command line lists them without loading torch or the compiled core.

A preset is a partial ExperimentConfig (icgt.study.config): ``icgt.study.config.preset(name)`` fills in
the rest and validates it.

Example:
    >>> from icgt.study.presets import PRESETS
    >>> PRESETS["ring"]["graph_size"], "grid-heads" in PRESETS
    ([10], True)
"""

from __future__ import annotations

from typing import Any

from ..models.words import DAY_NAMES, PROTOCOL_WORDS, SPARE_NOUNS

#: The in-context ring for the semantic-conflict experiment (the paper does not publish its permutation;
#: this one is icgt's, recorded in every run). No ring edge joins two consecutive weekdays, and the ring
#: is no affine map of the week (one that is, such as days three apart, is circulant in weekly order: its
#: z2, z3 are then exactly a harmonic of the weekly circle, which a pretrained weekly circle shows without
#: any context). Of the 46 orders with no weekday edge, this one's z2, z3 plane is farthest from every
#: weekly harmonic: mean squared principal-angle cosines 0.08, 0.55, 0.38 with harmonics 1, 2, 3 (1 is
#: the same plane, 1/3 the expectation for random planes; days three apart give 0, 1, 0).
DAYS_RING_ORDER = ("Monday", "Friday", "Tuesday", "Thursday", "Sunday", "Wednesday", "Saturday")

PRESETS: dict[str, dict[str, Any]] = {
    # The headline experiment: 4x4 grid, one walk per node, 1400 words each.
    "grid": dict(graph="grid", graph_size=[4, 4], num_sequences=16, start="per_node"),
    # Ring of 10; the ring figures show PCs 2-3.
    "ring": dict(graph="ring", graph_size=[10], num_sequences=10, start="per_node", pca_components=[1, 2]),
    # Hexagonal lattice of 30 nodes; the authors use a 200-token window for its energy too.
    "hexagon": dict(graph="hexagon", graph_size=[3, 3], num_sequences=16, start="uniform", energy_window=200),
    # Neighbour pairs on the grid, each pair followed by "/": only the second word of a pair is scored.
    "pairs": dict(graph="grid", graph_size=[4, 4], mode="pairs", separator="/", num_sequences=16),
    # Semantic conflict: days of the week on a ring whose order contradicts the week.
    "days": dict(graph="ring", graph_size=[7], words=list(DAYS_RING_ORDER), natural_order=list(DAY_NAMES),
                 num_sequences=14, start="per_node"),
    # Held-out edges (icgt.study.heldout): walks that never traverse 4 of the grid's 24 edges, no two
    # sharing a node, every node keeping 2 or more shown edges, each pair 3 steps apart in what is shown.
    "grid-heldout": dict(graph="grid", graph_size=[4, 4], num_sequences=16, start="per_node",
                         held_out_edges=[[1, 5], [6, 7], [8, 9], [10, 14]]),
    # The mechanism experiments (icgt.study.mechanism), on the grid: cases at the last position of each walk.
    "grid-intervention": dict(graph="grid", graph_size=[4, 4], num_sequences=48, sequence_length=1000,
                              start="uniform", experiment="intervention"),
    "grid-heads": dict(graph="grid", graph_size=[4, 4], num_sequences=8, sequence_length=1000, start="per_node",
                       experiment="heads"),
    "grid-subspace": dict(graph="grid", graph_size=[4, 4], num_sequences=16, sequence_length=1000,
                          start="per_node", experiment="subspace"),
    "grid-toy-mixing": dict(graph="grid", graph_size=[4, 4], num_sequences=16, start="per_node",
                            experiment="toy_mixing"),
}

#: Coverage (icgt.study.coverage): the same walks on graphs of several sizes, 16 walks from uniform starts each,
#: whose accuracy is read against edge coverage and against context length. The 6x6 grid's 36 nodes take the
#: 30 protocol words and the first 6 spare nouns (one token each in every built-in model's tokenizer).
COVERAGE_GRID_SIDES = (3, 4, 5, 6)
COVERAGE_RING_SIZES = (8, 12, 16, 20)
PRESETS.update({f"coverage-grid{side}": dict(graph="grid", graph_size=[side, side], num_sequences=16, start="uniform",
                                             **({"words": [*PROTOCOL_WORDS, *SPARE_NOUNS][:side * side]}
                                                if side * side > len(PROTOCOL_WORDS) else {}))
                for side in COVERAGE_GRID_SIDES})
PRESETS.update({f"coverage-ring{size}": dict(graph="ring", graph_size=[size], num_sequences=16, start="uniform",
                                             pca_components=[1, 2])
                for size in COVERAGE_RING_SIZES})
#: Two graphs over the same words (icgt.study.two_graphs): the grid, and a random relabelling of it that shares
#: no edge with it; each step follows the second graph with probability p (the preset's percent).
TWO_GRAPH_MIXTURES = (0, 25, 50, 75, 100)
PRESETS.update({f"grid-two-graphs-p{percent}": dict(graph="grid", graph_size=[4, 4], num_sequences=16,
                                                    start="per_node", second_graph="permuted",
                                                    mixture=percent / 100)
                for percent in TWO_GRAPH_MIXTURES})

#: The presets' names, in the order the help lists them.
PRESET_NAMES = tuple(PRESETS)
