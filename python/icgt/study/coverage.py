"""Coverage: when does the jump happen? Accuracy against how much of the graph a walk has shown, beside
accuracy against context length, over graphs of different sizes.

The paper's first version tied the emergence of the graph's rules to seeing the graph (a percolation-like
transition). If that is so, curves of graphs of different sizes should collapse onto one curve when
plotted against **coverage** (the share of the graph's edges, or nodes, that the walk has traversed so
far), and not when plotted against context length, since a larger graph takes longer to cover.

Per walk and position t (counting words from 1, as the run's arrays do), coverage counts what the walk
has shown up to and including t: ``node_coverage`` the share of the graph's nodes that occurred, and
``edge_coverage`` the share of its edges traversed by a step between two consecutive words. Both come
from a run's ``nodes`` and its edges alone, so every graph run has them, old ones included, at no cost.
Accuracy at t (the prediction of the word after t) is then read against what the context up to t showed.

So that graphs of different sizes (and degrees) are comparable, accuracy is the **skill**: the
renormalised accuracy (probability on the current node's neighbours among the node words) above
uniform guessing, as a share of the way to 1, (accuracy - d/n) / (1 - d/n) with d the current node's
degree, n the nodes. The deep third's energy (pooled over the walks, as the run computes it) is read
against the relabelling null (its energy over the null's mean, 1: as graph-like as randomly relabelled
nodes) and against the walks' mean edge coverage at each of its snapshots.

**Collapse.** For the K sizes of one family (same model, graph kind, control and settings, only the
size differs) and one seed, each quantity is averaged per walk in bins of x, then over walks: curves
y_k(x). At each bin that every size reaches, the spread is the standard deviation over the sizes; the
**relative spread** is the mean of those spreads over the matched bins divided by the standard deviation
of all the matched values (over sizes and bins): 0 when the curves lie on one another, about 1 when x
explains none of the differences. It is computed once with x = context length (CONTEXT_BINS_PER_DOUBLING
bins per doubling) and once with x = edge coverage (COVERAGE_BINS equal bins of [0, 1]); the difference
(context - coverage) says which axis lines the curves up better (positive: coverage), with a 95% t
interval over seeds (icgt.study.intervals).

Example (two walks on a path 0-1-2: the second walk's first step is not an edge):
    >>> from icgt.study.coverage import coverage
    >>> nodes = np.array([[-1, 0, 1, 0, 1, 2], [-1, 2, 0, 1, 1, 2]])
    >>> nodes_seen, edges_seen = coverage(nodes, np.array([[0, 1], [1, 2]]), 3)
    >>> edges_seen.tolist()
    [[0.0, 0.0, 0.5, 0.5, 0.5, 1.0], [0.0, 0.0, 0.0, 0.5, 0.5, 1.0]]
    >>> nodes_seen[0].round(2).tolist()
    [0.0, 0.33, 0.67, 0.67, 0.67, 1.0]
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .curves import ACCURACY_BINS_PER_DOUBLING, nanmean
from .aggregate import interval
from .run_folder import Run, load_run

#: Bins of context length per doubling, and of edge coverage over [0, 1] (the last one closed: it holds
#: the walks that have seen every edge).
CONTEXT_BINS_PER_DOUBLING = ACCURACY_BINS_PER_DOUBLING
COVERAGE_BINS = 10
#: The axes a collapse is measured on, in the order of the tables.
AXES = ("context", "coverage")
#: The quantities whose collapse is measured: accuracy's skill and the deep third's energy over its null.
QUANTITIES = ("skill", "energy")
#: Config keys that may differ within a family of runs (the graph's size and what follows from it) or
#: between its seeds.
SIZE_KEYS = ("graph_size", "words", "preset", "pca_positions", "seed", "num_sequences")


def seen_share(ids: np.ndarray, count: int) -> np.ndarray:
    """Per row of ids [B, T] (-1: nothing at that position), the share of the ``count`` distinct ids that
    occurred at or before each position [B, T].

    >>> seen_share(np.array([[-1, 3, 3, 0, -1, 1]]), 4).tolist()
    [[0.0, 0.25, 0.25, 0.5, 0.5, 0.75]]
    """
    if count <= 0:
        raise ValueError(f"seen_share needs a positive number of distinct ids, got {count}")
    share = np.zeros(ids.shape)
    for row, values in enumerate(ids):
        present = np.flatnonzero(values >= 0)
        _, first = np.unique(values[present], return_index=True)
        new = np.zeros(values.shape[0])
        new[present[first]] = 1.0
        share[row] = np.cumsum(new) / count
    return share


def coverage(nodes: np.ndarray, edges: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(node_coverage, edge_coverage), each [B, T]: the share of the graph's nodes that occurred at or
    before each position of each walk, and of its edges traversed by a step between consecutive words
    (NOT_A_NODE positions, -1, show nothing and break steps). See the module's example."""
    nodes = np.asarray(nodes)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if nodes.ndim != 2:
        raise ValueError(f"coverage expects node sequences [walks, positions], got shape {nodes.shape}")
    if edges.size == 0:
        raise ValueError("coverage needs a graph with edges")
    if nodes.max(initial=-1) >= num_nodes or edges.max() >= num_nodes or edges.min() < 0:
        raise ValueError(f"coverage: nodes or edges outside 0..{num_nodes - 1} (the graph's {num_nodes} nodes)")
    edge_index = np.full((num_nodes, num_nodes), -1, dtype=np.int64)
    edge_index[edges[:, 0], edges[:, 1]] = edge_index[edges[:, 1], edges[:, 0]] = np.arange(len(edges))
    previous, current = nodes[:, :-1], nodes[:, 1:]
    valid = (previous >= 0) & (current >= 0)
    steps = np.where(valid, edge_index[np.maximum(previous, 0), np.maximum(current, 0)], -1)
    steps = np.concatenate([np.full((nodes.shape[0], 1), -1, dtype=np.int64), steps], axis=1)
    return seen_share(np.where(nodes >= 0, nodes, -1), num_nodes), seen_share(steps, len(edges))


def accuracy_skill(run: Run) -> np.ndarray:
    """Per walk and position [B, T], the renormalised accuracy's skill over uniform guessing, (accuracy -
    d/n) / (1 - d/n) with d the current node's degree (NaN where the position is not scored).

    >>> from icgt.study.run_folder import load_run
    >>> skill = accuracy_skill(load_run(grid_run))
    >>> bool(np.isnan(skill[0, 0])), bool(np.nanmean(skill[:, -100:]) > 0.5)
    (True, True)
    """
    nodes, scored = run.arrays["nodes"], run.arrays["scored"]
    num_nodes = len(run.labels)
    degree = np.bincount(run.edges.ravel(), minlength=num_nodes)
    chance = np.where(nodes >= 0, degree[np.maximum(nodes, 0)] / num_nodes, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        skill = (run.arrays["accuracy_renormalized"] - chance) / (1 - chance)
    return np.where(scored & (nodes >= 0) & (chance < 1), skill, np.nan)


def context_bin_edges(length: int) -> np.ndarray:
    """Edges of the context-length bins from position 1 to ``length`` (CONTEXT_BINS_PER_DOUBLING per doubling).

    >>> context_bin_edges(8).tolist()
    [1.0, 1.414, 2.0, 2.828, 4.0, 5.657, 8.0]
    """
    steps = math.ceil(math.log2(max(length, 2)) * CONTEXT_BINS_PER_DOUBLING)
    return np.round(2.0 ** (np.arange(steps + 1) / CONTEXT_BINS_PER_DOUBLING), 3)


def coverage_bin_edges() -> np.ndarray:
    """Edges of the coverage bins: COVERAGE_BINS equal bins of [0, 1].

    >>> coverage_bin_edges()[:3].tolist()
    [0.0, 0.1, 0.2]
    """
    return np.linspace(0.0, 1.0, COVERAGE_BINS + 1)


def binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The mean of y over walks of each walk's mean y in each bin of x [bins] (the last bin closed; NaN
    where no walk has a finite y in a bin): every walk counts alike, however many positions it has there.

    >>> binned(np.array([[0.0, 0.5, 1.0]]), np.array([[1.0, 2.0, 4.0]]), np.array([0.0, 0.5, 1.0])).tolist()
    [1.0, 3.0]
    """
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    bins = len(edges) - 1
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    usable = np.isfinite(y) & np.isfinite(x) & (x >= edges[0]) & (x <= edges[-1])
    per_walk = np.full((x.shape[0], bins), np.nan)
    for walk in range(x.shape[0]):
        chosen = usable[walk]
        totals = np.bincount(which[walk, chosen], weights=y[walk, chosen], minlength=bins)
        counts = np.bincount(which[walk, chosen], minlength=bins)
        per_walk[walk] = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
    return nanmean(per_walk)


def run_curves(run: Run, length: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """A run's curves for the collapse: {quantity: {axis: curve [bins]}} for QUANTITIES against AXES
    (context bins up to ``length``, default the run's own length), and "edge_coverage": {"context": the
    mean edge coverage over walks in each context bin}.

    >>> from icgt.study.run_folder import load_run
    >>> curves = run_curves(load_run(grid_run))
    >>> sorted(curves), curves["skill"]["coverage"].shape
    (['edge_coverage', 'energy', 'skill'], (10,))
    """
    nodes = run.arrays["nodes"]
    length = length or nodes.shape[1] - 1
    positions = np.broadcast_to(np.arange(nodes.shape[1], dtype=float), nodes.shape)
    _, edges_seen = coverage(nodes, run.edges, len(run.labels))
    context_edges, coverage_edges = context_bin_edges(length), coverage_bin_edges()
    skill = accuracy_skill(run)
    curves = {"skill": {"context": binned(positions, skill, context_edges),
                        "coverage": binned(edges_seen, skill, coverage_edges)},
              "edge_coverage": {"context": binned(positions, edges_seen, context_edges)}}
    # The energy pools the walks (a single walk's window of 20 words rarely holds every node): its
    # coverage is the walks' mean coverage at each snapshot.
    at = run.arrays["energy_positions"]
    deep = run.layer_groups().get("deep", np.arange(len(run.layers)))
    with np.errstate(invalid="ignore", divide="ignore"):
        energy = nanmean(run.arrays["energy"][deep]) / nanmean(run.arrays["energy_null_mean"][deep])  # [S]
    curves["energy"] = {"context": binned(at[None].astype(float), energy[None], context_edges),
                        "coverage": binned(edges_seen[:, at].mean(0)[None], energy[None], coverage_edges)}
    return curves


def coverage_reached(run: Run, shares: tuple[float, ...] = (0.5, 1.0)) -> dict[float, float]:
    """For each share of the graph's edges, the median over walks of the first position where the walk has
    traversed that share (NaN when half the walks never do).

    >>> from icgt.study.run_folder import load_run
    >>> reached = coverage_reached(load_run(grid_run))
    >>> bool(reached[0.5] < reached[1.0])
    True
    """
    _, edges_seen = coverage(run.arrays["nodes"], run.edges, len(run.labels))
    result = {}
    for share in shares:
        reached = edges_seen >= share - 1e-9
        first = np.where(reached.any(axis=1), reached.argmax(axis=1), np.inf)
        median = float(np.median(first))
        result[share] = median if math.isfinite(median) else math.nan
    return result


def relative_spread(curves: np.ndarray) -> dict[str, float]:
    """How far curves [K sizes, bins] lie from one another where all K have a value: "spread", the mean
    over those bins of the standard deviation over sizes; "relative", that over the standard deviation
    of all those values (0: one curve; about 1: the bins explain nothing); "bins", how many were matched.

    >>> relative_spread(np.array([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]))["relative"]
    0.0
    >>> relative_spread(np.array([[0.0, 0.0, np.nan], [1.0, 1.0, 0.5]]))
    {'spread': 0.5, 'relative': 1.0, 'bins': 2}
    """
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or curves.shape[0] < 2:
        raise ValueError(f"relative_spread compares two or more curves [sizes, bins], got shape {curves.shape}")
    matched = curves[:, np.isfinite(curves).all(axis=0)]
    if matched.shape[1] == 0:
        return {"spread": math.nan, "relative": math.nan, "bins": 0}
    spread = float(matched.std(axis=0).mean())
    total = float(matched.std())
    return {"spread": spread, "relative": spread / total if total > 0 else 0.0, "bins": int(matched.shape[1])}


def _family_key(run: Run) -> str | None:
    """What a run shares with the other sizes of its family (None for runs that have no place in one)."""
    config = run.info["config"]
    if config.get("experiment", "graph") != "graph" or config.get("held_out_edges") or config.get("second_graph"):
        return None
    if config.get("mode", "walk") != "walk" or "accuracy_renormalized" not in run.arrays:
        return None
    shared = {key: value for key, value in config.items() if key not in SIZE_KEYS}
    # A model by its name, as run folders name it: a model file per graph size (a toy's) still makes one family.
    shared["model"] = Path(str(config["model"])).stem
    return repr(sorted(shared.items()))


def size_of(run: Run) -> str:
    """A run's graph size as the tables print it, e.g. "4x4" or "12" (config.graph_size; the number of nodes
    for a run whose config does not say).

    >>> from icgt.study.run_folder import load_run
    >>> size_of(load_run(grid_run)), size_of(load_run(days_run))
    ('16', '7')
    """
    return "x".join(str(side) for side in run.info["config"].get("graph_size") or [len(run.labels)])


def families(runs: list[Run]) -> list[dict[str, Any]]:
    """The runs grouped into families that differ only in the graph's size (and seed): each
    {"runs": {seed: {size: Run}}, "sizes": sizes by node count} for families with two sizes or more.
    A size that appears twice for one seed keeps its first run."""
    grouped: dict[str, dict[int, dict[str, Run]]] = {}
    for run in runs:
        key = _family_key(run)
        if key is not None:
            grouped.setdefault(key, {}).setdefault(run.info["config"].get("seed", 0), {}).setdefault(size_of(run), run)
    result = []
    for by_seed in grouped.values():
        sizes = sorted({size for runs_of_seed in by_seed.values() for size in runs_of_seed},
                       key=lambda size: math.prod(int(side) for side in size.split("x")))
        if len(sizes) >= 2:
            result.append({"runs": dict(sorted(by_seed.items())), "sizes": sizes})
    return result


def collapse(family: dict[str, Any]) -> dict[str, Any]:
    """The collapse of one family (families): for each quantity and axis, the relative spread per seed and
    its mean with a 95% t interval over seeds, the difference context - coverage likewise, and the reading:
    "coverage" (the difference's interval above 0: the curves line up better against coverage),
    "context length" (below 0), else "undecided" (one seed: no interval, the mean's sign alone is not read).
    Only the seeds that ran every size count."""
    sizes = family["sizes"]
    seeds = [seed for seed, by_size in family["runs"].items() if all(size in by_size for size in sizes)]
    if not seeds:
        raise ValueError(f"no seed ran every size {sizes}; run each size with the same seeds")
    length = max(run.arrays["nodes"].shape[1] - 1 for seed in seeds for run in family["runs"][seed].values())
    per_seed = [{size: run_curves(family["runs"][seed][size], length) for size in sizes} for seed in seeds]
    first = family["runs"][seeds[0]][sizes[0]]
    result: dict[str, Any] = {"model": Path(first.model_name).stem, "graph": first.graph_kind,
                              "control": first.info.get("control", "none"), "sizes": sizes, "seeds": seeds}
    for quantity in QUANTITIES:
        spreads = {axis: [relative_spread(np.stack([curves[size][quantity][axis] for size in sizes]))["relative"]
                          for curves in per_seed] for axis in AXES}
        difference = [c - v for c, v in zip(spreads["context"], spreads["coverage"])]
        entry = {axis: interval(values) for axis, values in spreads.items()}
        entry["difference"] = interval(difference)
        low, high = entry["difference"]["ci95"]
        entry["reading"] = ("coverage" if low is not None and low > 0 else
                            "context length" if high is not None and high < 0 else "undecided")
        result[quantity] = entry
    result["curves"] = {size: {quantity: {axis: nanmean(np.stack([curves[size][quantity][axis] for curves in per_seed]))
                                          for axis in AXES if axis in per_seed[0][size][quantity]}
                               for quantity in (*QUANTITIES, "edge_coverage")} for size in sizes}
    result["edge_coverage_reached"] = {size: {share: float(np.nanmedian([coverage_reached(family["runs"][seed][size])[share]
                                                                        for seed in seeds]))
                                              for share in (0.5, 1.0)} for size in sizes}
    result["context_bin_edges"], result["coverage_bin_edges"] = context_bin_edges(length), coverage_bin_edges()
    return result


def coverage_study(sweep: str | os.PathLike | list[Run]) -> list[dict[str, Any]]:
    """The collapse of every family of runs in a sweep folder (or a list of runs): one entry per family
    (collapse), smallest model, then graph kind, first. Raises ValueError where no family of two sizes or
    more is there, saying how to run one.

    >>> study = coverage_study([load_run(grid_run), load_run(days_run)])
    Traceback (most recent call last):
    ...
    ValueError: no runs of one setting over two or more graph sizes; run e.g. icgt run --preset coverage-grid3 coverage-grid4 coverage-grid5 coverage-grid6 --seeds 3
    """
    if isinstance(sweep, (str, os.PathLike)):
        folders = sorted(Path(sweep).iterdir())
        runs = [load_run(folder) for folder in folders if (folder / "run.json").is_file()]
    else:
        runs = list(sweep)
    found = families(runs)
    if not found:
        raise ValueError("no runs of one setting over two or more graph sizes; run e.g. icgt run --preset "
                         "coverage-grid3 coverage-grid4 coverage-grid5 coverage-grid6 --seeds 3")
    return sorted((collapse(family) for family in found), key=lambda entry: (entry["model"], entry["graph"],
                                                                              entry["control"]))


#: What each reading says, in the tables' words.
READINGS = {"coverage": "the curves line up better against edge coverage than against context length",
            "context length": "the curves line up better against context length than against edge coverage",
            "undecided": "neither axis lines the curves up better at this precision"}
