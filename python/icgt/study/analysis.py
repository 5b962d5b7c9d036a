"""Every measurement of a run, from its residuals and the node tokens' probabilities (docs/run-format.md).

The experiment driver (icgt.study.sweep) samples, runs the model and saves; this module measures.
Per captured layer the activations are read twice: once by ``EnergyMetrics.energy_over_context``,
which gives the energy curve and, in the same pass, the class means of every other window setting
(the energy snapshots' means for the null baseline, the PCA snapshots, the alignment snapshots and
the cumulative means of early context), and once by ``class_means_per_sequence`` for the spread of
the energy over sequences.

The order of the changes (energy before accuracy?) is measured on cumulative class means (every
token so far: a window that fits from the first tokens on) at positions spread geometrically from
the first token, with the scale-invariant energy (whose mean under relabelling is exactly 1, so
collapse cannot lower it), and change points from sigmoid fits in log context (icgt.study.curves)
for both accuracy variants; a bootstrap over sequences gives their spread.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config as configs
from .._icgt import EnergyMetrics, Graph, RepresentationStats
from .curves import binned, change_point

#: Snapshots of the cumulative (early-context) energy: this many positions, geometrically from 1.
EARLY_SNAPSHOTS = 80


def analyse(config: configs.ExperimentConfig, graph: Graph, residuals: torch.Tensor, target_probs: torch.Tensor,
            nodes: np.ndarray, scored: np.ndarray, layers: list[int], num_layers: int,
            progress: bool = False) -> dict[str, np.ndarray]:
    """Every metric of a run from its captured residuals [layers, batch, length, hidden] (blocks
    ``layers`` of a model of ``num_layers``) and the node tokens' next-token probabilities [batch,
    length, nodes] (None: representations without predictions, whose accuracy arrays and change
    points are then left out). Works layer by layer on the residuals' device."""
    stats = RepresentationStats(graph.num_nodes)
    metrics = EnergyMetrics(graph)
    node_tensor = torch.from_numpy(nodes)
    length = nodes.shape[1]
    energy_positions = RepresentationStats.strided_positions(length, config.energy_every, config.energy_every)
    pca_positions = [p for p in config.pca_positions if p < length]
    early_positions = early_snapshots(length)
    num_pcs = configs.kept_components(graph.num_nodes)
    weekly = natural_ring(config, graph) if config.natural_order else None

    accuracy = None if target_probs is None else metrics.rule_following_accuracy(target_probs, node_tensor,
                                                                                 torch.from_numpy(scored))
    per_layer: dict[str, list[np.ndarray]] = {}

    def keep(name: str, value: torch.Tensor) -> None:
        per_layer.setdefault(name, []).append(value.float().cpu().numpy())

    for index in tqdm(range(residuals.shape[0]), desc="analysis", unit="layer", disable=not progress):
        layer = residuals[index]
        sweep = metrics.energy_over_context(
            layer, node_tensor, config.energy_window, energy_positions, "normalized",
            class_means_at=[(config.energy_window, energy_positions), (config.pca_window, pca_positions),
                            (config.pca_window, energy_positions), (length - 1, early_positions)])
        energy_means, pca_means, alignment_means, early_means = (means.means for means in sweep.class_means)
        keep("energy", sweep.energy)
        keep("energy_scale_invariant", metrics.dirichlet_energy(energy_means, "scale_invariant"))
        null = metrics.energy_null_baseline(energy_means, "normalized", num_relabellings=config.null_permutations,
                                            seed=config.seed)
        keep("energy_null_mean", null.mean)
        keep("energy_null_sd", null.sd)
        keep("energy_p_value", null.p_value)
        sequence_means = stats.class_means_per_sequence(layer, node_tensor, config.energy_window, energy_positions)
        keep("energy_per_sequence", metrics.dirichlet_energy(sequence_means.means, "normalized"))
        keep("early_energy", metrics.dirichlet_energy(early_means, "scale_invariant"))

        components = RepresentationStats.align_snapshots(stats.principal_components(pca_means, num_pcs), "sign_flip")
        keep("pca_projections", components.projections)
        keep("pca_explained", components.explained_variance_ratio)
        if weekly is not None:
            keep("weekly_alignment", pair_alignment(EnergyMetrics(weekly), pca_means, num_pcs))
            keep("ring_alignment", pair_alignment(metrics, pca_means, num_pcs))

        drawn = metrics.spectral_alignment(alignment_means, 2, first_component=config.pca_components[0])
        keep("spectral_alignment", (drawn.principal_angle_cosines**2).mean(-1))
        keep("distance_correlation", metrics.graph_distance_correlation(alignment_means))

    arrays = {name: np.stack(values) for name, values in per_layer.items()}
    arrays.update(
        energy_positions=np.array(energy_positions),
        pca_positions=np.array(pca_positions),
        alignment_positions=np.array(energy_positions),
        early_positions=np.array(early_positions),
        spectral_embedding=graph.spectral_embedding(num_pcs).eigenvectors,
    )
    if accuracy is None:  # representations without predictions (the toy mixing model): no accuracy to time
        return arrays
    arrays.update(accuracy=accuracy.full_vocabulary.cpu().numpy(),
                  accuracy_renormalized=accuracy.renormalized.cpu().numpy())
    lag_index = int(np.argmin(np.abs(np.asarray(layers) - configs.LAG_LAYER_DEPTH * num_layers)))
    arrays.update(change_point_bootstrap(config, graph, residuals[lag_index], nodes, arrays, early_positions))
    arrays["lag_layer"] = np.array(layers[lag_index])
    return arrays


def early_snapshots(length: int) -> list[int]:
    """EARLY_SNAPSHOTS positions (distinct) spread geometrically from the first word to the last.

    >>> early_snapshots(1401)[:6], early_snapshots(1401)[-1]
    ([1, 2, 3, 4, 5, 6], 1400)
    """
    return sorted({int(round(p)) for p in np.geomspace(1, length - 1, EARLY_SNAPSHOTS)})


def change_point_bootstrap(config: configs.ExperimentConfig, graph: Graph, layer: torch.Tensor, nodes: np.ndarray,
                           arrays: dict[str, np.ndarray], positions: list[int]) -> dict[str, np.ndarray]:
    """Change points of the early energy (cumulative class means, scale-invariant) of one layer and of
    both accuracy curves: for the run itself (replicate 0) and for ``config.bootstrap`` resamples of
    its sequences (with replacement, the same resample for energy and accuracy).

    Returns energy_change_points [1 + R] and accuracy_change_points [1 + R, 2] (full vocabulary,
    renormalised), context lengths, NaN where a curve has no change point.
    """
    stats, metrics = RepresentationStats(graph.num_nodes), EnergyMetrics(graph)
    cumulative = stats.class_means_per_sequence(layer, torch.from_numpy(nodes), nodes.shape[1] - 1, positions)
    counts = cumulative.counts.to(torch.float64)  # [B, S, n]
    sums = torch.nan_to_num(cumulative.means.to(torch.float64)) * counts.unsqueeze(-1)  # [B, S, n, d]
    batch = nodes.shape[0]
    generator = np.random.default_rng(config.seed)
    draws = generator.integers(0, batch, size=(config.bootstrap, batch))
    weights = np.concatenate([np.ones((1, batch)), np.stack([np.bincount(d, minlength=batch) for d in draws])])
    accuracies = [arrays["accuracy"], arrays["accuracy_renormalized"]]
    energy_points, accuracy_points = [], []
    for start in range(0, weights.shape[0], 25):  # bounds the pooled means held at once
        chunk = torch.from_numpy(weights[start:start + 25]).to(sums.device)
        pooled = torch.einsum("rb,bsnd->rsnd", chunk, sums) / torch.einsum("rb,bsn->rsn", chunk, counts).unsqueeze(-1)
        energies = metrics.dirichlet_energy(pooled, "scale_invariant").cpu().numpy()
        for row, energy in zip(weights[start:start + 25], energies):
            energy_points.append(change_point(np.asarray(positions), energy))
            accuracy_points.append([change_point(np.asarray(positions), _weighted_curve(accuracy, row, positions))
                                    for accuracy in accuracies])
    return {"energy_change_points": np.array(energy_points), "accuracy_change_points": np.array(accuracy_points)}


def _weighted_curve(accuracy: np.ndarray, weights: np.ndarray, positions: list[int]) -> np.ndarray:
    """The weighted mean over sequences of accuracy [B, T] (NaN unscored), binned at positions."""
    finite = np.isfinite(accuracy)
    total = (np.where(finite, accuracy, 0.0) * weights[:, None]).sum(0)
    count = (finite * weights[:, None]).sum(0)
    curve = np.where(count > 0, total / np.maximum(count, 1e-300), np.nan)
    return binned(np.arange(accuracy.shape[1]), curve, np.asarray(positions))


def natural_ring(config: configs.ExperimentConfig, graph: Graph) -> Graph:
    """The ring of the words in their natural order (the weekly circle), on the graph's node numbering."""
    position = {word: i for i, word in enumerate(config.natural_order)}
    order = sorted(range(graph.num_nodes), key=lambda node: position[graph.labels[node]])
    edges = [(order[i], order[(i + 1) % len(order)]) for i in range(len(order))]
    return Graph.from_edges(graph.num_nodes, edges)


def pair_alignment(metrics: EnergyMetrics, means: torch.Tensor, num_pcs: int) -> torch.Tensor:
    """For each consecutive PC pair (1-2, 3-4, ...), the mean squared principal-angle cosine between
    its scores and the graph's z2, z3 (NaN where nodes are absent): [snapshots, pairs]."""
    pairs = [metrics.spectral_alignment(means, 2, first_component=first).principal_angle_cosines.pow(2).mean(-1)
             for first in range(0, num_pcs - 1, 2)]
    return torch.stack(pairs, dim=-1)
