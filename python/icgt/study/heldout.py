"""Held-out edges: inference or recall?

The walks of a held-out run never traverse some edges of the graph (config.held_out_edges: the walk is
a random walk on the graph without them, "the shown graph"). After a node u with a held-out partner v,
the model's probability of v's word is compared with its probability of three kinds of word, each
averaged over its words, at the same positions (only where u has a held-out partner):

- **shown neighbour**: w joined to u in the shown graph (what the context teaches);
- **distance two**: w two steps from u in the full graph (never next to u, in the context or the graph);
- **same shown distance**: w as far from u in the shown graph as v is, and not a neighbour in the full
  graph (what a model that only spreads the shown graph's geometry gives v).

Bigram recall (induction heads copying what followed u before) gives v what it gives a never-seen
word: held-out = distance two. A model that has inferred the full graph gives v more than both
non-neighbours, up to what it gives a shown neighbour. The **inference index** puts v on that scale:
(held-out - reference) / (shown neighbour - reference), 0 at the reference, 1 at a shown neighbour,
for each reference (distance two, same shown distance).

The geometry is measured the same way on the class means of every captured block: the distance between
the two means of each held-out pair against the pairs of each kind, relative to the mean distance over
all pairs.

Example (the probabilities of one position after node 0, whose held-out partner is node 1, on a path 0-1-2-3
of which 0-1 is held out and 0-3 shown):
    >>> from icgt.study.heldout import pair_classes, HELDOUT_CLASSES
    >>> classes = pair_classes(4, [(1, 2), (2, 3), (0, 3)], [(0, 1)])
    >>> [np.flatnonzero(classes[c, 0]).tolist() for c in range(len(HELDOUT_CLASSES))]
    [[1], [3], [2], []]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

    from .._icgt import Graph

#: The kinds of word compared after a node with a held-out partner, in the order of the arrays.
HELDOUT_CLASSES = ("held_out", "shown_neighbour", "distance_two", "same_shown_distance")
HELD_OUT, SHOWN, DISTANCE_TWO, SAME_DISTANCE = range(len(HELDOUT_CLASSES))
#: The references of the inference index, in the order of its arrays.
INDEX_REFERENCES = (DISTANCE_TWO, SAME_DISTANCE)
#: The smallest inference index that counts: a tenth of the way from a non-neighbour to a shown neighbour.
#: Inference needs both intervals above it; recall, the interval against distance two below it (an
#: induction-only model's index differs from 0 by 1e-7, far inside its resamples' spread but no effect).
NEGLIGIBLE_INDEX = 0.1
#: How many times a non-neighbour's probability a shown neighbour must get for the model to count as
#: following the shown graph (follows_shown_graph).
FOLLOWING_RATIO = 2.0


def shown_graph(full: Graph, held_out: list[tuple[int, int]]) -> Graph:
    """The graph without the held-out edges, labelled as ``full``.

    >>> shown_graph(icgt.Graph.ring(4), [(0, 1)]).num_edges
    3
    """
    from .._icgt import Graph  # the compiled core, only when a graph is built

    removed = {tuple(sorted(edge)) for edge in held_out}
    missing = removed - {tuple(sorted(edge)) for edge in full.edges}
    if missing:
        raise ValueError(f"held-out edges {sorted(missing)} are not edges of the graph")
    shown = Graph.from_edges(full.num_nodes, [edge for edge in full.edges if tuple(sorted(edge)) not in removed])
    shown.labels = list(full.labels)
    return shown


def _shown_and_full_distances(num_nodes: int, shown_edges, held_out: list[tuple[int, int]]
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Shortest-path lengths [n, n] in the shown graph and in the full one (shown plus held-out edges), from
    the edge lists alone (scipy), so that a report reads them without the compiled core."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    def distances(edges) -> np.ndarray:
        edges = np.asarray(list(edges), dtype=np.int64).reshape(-1, 2)
        adjacency = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_nodes, num_nodes))
        return shortest_path(adjacency.tocsr(), directed=False, unweighted=True)

    shown_edges = [tuple(edge) for edge in shown_edges]
    return distances(shown_edges), distances([*shown_edges, *held_out])


def pair_classes(num_nodes: int, shown_edges, held_out: list[tuple[int, int]]) -> np.ndarray:
    """Boolean masks [C, n, n] (C = len(HELDOUT_CLASSES)): entry [c, u, w] says that word w is of kind c
    after node u. Only nodes u with a held-out partner have any. The kinds can overlap (a node two steps
    away in the full graph can also be as far as the partner in the shown graph); a held-out partner and
    the full graph's neighbours of u are never in the non-neighbour kinds."""
    shown_distance, full_distance = _shown_and_full_distances(num_nodes, shown_edges, held_out)
    n = num_nodes
    classes = np.zeros((len(HELDOUT_CLASSES), n, n), dtype=bool)
    for a, b in held_out:
        for u, v in ((a, b), (b, a)):
            classes[HELD_OUT, u, v] = True
    for u in np.flatnonzero(classes[HELD_OUT].any(axis=1)):
        partners = np.flatnonzero(classes[HELD_OUT, u])
        classes[SHOWN, u] = shown_distance[u] == 1
        classes[DISTANCE_TWO, u] = full_distance[u] == 2
        same = np.isin(shown_distance[u], shown_distance[u, partners]) & (full_distance[u] > 1)
        same[partners] = False
        classes[SAME_DISTANCE, u] = same
    return classes


def class_probabilities(target_probs: np.ndarray, nodes: np.ndarray, scored: np.ndarray,
                        classes: np.ndarray) -> np.ndarray:
    """The mean probability per word of each kind [C, B, T] at each scored position whose node has a held-out
    partner (NaN elsewhere, and for a kind with no word after that node), from the node words'
    next-token probabilities [B, T, n] and the node sequences [B, T].

    >>> probs = np.full((1, 2, 4), 0.1); probs[0, 1, 1] = 0.4
    >>> classes = pair_classes(4, [(1, 2), (2, 3), (0, 3)], [(0, 1)])
    >>> class_probabilities(probs, np.array([[-1, 0]]), np.array([[False, True]]), classes)[:, 0, 1].tolist()
    [0.4, 0.1, 0.1, nan]
    """
    current = np.where(nodes >= 0, nodes, 0)
    masks = classes[:, current]  # [C, B, T, n]
    counts = masks.sum(-1)
    totals = (masks * target_probs[None]).sum(-1)
    applies = scored & (nodes >= 0) & classes[HELD_OUT].any(axis=1)[current]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(applies[None] & (counts > 0), totals / counts, np.nan)


def heldout_arrays(config, shown: Graph, target_probs: torch.Tensor, nodes: np.ndarray, scored: np.ndarray,
                   window_sums: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """The probability arrays of a held-out run (docs/run-format.md): heldout_edges [E, 2],
    heldout_probability [C, S3] (each kind's mean probability per word over the timing windows of
    icgt.study.analysis, the trailing half of the context before each position: ``window_sums`` gives the
    per-sequence sums and counts [B, S3] of the finite values of a [B, T] array over them), and
    heldout_final [1 + R, C] (the same over the last timing window: the run, then config.bootstrap
    resamples of its sequences, with replacement), for a run on the ``shown`` graph."""
    held_out = [tuple(edge) for edge in config.held_out_edges]
    classes = pair_classes(shown.num_nodes, shown.edges, held_out)
    values = class_probabilities(target_probs.float().cpu().numpy(), nodes, scored, classes)
    sums, counts = zip(*(window_sums(values[c]) for c in range(len(HELDOUT_CLASSES))))
    sums, counts = np.stack(sums), np.stack(counts)  # [C, B, S3]
    batch = nodes.shape[0]
    draws = np.random.default_rng(config.seed).integers(0, batch, size=(config.bootstrap, batch))
    weights = np.concatenate([np.ones((1, batch)), np.stack([np.bincount(d, minlength=batch) for d in draws])
                              if config.bootstrap else np.zeros((0, batch))])
    with np.errstate(invalid="ignore", divide="ignore"):
        curves = sums.sum(1) / counts.sum(1)
        final = (weights @ sums[:, :, -1].T) / (weights @ counts[:, :, -1].T)
    return {"heldout_edges": np.array(held_out, dtype=np.int64).reshape(-1, 2), "heldout_probability": curves,
            "heldout_final": final}


def pair_kinds(num_nodes: int, shown_edges, held_out: list[tuple[int, int]]) -> np.ndarray:
    """Boolean masks [C, n, n] of the node pairs of each kind, over the whole graph (every pair, not only the
    held-out partners): held-out pairs; shown edges; pairs two steps apart in the full graph; pairs as far
    apart in the shown graph as a held-out pair and not joined in the full graph.

    >>> pair_kinds(4, [(1, 2), (2, 3), (0, 3)], [(0, 1)])[:, 0].astype(int).tolist()
    [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    """
    shown_distance, full_distance = _shown_and_full_distances(num_nodes, shown_edges, held_out)
    held = np.zeros((num_nodes, num_nodes), dtype=bool)
    for a, b in held_out:
        held[a, b] = held[b, a] = True
    return np.stack([held, shown_distance == 1, full_distance == 2,
                     np.isin(shown_distance, shown_distance[held]) & (full_distance > 1) & ~held])


def pair_distances(kinds: np.ndarray, means: np.ndarray) -> np.ndarray:
    """For class means [P, n, d] (float64; NaN rows for unseen nodes), the mean distance between the means of the
    node pairs of each kind (pair_kinds) [P, C], each over the mean distance of all pairs."""
    upper = np.triu(np.ones(kinds.shape[1:], dtype=bool), k=1)
    distances = np.sqrt(((means[:, :, None] - means[:, None]) ** 2).sum(-1))  # [P, n, n]
    overall = np.nanmean(np.where(upper, distances, np.nan), axis=(1, 2))
    with np.errstate(invalid="ignore"):
        return np.stack([np.nanmean(np.where(kind & upper, distances, np.nan), axis=(1, 2)) / overall
                         for kind in kinds], axis=-1)


def plane_distances(run) -> dict[str, np.ndarray]:
    """pair_distances in a plane for a held-out run: "model" [L, C], of the class means' drawn principal
    components (the PCA figure's plane) at the last PCA snapshot of each captured block; and the references
    [C], "shown_layout" and "full_layout", of the spectral layout (Laplacian eigenvectors z2, z3) of the
    shown graph and of the full graph: where a model whose geometry follows what it was shown, or the whole
    graph, would put each kind of pair."""
    held_out = [tuple(e) for e in run.arrays["heldout_edges"].tolist()]
    shown = run.edges.tolist()
    kinds = pair_kinds(len(run.labels), shown, held_out)
    projections = run.arrays["pca_projections"][:, -1][..., run.info["config"]["pca_components"]]
    return {"model": pair_distances(kinds, projections.astype(np.float64)),
            **{name: pair_distances(kinds, _spectral_layout(len(run.labels), edges)[None])[0]
               for name, edges in (("shown_layout", shown), ("full_layout", [*map(tuple, shown), *held_out]))}}


def _spectral_layout(num_nodes: int, edges) -> np.ndarray:
    """The eigenvectors z2, z3 of the Laplacian D - A [n, 2] (the plane is unique where z3's eigenvalue is not
    also z4's, and distances within an eigenspace do not depend on its basis)."""
    adjacency = np.zeros((num_nodes, num_nodes))
    for a, b in edges:
        adjacency[a, b] = adjacency[b, a] = 1
    return np.linalg.eigh(np.diag(adjacency.sum(1)) - adjacency)[1][:, 1:3]


def inference_index(values: np.ndarray, reference: int) -> np.ndarray:
    """(held-out - reference) / (shown neighbour - reference) over the last axis of ``values`` [..., C]
    (probabilities), NaN where the shown neighbour is not above the reference.

    >>> inference_index(np.array([0.2, 0.3, 0.1, 0.1]), DISTANCE_TWO).round(3).tolist()
    0.5
    """
    gap = values[..., SHOWN] - values[..., reference]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gap > 0, (values[..., HELD_OUT] - values[..., reference]) / gap, np.nan)


def follows_shown_graph(replicates: np.ndarray) -> bool:
    """Whether the model follows the shown graph well enough for the inference index to mean anything: a
    shown neighbour gets at least FOLLOWING_RATIO times what each non-neighbour reference gets, in the run
    (the first row of class values [1 + R, C]) and in 97.5% of the resamples. Where it does not, the index
    divides by a gap of noise (a model with random weights gave -1.8 on one seed and +1.5 on another)."""
    shown = replicates[:, SHOWN]
    for reference in INDEX_REFERENCES:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = shown / replicates[:, reference]
        resampled = ratio[1:] if len(ratio) > 1 else ratio
        if not (ratio[0] >= FOLLOWING_RATIO and np.mean(resampled >= FOLLOWING_RATIO) >= 0.975):
            return False
    return True


def decide(replicates: np.ndarray) -> dict:
    """The inference index against each reference, from class values [1 + R, C] (the run or mean over
    seeds first, then resamples): its value, 95% percentile interval, and what it says: "inference"
    (both intervals above NEGLIGIBLE_INDEX: the held-out neighbour gets more than both non-neighbours),
    "recall" (the interval against distance two below NEGLIGIBLE_INDEX: no more than a non-neighbour, or
    a negligible excess), else "undecided"; always "undecided" where the model does not follow the shown
    graph (follows_shown_graph, also returned as ``follows``).

    >>> decide(np.array([[0.3, 0.3, 0.01, 0.01]] * 5))["reading"]
    'inference'
    >>> decide(np.array([[0.01, 0.3, 0.01, 0.01]] * 5))["reading"]
    'recall'
    >>> decide(np.array([[0.01, 0.012, 0.01, 0.01]] * 5))["reading"]
    'undecided'
    """
    result = {}
    for reference in INDEX_REFERENCES:
        index = inference_index(replicates, reference)
        resampled = index[1:][np.isfinite(index[1:])] if len(index) > 1 else index[np.isfinite(index)]
        ci95 = [float(v) for v in np.percentile(resampled, [2.5, 97.5])] if resampled.size else [np.nan, np.nan]
        result[HELDOUT_CLASSES[reference]] = {"index": float(index[0]), "ci95": ci95}
    against_two = result[HELDOUT_CLASSES[DISTANCE_TWO]]["ci95"]
    lower_bounds = [result[HELDOUT_CLASSES[r]]["ci95"][0] for r in INDEX_REFERENCES]
    follows = follows_shown_graph(replicates)
    if not follows:
        reading = "undecided"
    elif all(np.isfinite(bound) and bound > NEGLIGIBLE_INDEX for bound in lower_bounds):
        reading = "inference"
    elif np.isfinite(against_two[1]) and against_two[1] < NEGLIGIBLE_INDEX:
        reading = "recall"
    else:
        reading = "undecided"
    result["reading"] = reading
    result["follows"] = follows
    return result


def heldout_summary(run) -> dict:
    """The held-out numbers of a run (icgt.study.run_folder.Run), JSON-ready: each kind's probability per
    word over the trailing half of the context, the inference index against each reference with its
    interval over resamples of the sequences and its reading (decide), and the geometry: each kind's
    relative distance between class means, averaged over the deep third of the captured blocks at the
    last snapshot, in the full space (geometry_distance) and in the plane of the PCA figure's two
    components (plane_distance), beside the same distances in the spectral layouts of the shown and of the
    full graph (plane_distances)."""
    final = run.arrays["heldout_final"]
    deep = run.layer_groups().get("deep", np.arange(len(run.layers)))
    distances = run.arrays["heldout_distances"][deep]
    finite = np.flatnonzero(np.isfinite(distances).all(axis=(0, 2)))
    geometry = distances[:, finite[-1]].mean(0) if finite.size else np.full(len(HELDOUT_CLASSES), np.nan)
    planes = plane_distances(run)
    plane = planes["model"][deep].mean(0)
    number = lambda value: None if not np.isfinite(value) else round(float(value), 6)  # noqa: E731
    decision = decide(final)
    return {
        "edges": run.arrays["heldout_edges"].tolist(),
        "probability": {kind: number(value) for kind, value in zip(HELDOUT_CLASSES, final[0])},
        **{f"index_vs_{kind}": {"index": number(value["index"]), "ci95": [number(v) for v in value["ci95"]]}
           for kind, value in decision.items() if kind not in ("reading", "follows")},
        "reading": decision["reading"],
        "follows_shown_graph": decision["follows"],
        "spread": spread(final),
        "geometry_distance": {kind: number(value) for kind, value in zip(HELDOUT_CLASSES, geometry)},
        **{f"{name}_distance": {kind: number(value) for kind, value in zip(HELDOUT_CLASSES, values)}
           for name, values in (("plane", plane), ("shown_layout", planes["shown_layout"]),
                                ("full_layout", planes["full_layout"]))},
    }


def spread(replicates: np.ndarray) -> dict:
    """How far a word two steps away gets toward a shown neighbour from one as far as the held-out partner
    in the shown graph (the inference index's form with a two-step word in the held-out word's place),
    from class values [1 + R, C]: 0 for bigram recall, which gives every unseen pair the same, more where
    predictions spread along the shown graph. Its value and 95% interval over the resamples (None where the
    model does not follow the shown graph).

    >>> spread(np.array([[0.0, 0.3, 0.04, 0.01]] * 3))["index"]
    0.103448
    """
    if not follows_shown_graph(replicates):
        return {"index": None, "ci95": [None, None]}  # a gap of noise: see follows_shown_graph
    values = replicates[..., [DISTANCE_TWO, SHOWN, DISTANCE_TWO, SAME_DISTANCE]]
    spread = inference_index(values, SAME_DISTANCE)
    resampled = spread[1:][np.isfinite(spread[1:])]
    ci95 = [round(float(v), 6) for v in np.percentile(resampled, [2.5, 97.5])] if resampled.size else [None, None]
    return {"index": None if not np.isfinite(spread[0]) else round(float(spread[0]), 6), "ci95": ci95}


#: What each reading says, in the report's words.
READINGS = {
    "inference": "the model gives the held-out neighbour more than both non-neighbours: it uses more of the "
                 "graph than the pairs it was shown (inference, not bigram recall alone)",
    "recall": "the held-out neighbour gets no more than a non-neighbour: the missing edges are not inferred, as "
              "bigram recall predicts",
    "undecided": "neither bigram recall nor inference is clear at this precision",
}


NOT_FOLLOWING = (f"undecided: a shown neighbour does not get {FOLLOWING_RATIO:g} times what a non-neighbour gets, so "
                 "the model does not follow the shown graph and the question cannot be asked of it")


def heldout_sentence(summary: dict) -> str:
    """The report's sentence on a held-out run, from heldout_summary."""
    p = summary["probability"]
    two, same = summary["index_vs_distance_two"], summary["index_vs_same_shown_distance"]
    g = summary["geometry_distance"]
    percent = lambda value: "n/a" if value is None else f"{100 * value:.2g}%"  # noqa: E731
    interval = lambda value: ("n/a" if value["index"] is None else  # noqa: E731
                              f"{value['index']:.2f} [{value['ci95'][0]:.2f}, {value['ci95'][1]:.2f}]"
                              if None not in value["ci95"] else f"{value['index']:.2f}")
    plane = summary["plane_distance"]
    geometry = ("" if g["held_out"] is None or plane["held_out"] is None else
                f" In the deep blocks' class means (relative to all pairs; in the plane of the PCA figure) the "
                f"held-out pairs lie {g['held_out']:.2f} ({plane['held_out']:.2f}) apart, shown neighbours "
                f"{g['shown_neighbour']:.2f} ({plane['shown_neighbour']:.2f}), pairs two steps apart "
                f"{g['distance_two']:.2f} ({plane['distance_two']:.2f}), pairs as far apart in what was shown "
                f"{g['same_shown_distance']:.2f} ({plane['same_shown_distance']:.2f}). The shown graph's own "
                f"layout (z2, z3) puts held-out pairs at {summary['shown_layout_distance']['held_out']:.2f}, the "
                f"full graph's at {summary['full_layout_distance']['held_out']:.2f}.")
    return (f"Held-out edges ({len(summary['edges'])} never walked): after a word whose neighbour was held out, "
            f"over the second half of the context, the model gives that neighbour {percent(p['held_out'])} per "
            f"word, a shown neighbour {percent(p['shown_neighbour'])}, a word two steps away "
            f"{percent(p['distance_two'])}, and one as far as the held-out neighbour in what was shown "
            f"{percent(p['same_shown_distance'])}. Inference index (0: a non-neighbour, 1: a shown "
            f"neighbour; 95% interval over the sequences) {interval(two)} against two steps away and "
            f"{interval(same)} against the same shown distance: "
            f"{READINGS[summary['reading']] if summary['follows_shown_graph'] else NOT_FOLLOWING}. A word two steps "
            f"away gets {interval(summary['spread'])} of the way from a word as far as the held-out one in what "
            f"was shown to a shown neighbour (0 for bigram recall alone).{geometry}")
