"""Two graphs over the same words (after Kowalyshyn et al., arXiv 2605.08405): does a model that sees walks
switching between two graphs on one set of words keep both, and where?

A run with ``config.second_graph`` has two graphs on the same nodes: the first is the config's graph (the
one every other measurement of the run uses), the second is drawn (numpy's generator seeded with
``config.second_graph_seed``, so that every seed of the walks has the same second graph) as one of
SECOND_GRAPHS:

- "permuted": the first graph with its nodes relabelled by a random permutation;
- "ring": a ring through all the nodes in a random order;

the first one drawn that shares no edge with the first graph, so that a next word is a neighbour in at
most one graph and the probability on either graph's neighbours is the sum of the two.

**Walks.** At each step the next word is a uniform neighbour of the current one in the second graph with
probability p (``config.mixture``), else in the first graph: p = 0 is a walk on the first graph, p = 1
on the second, and in between each step picks its graph afresh (mixture_walks). The "shuffled" control
puts each such walk's words in a random order, as for any run.

**Measured.** Accuracy against each graph (the probability on the current node's neighbours there); the
alignment of the class means' PCs 1-2 and 3-4 with each graph's spectral layout z2, z3 (the mean squared
principal-angle cosine, EnergyMetrics.spectral_alignment); and each graph's subspace of the class means:
the centred means M [n, d] are fitted jointly on both layouts, M ~ Z1 W1 + Z2 W2 (Z_g [n, 2] graph g's
z2, z3), each graph's **variance share** is ||Z_g W_g||^2 / ||M||^2, and its subspace is the row space of
W_g (the 2 directions of representation space along which the means draw graph g). The cosines of the
principal angles between the two subspaces say whether the model keeps the graphs apart (0: orthogonal
subspaces, the paper's finding at intermediate p) or on one plane (1). Fitted jointly, each W_g is not
contaminated by the other layout where the layouts correlate over the nodes. Two random planes in d
dimensions have a mean squared cosine of about 2/d, so the cosines mean something only where both
variance shares are well above 0.

Example (a 4x4 grid's permuted copy, and walks that follow it half of the time):
    >>> config = icgt.study.config.preset("grid-two-graphs-p50", num_sequences=2, sequence_length=30, pca_window=10)
    >>> first = config.build_graph()
    >>> second = second_graph(config, first)
    >>> second.num_edges, len(set(map(tuple, first.edges)) & set(map(tuple, second.edges)))
    (24, 0)
    >>> mixture_walks(config, first, second).shape
    (2, 30)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .._icgt import Graph

#: The kinds of second graph; "" in the config means none.
SECOND_GRAPHS = ("permuted", "ring")
#: Permutations drawn before giving up on one that shares no edge with the first graph (about 1 in 120
#: permutations of the 4x4 grid's nodes share none with the grid, 1 in 25 for a ring of 16).
MAX_DRAWS = 100_000
#: The two graphs, in the order of the arrays' G axis.
GRAPH_NAMES = ("first", "second")


def second_graph_edges(kind: str, first_edges, num_nodes: int, seed: int) -> list[tuple[int, int]]:
    """The edges (sorted pairs) of the second graph of ``kind`` over the first graph's nodes, drawn from
    ``seed``: the first permutation (numpy's default_rng(seed)) whose graph shares no edge with the first.

    >>> second_graph_edges("ring", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)], 5, seed=0)
    [(0, 2), (0, 3), (1, 3), (1, 4), (2, 4)]
    >>> second_graph_edges("permuted", [(0, 1), (0, 2), (1, 2)], 3, seed=0)
    Traceback (most recent call last):
    ...
    ValueError: no permuted graph over the 3 nodes shares no edge with the first graph (100000 permutations tried); choose a sparser first graph or second_graph "ring"
    """
    if kind not in SECOND_GRAPHS:
        raise ValueError(f"second graph {kind!r} is unknown; expected one of {list(SECOND_GRAPHS)}")
    first = {tuple(sorted(map(int, edge))) for edge in first_edges}
    if kind == "ring" and num_nodes < 3:
        raise ValueError(f"a ring needs 3 or more nodes, the first graph has {num_nodes}")
    generator = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        order = generator.permutation(num_nodes)
        if kind == "permuted":
            edges = {tuple(sorted((int(order[a]), int(order[b])))) for a, b in first}
        else:
            edges = {tuple(sorted((int(order[i]), int(order[(i + 1) % num_nodes])))) for i in range(num_nodes)}
        if not edges & first:
            return sorted(edges)
    raise ValueError(f"no {kind} graph over the {num_nodes} nodes shares no edge with the first graph ({MAX_DRAWS} "
                     f"permutations tried); choose a sparser first graph or second_graph \"ring\"")


def second_graph(config, first: Graph) -> Graph:
    """The config's second graph (second_graph_edges from config.second_graph_seed), labelled as ``first``."""
    from .._icgt import Graph  # the compiled core, only when a graph is built

    graph = Graph.from_edges(first.num_nodes, second_graph_edges(config.second_graph, first.edges, first.num_nodes,
                                                                 config.second_graph_seed))
    graph.labels = list(first.labels)
    return graph


def _padded_neighbours(num_nodes: int, edges) -> tuple[np.ndarray, np.ndarray]:
    """Each node's neighbours, sorted, padded with -1 [n, max degree], and its degree [n]."""
    lists = [[] for _ in range(num_nodes)]
    for a, b in edges:
        lists[a].append(b)
        lists[b].append(a)
    degree = np.array([len(found) for found in lists])
    padded = np.full((num_nodes, max(degree.max(initial=0), 1)), -1, dtype=np.int64)
    for node, found in enumerate(lists):
        padded[node, :len(found)] = sorted(found)
    return padded, degree


def mixture_walks(config, first: Graph, second: Graph) -> np.ndarray:
    """Walks [num_sequences, sequence_length] of config.start's starts (walk b at node b mod n for
    "per_node", else uniform), each step to a uniform neighbour in the second graph with probability
    config.mixture, else in the first; numpy's default_rng(config.seed) draws the starts, then per step the
    graph and the neighbour of every walk. The module's example runs it."""
    batch, length, num_nodes = config.num_sequences, config.sequence_length, first.num_nodes
    neighbours, degrees = zip(*(_padded_neighbours(num_nodes, graph.edges) for graph in (first, second)))
    width = max(table.shape[1] for table in neighbours)
    neighbours = np.stack([np.pad(table, ((0, 0), (0, width - table.shape[1])), constant_values=-1)
                           for table in neighbours])  # [2, n, width]
    degrees = np.stack(degrees)  # [2, n]
    generator = np.random.default_rng(config.seed)
    walks = np.empty((batch, length), dtype=np.int64)
    walks[:, 0] = (np.arange(batch) % num_nodes if config.start == "per_node"
                   else generator.integers(0, num_nodes, size=batch))
    for step in range(1, length):
        current = walks[:, step - 1]
        graph = (generator.random(batch) < config.mixture).astype(np.int64)
        choice = np.floor(generator.random(batch) * degrees[graph, current]).astype(np.int64)
        walks[:, step] = neighbours[graph, current, choice]
    return walks


def layout_subspaces(means: np.ndarray, layouts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For class means [P, n, d] and the graphs' layouts [G, n, 2] (z2, z3 of each), the joint fit of
    the centred means on all layouts (see the module): each graph's variance share [P, G], and the cosines
    of the principal angles between the first two graphs' subspaces [P, 2], largest first. NaN at a
    snapshot where a node has no mean.

    Planted in orthogonal directions, the subspaces come out orthogonal, each with its share:

    >>> random = np.random.default_rng(0).normal(size=(16, 4))
    >>> columns = np.linalg.qr(random - random.mean(0))[0]   # four centred, orthonormal functions on 16 nodes
    >>> layouts = np.stack([columns[:, :2], columns[:, 2:]])
    >>> means = layouts[0] @ (3 * np.eye(2, 6)) + layouts[1] @ np.eye(2, 6, k=2)   # dims 0-1 and 2-3
    >>> shares, cosines = layout_subspaces(means[None], layouts)
    >>> shares.round(2).tolist(), cosines.round(6).tolist()
    ([[0.9, 0.1]], [[0.0, 0.0]])
    """
    means = np.asarray(means, dtype=np.float64)
    layouts = np.asarray(layouts, dtype=np.float64)
    if means.ndim != 3 or layouts.ndim != 3 or layouts.shape[1] != means.shape[1] or layouts.shape[0] < 2:
        raise ValueError(f"layout_subspaces expects means [P, n, d] and two or more layouts [G, n, 2] over the same "
                         f"n nodes, got {means.shape} and {layouts.shape}")
    graphs, width = layouts.shape[0], layouts.shape[2]
    design = np.concatenate(list(layouts - layouts.mean(1, keepdims=True)), axis=1)  # [n, G * 2]
    shares = np.full((means.shape[0], graphs), np.nan)
    cosines = np.full((means.shape[0], width), np.nan)
    for snapshot, snapshot_means in enumerate(means):
        if not np.isfinite(snapshot_means).all():
            continue
        centred = snapshot_means - snapshot_means.mean(0)
        total = float((centred ** 2).sum())
        if total == 0:
            continue
        weights = np.linalg.lstsq(design, centred, rcond=None)[0]  # [G * 2, d]
        parts = [weights[g * width:(g + 1) * width] for g in range(graphs)]
        shares[snapshot] = [float(((design[:, g * width:(g + 1) * width] @ parts[g]) ** 2).sum()) / total
                            for g in range(graphs)]
        bases = [np.linalg.svd(part.T, full_matrices=False)[0] for part in parts[:2]]  # [d, 2] each
        cosines[snapshot] = np.clip(np.linalg.svd(bases[0].T @ bases[1], compute_uv=False), 0.0, 1.0)
    return shares, cosines


def two_graph_numbers(run) -> dict[str, float]:
    """The numbers of one two-graph run (icgt.study.run_folder.Run), NaN where undefined: accuracy against
    each graph (full vocabulary, mean over walks and the scored positions of the last tenth of the context);
    the deep third's alignment of PCs 1-2 and 3-4 with each graph's z2, z3, its variance shares and its
    mean squared principal-angle cosine between the two subspaces, at the last PCA snapshot (the run's
    window of pca_window words) where every node has a mean."""
    scored = run.arrays["scored"]
    last_tenth = np.arange(scored.shape[1]) >= 0.9 * (scored.shape[1] - 1)
    numbers: dict[str, float] = {}
    for name, array in (("first", "accuracy"), ("second", "second_accuracy")):
        values = np.where(scored & last_tenth, run.arrays[array], np.nan)
        numbers[f"accuracy_{name}"] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    deep = run.layer_groups().get("deep", np.arange(len(run.layers)))
    variance = run.arrays["two_graph_variance"][deep]  # [L, P, G]
    complete = np.flatnonzero(np.isfinite(variance).all(axis=(0, 2)))
    for g, name in enumerate(GRAPH_NAMES):
        for pair in range(run.arrays["two_graph_alignment"].shape[-1]):
            values = run.arrays["two_graph_alignment"][deep][:, :, g, pair]
            numbers[f"alignment_pc{2 * pair + 1}{2 * pair + 2}_{name}"] = (
                float(values[:, complete[-1]].mean()) if complete.size else math.nan)
        numbers[f"variance_share_{name}"] = float(variance[:, complete[-1], g].mean()) if complete.size else math.nan
    cosines = run.arrays["two_graph_cosines"][deep]
    numbers["subspace_cosine_squared"] = (float((cosines[:, complete[-1]] ** 2).mean()) if complete.size
                                          else math.nan)
    return numbers


def two_graph_summary(run) -> dict[str, Any]:
    """The report's numbers of a two-graph run, JSON-ready (None where undefined): the second graph's kind,
    the mixture p, its edges, and two_graph_numbers."""
    config = run.info["config"]
    number = lambda value: round(float(value), 6) if math.isfinite(value) else None  # noqa: E731
    return {"second_graph": config["second_graph"], "mixture": config["mixture"],
            "second_edges": run.arrays["second_graph_edges"].tolist(),
            **{key: number(value) for key, value in two_graph_numbers(run).items()}}


def two_graph_sentence(summary: dict[str, Any]) -> str:
    """The report's sentence on a two-graph run, from two_graph_summary."""
    value = lambda key, format=".2f": "n/a" if summary[key] is None else f"{summary[key]:{format}}"  # noqa: E731
    kind = {"permuted": "a random relabelling of the graph", "ring": "a ring in a random order"}[summary["second_graph"]]
    cosine = summary["subspace_cosine_squared"]
    apart = ("" if cosine is None else " (0: orthogonal subspaces, 1: one plane; random planes give about 2/d)")
    return (f"Two graphs over the same words (the second {kind}, sharing no edge; each step follows it with "
            f"probability p = {summary['mixture']:g}): late accuracy {value('accuracy_first', '.3f')} against the "
            f"first graph and {value('accuracy_second', '.3f')} against the second. In the deep blocks, PCs 1-2 "
            f"align {value('alignment_pc12_first')} with the first graph's z2, z3 and {value('alignment_pc12_second')} "
            f"with the second's, PCs 3-4 {value('alignment_pc34_first')} and {value('alignment_pc34_second')}; the "
            f"class means' variance on each graph's layout is {value('variance_share_first')} and "
            f"{value('variance_share_second')}, and their subspaces meet with a mean squared principal-angle "
            f"cosine of {value('subspace_cosine_squared')}{apart}.")

