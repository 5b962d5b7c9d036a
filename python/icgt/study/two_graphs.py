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
contaminated by the other layout where the layouts correlate over the nodes.

**Chance.** A share is never 0 by chance: relabelled at random, any centred means put on average
tr([(Z'Z)^-1]_gg Z_g'Z_g) / (n - 1) of their variance on graph g's layout (Z the two layouts side by side), exactly
in expectation over relabellings whatever the means: 2/(n - 1) for layouts uncorrelated over the nodes (0.133 for
16 nodes), a little more where they correlate (0.136 for the grid and a permuted grid, 0.171 for the grid and a
ring). Its spread depends on the means: wide where they vary along one or two directions (a graph planted with
0.2 of the variance, beside another with 0.8 on its own plane, is within it). The cosines too: two planes fitted
to unrelated means meet at a squared cosine that depends on the means (near 0 where they spread over many
directions), so orthogonal subspaces are also what unrelated means give. layout_null tests both against
config.null_permutations relabellings of the nodes of the centred means, one for both layouts (the means
unrelated to either graph), drawn from config.seed and the same at every block and snapshot: each graph's
share gets an empirical p-value, beside the null's mean share and mean squared cosine (two_graph_p_value,
two_graph_null_share, two_graph_null_cosine_squared). two_graph_numbers counts the deep blocks that hold each
graph above the null at p < SIGNIFICANCE, and subspace_reading reads the subspaces (apart, one plane) only
where both graphs are in the class means above chance.

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
from typing import TYPE_CHECKING, Any, NamedTuple

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
#: Shares within this of the observed count as reaching it (layout_null's ties).
TIE_TOLERANCE = 1e-12
#: A block holds a graph above chance where its share's p-value against the relabelling null is below
#: this, the energy's level (icgt.study.aggregate.ALPHA): unrelated means pass in one block in 100; the
#: run's null_permutations must be able to reach it (1 / (1 + K) < 0.01: K >= 100).
SIGNIFICANCE = 0.01
#: A graph is in the class means where at least this share of the deep third's blocks hold it above the
#: null: most of them, and one block that misses (or passes) by noise does not decide.
REPRESENTED_BLOCKS = 0.5
#: Two represented graphs' subspaces are "apart" below this mean squared principal-angle cosine, "one
#: plane" from it: the midpoint between orthogonal planes (0) and one plane (1), where planes that share
#: one direction and are orthogonal in the other sit.
ONE_PLANE = 0.5


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


def _layout_design(means: np.ndarray, layouts: np.ndarray) -> np.ndarray:
    """The centred layouts side by side [n, G * 2], checked against the means [P, n, d]."""
    if means.ndim != 3 or layouts.ndim != 3 or layouts.shape[1] != means.shape[1] or layouts.shape[0] < 2:
        raise ValueError(f"layout_subspaces expects means [P, n, d] and two or more layouts [G, n, 2] over the same "
                         f"n nodes, got {means.shape} and {layouts.shape}")
    return np.concatenate(list(layouts - layouts.mean(1, keepdims=True)), axis=1)


def _centred_snapshots(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The snapshots [P, n, d] where every node has a mean and the means vary (the mask [P]), centred and
    reduced to their principal coordinates [P', n, min(n, d)]: the same Gram matrix over the nodes, so the
    same shares and principal angles, at a width that does not grow with the model's."""
    finite = np.isfinite(means).all(axis=(1, 2))
    centred = np.where(finite[:, None, None], means, 0.0)
    centred = centred - centred.mean(1, keepdims=True)
    valid = finite & ((centred ** 2).sum(axis=(1, 2)) > 0)
    left, singular, _ = np.linalg.svd(centred[valid], full_matrices=False)
    return left * singular[:, None, :], valid


def _joint_fit(centred: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For centred means [..., n, r] and the design [n, G * 2], each graph's variance share [..., G] and the
    cosines of the principal angles between the first two graphs' subspaces [..., 2], largest first."""
    graphs = design.shape[1] // 2
    parts = (np.linalg.pinv(design) @ centred).reshape(*centred.shape[:-2], graphs, 2, centred.shape[-1])
    fitted = np.einsum("ngw,...gwr->...gnr", design.reshape(-1, graphs, 2), parts)
    shares = (fitted ** 2).sum(axis=(-2, -1)) / (centred ** 2).sum(axis=(-2, -1))[..., None]
    bases = np.linalg.svd(np.swapaxes(parts[..., :2, :, :], -1, -2), full_matrices=False)[0]  # [..., 2, r, 2]
    cosines = np.linalg.svd(np.swapaxes(bases[..., 0, :, :], -1, -2) @ bases[..., 1, :, :], compute_uv=False)
    return shares, np.clip(cosines, 0.0, 1.0)


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
    design = _layout_design(means, layouts)
    centred, valid = _centred_snapshots(means)
    shares = np.full((means.shape[0], layouts.shape[0]), np.nan)
    cosines = np.full((means.shape[0], 2), np.nan)
    shares[valid], cosines[valid] = _joint_fit(centred, design)
    return shares, cosines


class LayoutNull(NamedTuple):
    """The relabelling null of layout_subspaces (see the module), per snapshot: each graph's empirical
    p-value of its observed share [P, G], the null's mean share [P, G] and mean squared principal-angle
    cosine [P]; NaN where layout_subspaces has none."""

    p_values: np.ndarray
    share_mean: np.ndarray
    cosine_squared_mean: np.ndarray


def relabellings(num_nodes: int, count: int, seed: int) -> np.ndarray:
    """``count`` uniform permutations of the nodes [count, n], numpy's default_rng(seed): the relabellings
    of layout_null, the same for every block and snapshot of a run."""
    return np.random.default_rng(seed).permuted(np.tile(np.arange(num_nodes), (count, 1)), axis=1)


def layout_null(means: np.ndarray, layouts: np.ndarray, permutations: np.ndarray) -> LayoutNull:
    """The joint fit of layout_subspaces with the nodes of the centred means [P, n, d] relabelled by each of
    ``permutations`` [K, n] against all layouts [G, n, 2] at once (the means unrelated to every graph): each
    graph's p-value (1 + the relabellings whose share is at least the observed) / (1 + K), the null's mean
    share and mean squared cosine.

    Unrelated means sit at the null: shares near its mean of 2/(n - 1) for uncorrelated layouts, p-values
    far from 0; a planted graph is far above it:

    >>> random = np.random.default_rng(0).normal(size=(16, 4))
    >>> layouts = np.stack(np.split(np.linalg.qr(random - random.mean(0))[0], 2, axis=1))
    >>> means = np.stack([np.random.default_rng(1).normal(size=(16, 6)), layouts[0] @ np.eye(2, 6)])
    >>> null = layout_null(means, layouts, relabellings(16, 999, seed=0))
    >>> null.p_values.round(3).tolist(), null.share_mean.round(2).tolist()
    ([[0.789, 0.706], [0.001, 1.0]], [[0.13, 0.13], [0.13, 0.14]])
    """
    means = np.asarray(means, dtype=np.float64)
    layouts = np.asarray(layouts, dtype=np.float64)
    design = _layout_design(means, layouts)
    centred, valid = _centred_snapshots(means)
    observed = _joint_fit(centred, design)[0]  # [P', G]
    null_shares, null_cosines = _joint_fit(centred[:, permutations], design)  # [P', K, G], [P', K, 2]
    # A relabelling that is a symmetry of the layouts gives the observed share back up to rounding: a tie.
    at_least = null_shares >= observed[:, None] - TIE_TOLERANCE
    snapshots, graphs = means.shape[0], layouts.shape[0]
    null = LayoutNull(np.full((snapshots, graphs), np.nan), np.full((snapshots, graphs), np.nan),
                      np.full(snapshots, np.nan))
    null.p_values[valid] = (1 + at_least.sum(1)) / (1 + len(permutations))
    null.share_mean[valid] = null_shares.mean(1)
    null.cosine_squared_mean[valid] = (null_cosines ** 2).mean(axis=(1, 2))
    return null


def two_graph_numbers(run) -> dict[str, float]:
    """The numbers of one two-graph run (icgt.study.run_folder.Run), NaN where undefined: accuracy against
    each graph (full vocabulary, mean over walks and the scored positions of the last tenth of the context);
    the deep third's alignment of PCs 1-2 and 3-4 with each graph's z2, z3, its variance shares and its
    mean squared principal-angle cosine between the two subspaces, at the last PCA snapshot (the run's
    window of pca_window words) where every node has a mean; there too the relabelling null (layout_null):
    the share of the deep blocks where each graph's share is above it at p < SIGNIFICANCE (NaN where the
    run's relabellings are too few to reach that level), its mean share per graph and mean squared cosine."""
    scored = run.arrays["scored"]
    last_tenth = np.arange(scored.shape[1]) >= 0.9 * (scored.shape[1] - 1)
    numbers: dict[str, float] = {}
    for name, array in (("first", "accuracy"), ("second", "second_accuracy")):
        values = np.where(scored & last_tenth, run.arrays[array], np.nan)
        numbers[f"accuracy_{name}"] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    deep = run.layer_groups().get("deep", np.arange(len(run.layers)))
    complete = np.flatnonzero(np.isfinite(run.arrays["two_graph_variance"][deep]).all(axis=(0, 2)))

    def at_last(name: str) -> np.ndarray:  # the deep blocks at the last complete snapshot; NaN where none is
        values = run.arrays[name][deep]
        return values[:, complete[-1]] if complete.size else np.full((len(deep), *values.shape[2:]), np.nan)

    testable = bool(complete.size) and 1 / (1 + run.info["config"]["null_permutations"]) < SIGNIFICANCE
    alignment, variance, null_share = (at_last(name) for name in
                                       ("two_graph_alignment", "two_graph_variance", "two_graph_null_share"))
    above = at_last("two_graph_p_value") < SIGNIFICANCE
    for g, name in enumerate(GRAPH_NAMES):
        for pair in range(alignment.shape[-1]):
            numbers[f"alignment_pc{2 * pair + 1}{2 * pair + 2}_{name}"] = float(alignment[:, g, pair].mean())
        numbers[f"variance_share_{name}"] = float(variance[:, g].mean())
        numbers[f"blocks_above_null_{name}"] = float(above[:, g].mean()) if testable else math.nan
        numbers[f"null_share_{name}"] = float(null_share[:, g].mean())
    numbers["subspace_cosine_squared"] = float((at_last("two_graph_cosines") ** 2).mean())
    numbers["null_cosine_squared"] = float(at_last("two_graph_null_cosine_squared").mean())
    return numbers


def subspace_reading(numbers: dict[str, Any]) -> str | None:
    """What two_graph_numbers (or their means over seeds; None as NaN) say of the two graphs' subspaces: a
    graph is in the class means where at least REPRESENTED_BLOCKS of the deep blocks hold it above the null;
    only where both are, "apart" (mean squared cosine below ONE_PLANE) or "one plane"; else "not
    comparable: ..." naming the graph that is not. None where the null could not be tested.

    >>> subspace_reading({"blocks_above_null_first": 1.0, "blocks_above_null_second": 0.2,
    ...                   "subspace_cosine_squared": 0.01})
    'not comparable: the second graph is not in the class means above chance'
    """
    above = [numbers[f"blocks_above_null_{name}"] for name in GRAPH_NAMES]
    cosine = numbers["subspace_cosine_squared"]
    if any(value is None or not math.isfinite(value) for value in above):
        return None
    represented = [value >= REPRESENTED_BLOCKS for value in above]
    if all(represented):
        return None if cosine is None or not math.isfinite(cosine) else ("apart" if cosine < ONE_PLANE else "one plane")
    if not any(represented):
        return "not comparable: neither graph is in the class means above chance"
    missing = GRAPH_NAMES[represented.index(False)]
    return f"not comparable: the {missing} graph is not in the class means above chance"


def two_graph_summary(run) -> dict[str, Any]:
    """The report's numbers of a two-graph run, JSON-ready (None where undefined): the second graph's kind,
    the mixture p, its edges, two_graph_numbers and their subspace_reading."""
    config = run.info["config"]
    numbers = two_graph_numbers(run)
    number = lambda value: round(float(value), 6) if math.isfinite(value) else None  # noqa: E731
    return {"second_graph": config["second_graph"], "mixture": config["mixture"],
            "second_edges": run.arrays["second_graph_edges"].tolist(),
            **{key: number(value) for key, value in numbers.items()}, "subspace_reading": subspace_reading(numbers)}


def two_graph_sentence(summary: dict[str, Any]) -> str:
    """The report's sentence on a two-graph run, from two_graph_summary."""
    value = lambda key, format=".2f": "n/a" if summary[key] is None else f"{summary[key]:{format}}"  # noqa: E731
    kind = {"permuted": "a random relabelling of the graph", "ring": "a ring in a random order"}[summary["second_graph"]]
    reading = summary["subspace_reading"] or "not read (too few relabellings to reach the level)"
    return (f"Two graphs over the same words (the second {kind}, sharing no edge; each step follows it with "
            f"probability p = {summary['mixture']:g}): late accuracy {value('accuracy_first', '.3f')} against the "
            f"first graph and {value('accuracy_second', '.3f')} against the second. In the deep blocks, PCs 1-2 "
            f"align {value('alignment_pc12_first')} with the first graph's z2, z3 and {value('alignment_pc12_second')} "
            f"with the second's, PCs 3-4 {value('alignment_pc34_first')} and {value('alignment_pc34_second')}; the "
            f"class means' variance on each graph's layout is {value('variance_share_first')} and "
            f"{value('variance_share_second')} (relabelled nodes give {value('null_share_first')} and "
            f"{value('null_share_second')}), above that null at p < {SIGNIFICANCE:g} in "
            f"{value('blocks_above_null_first', '.0%')} and {value('blocks_above_null_second', '.0%')} of the deep "
            f"blocks; their subspaces meet with a mean squared principal-angle cosine of "
            f"{value('subspace_cosine_squared')} (0: orthogonal, 1: one plane; relabelled nodes give "
            f"{value('null_cosine_squared')}). The subspaces: {reading}.")
