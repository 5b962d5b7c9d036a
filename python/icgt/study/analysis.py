"""Every measurement of a run, from its residuals and the node tokens' probabilities (docs/run-format.md).

The experiment driver (icgt.study.sweep) samples, runs the model and saves; this module measures.
Per captured layer the activations are read twice: once by ``EnergyMetrics.energy_over_context``,
which gives the energy curve and, in the same pass, the class means of every other window setting (the
energy snapshots' means for the null baseline, the PCA snapshots and the alignment snapshots),
by ``class_means_per_sequence`` for the spread of the energy over sequences, and per timing position
for the trailing-half class sums of the timing curves.

The spectral profile (the class means' variance per Laplacian eigenvalue, the low-frequency bias of
arXiv 2507.13540) is taken from the alignment snapshots' means (``pca_window`` tokens), with their
sampling noise taken out (debiased_spectral_profile): noise spreads over every eigenvector alike and
pulls each share toward its count of eigenvectors over n - 1, so a profile of fewer tokens per class
would grow toward the graph's low eigenvalues with context whatever the representations do.
tests/python/test_spectrum_validation.py runs the whole pipeline on toy models with a planted profile.

The order of the changes (energy before accuracy?) is measured at timing positions spread
geometrically from the first token. At each position t both curves average the same tokens, the
trailing half of the context (t/2 to t): the scale-invariant energy (whose mean under relabelling is
exactly 1, so collapse cannot lower it) of the class means over those tokens, and accuracy over
those tokens. Smoothed alike, a change in either curve is delayed alike, so their lag is not biased
by the smoothing (an energy of cumulative class means, every token from 1 to t, timed against
accuracy per position, came about a doubling late: tests/python/test_lag_validation.py runs the
whole pipeline on models with planted lags). Change points are midpoints of sigmoid fits in log
context (icgt.study.curves) constrained to the expected direction (energy falls, accuracy rises) and
to a change of at least MIN_AMPLITUDE_SPREADS bootstrap standard deviations; beside them the paper's
own statistic, the position of the energy's minimum and of accuracy's steepest rise. A bootstrap
over sequences (the same resample for energy and accuracy) gives the spread of each.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config as configs
from . import heldout, two_graphs
from .._icgt import EnergyMetrics, Graph, RepresentationStats
from .curves import MIN_AMPLITUDE_SPREADS, energy_minimum, first_change_point, nanstd, steepest_rise

#: Timing positions: this many, geometrically from 1.
TIMING_SNAPSHOTS = 80
#: The share of the context before a timing position t that its window holds: t/2 to t.
TIMING_WINDOW = 0.5


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
    timing_positions = timing_snapshots(length)
    num_pcs = configs.kept_components(graph.num_nodes)
    weekly = natural_ring(config, graph) if config.natural_order else None
    held_out = [tuple(edge) for edge in config.held_out_edges]
    held_out_pairs = heldout.pair_kinds(graph.num_nodes, graph.edges, held_out) if held_out else None
    second = two_graphs.second_graph(config, graph) if config.second_graph else None
    if second is not None:
        second_metrics = EnergyMetrics(second)
        layouts = np.stack([np.asarray(g.spectral_embedding(2).eigenvectors, dtype=np.float64) for g in (graph, second)])
        layout_relabellings = two_graphs.relabellings(graph.num_nodes, config.null_permutations, config.seed)

    accuracy = None if target_probs is None else metrics.rule_following_accuracy(target_probs, node_tensor,
                                                                                 torch.from_numpy(scored))
    lag_index = int(np.argmin(np.abs(np.asarray(layers) - configs.LAG_LAYER_DEPTH * num_layers)))
    per_layer: dict[str, list[np.ndarray]] = {}

    def keep(name: str, value: torch.Tensor) -> None:
        per_layer.setdefault(name, []).append(value.float().cpu().numpy())

    for index in tqdm(range(residuals.shape[0]), desc="analysis", unit="layer", disable=not progress):
        layer = residuals[index]
        sweep = metrics.energy_over_context(
            layer, node_tensor, config.energy_window, energy_positions, "normalized",
            class_means_at=[(config.energy_window, energy_positions), (config.pca_window, pca_positions),
                            (config.pca_window, energy_positions)])
        energy_means, pca_means, alignment_means = (means.means for means in sweep.class_means)
        keep("energy", sweep.energy)
        squared_norms = stats.class_means(layer.float().square().sum(-1, keepdim=True).double(), node_tensor,
                                          config.pca_window, energy_positions).means[..., 0]
        shares, eigenvalues = debiased_spectral_profile(metrics, alignment_means, sweep.class_means[2].counts,
                                                        squared_norms)
        keep("debiased_spectral_profile", torch.from_numpy(shares))
        keep("energy_scale_invariant", metrics.dirichlet_energy(energy_means, "scale_invariant"))
        null = metrics.energy_null_baseline(energy_means, "normalized", num_relabellings=config.null_permutations,
                                            seed=config.seed)
        keep("energy_null_mean", null.mean)
        keep("energy_null_sd", null.sd)
        keep("energy_p_value", null.p_value)
        sequence_means = stats.class_means_per_sequence(layer, node_tensor, config.energy_window, energy_positions)
        keep("energy_per_sequence", metrics.dirichlet_energy(sequence_means.means, "normalized"))
        trailing = trailing_class_sums(stats, layer, node_tensor, timing_positions)
        keep("timing_energy", torch.from_numpy(debiased_energy(graph, *trailing, torch.ones(1, nodes.shape[0]))[0]))
        if index == lag_index:
            lag_sums = trailing

        components = RepresentationStats.align_snapshots(stats.principal_components(pca_means, num_pcs), "sign_flip")
        keep("pca_projections", components.projections)
        keep("pca_explained", components.explained_variance_ratio)
        if held_out:
            keep("heldout_distances", torch.from_numpy(heldout.pair_distances(held_out_pairs,
                                                                              pca_means.double().cpu().numpy())))
        if second is not None:
            keep("two_graph_alignment", torch.stack([pair_alignment(m, pca_means, num_pcs)
                                                     for m in (metrics, second_metrics)], dim=-2))
            snapshot_means = pca_means.double().cpu().numpy()
            shares, cosines = two_graphs.layout_subspaces(snapshot_means, layouts)
            keep("two_graph_variance", torch.from_numpy(shares))
            keep("two_graph_cosines", torch.from_numpy(cosines))
            relabelled = two_graphs.layout_null(snapshot_means, layouts, layout_relabellings)
            keep("two_graph_p_value", torch.from_numpy(relabelled.p_values))
            keep("two_graph_null_share", torch.from_numpy(relabelled.share_mean))
            keep("two_graph_null_cosine_squared", torch.from_numpy(relabelled.cosine_squared_mean))
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
        timing_positions=np.array(timing_positions),
        spectral_embedding=graph.spectral_embedding(num_pcs).eigenvectors,
        spectral_eigenvalues=eigenvalues,
    )
    if accuracy is None:  # representations without predictions (the toy mixing model): no accuracy to time
        return arrays
    arrays.update(accuracy=accuracy.full_vocabulary.cpu().numpy(),
                  accuracy_renormalized=accuracy.renormalized.cpu().numpy())
    arrays.update(timing_bootstrap(config, graph, *lag_sums, arrays, timing_positions))
    if held_out:
        arrays.update(heldout.heldout_arrays(config, graph, target_probs, nodes, scored,
                                             lambda values: trailing_accuracy_sums(values, timing_positions)))
    if second is not None:
        against_second = second_metrics.rule_following_accuracy(target_probs, node_tensor, torch.from_numpy(scored))
        arrays.update(second_graph_edges=np.array(second.edges, dtype=np.int64).reshape(-1, 2),
                      second_accuracy=against_second.full_vocabulary.cpu().numpy(),
                      second_accuracy_renormalized=against_second.renormalized.cpu().numpy())
    arrays["lag_layer"] = np.array(layers[lag_index])
    return arrays


def timing_snapshots(length: int) -> list[int]:
    """TIMING_SNAPSHOTS positions (distinct) spread geometrically from the first word to the last.

    >>> timing_snapshots(1401)[:6], timing_snapshots(1401)[-1]
    ([1, 2, 3, 4, 5, 6], 1400)
    """
    return sorted({int(round(p)) for p in np.geomspace(1, length - 1, TIMING_SNAPSHOTS)})


def timing_window(position: int) -> int:
    """How many tokens before ``position`` its timing window reaches back (TIMING_WINDOW of them).

    >>> [timing_window(t) for t in (1, 2, 3, 100)]
    [0, 1, 1, 50]
    """
    return int(position * TIMING_WINDOW)


def trailing_class_sums(stats: RepresentationStats, layer: torch.Tensor, nodes: torch.Tensor,
                        positions: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sequence, the sums [B, S, n, d], counts [B, S, n] and sums of squared norms [B, S, n] (float64)
    of each node's activations over the timing window of each position (t - timing_window(t) to t):
    pooled over any weighting of the sequences they give the class means of that weighting and the
    spread of the activations around them (debiased_energy)."""
    squared_norms = layer.float().square().sum(-1, keepdim=True)
    sums, counts, squares = [], [], []
    for position in positions:
        window = timing_window(position)
        means = stats.class_means_per_sequence(layer, nodes, window, [position])
        count = means.counts.to(torch.float64)
        sums.append(torch.nan_to_num(means.means.to(torch.float64)) * count.unsqueeze(-1))
        counts.append(count)
        square = stats.class_means_per_sequence(squared_norms, nodes, window, [position]).means[..., 0]
        squares.append(torch.nan_to_num(square.to(torch.float64)) * count)
    return torch.cat(sums, dim=1), torch.cat(counts, dim=1), torch.cat(squares, dim=1)


def debiased_energy(graph: Graph, sums: torch.Tensor, counts: torch.Tensor, squares: torch.Tensor,
                    weights: torch.Tensor) -> np.ndarray:
    """The scale-invariant energy [R, S] of the class means of the sequences weighted by each row of
    weights [R, B] (sums, counts and squares from trailing_class_sums), with the sampling noise of the
    means taken out.

    A class mean of c activations with spread v (their mean squared distance from it) is off its
    expectation by about v / (c - 1) in squared norm, and that noise, alike for every pair of nodes, pulls the
    energy toward 1, its value under relabelling: a curve of class means over more and more tokens then
    falls with no change in the representations (by a tenth, for a toy model graph-shaped from the first
    token: tests/python/test_lag_validation.py). So each squared distance ||m_i - m_j||^2 is replaced by
    its unbiased estimate ||m_i - m_j||^2 - v_i / (c_i - 1) - v_j / (c_j - 1) before the mean over edges is
    divided by the mean over all pairs (EnergyMetrics' "scale_invariant" when the spreads are 0). NaN
    where a node is seen fewer than twice: its noise cannot be estimated (the first positions of a walk).
    """
    weights = weights.to(sums)
    count = torch.einsum("rb,bsn->rsn", weights, counts)
    means = torch.einsum("rb,bsnd->rsnd", weights, sums) / count.unsqueeze(-1)
    squared = (means * means).sum(-1)
    # Unbiased for the spread's own shrinkage (c - 1, not c); a class seen once has no spread to go by.
    noise = (torch.einsum("rb,bsn->rsn", weights, squares) / count - squared).clamp(min=0) / (count - 1)
    noise = torch.where(count >= 2, noise, torch.nan)
    distances = (squared.unsqueeze(-1) + squared.unsqueeze(-2) - 2 * means @ means.transpose(-1, -2)
                 - noise.unsqueeze(-1) - noise.unsqueeze(-2))
    first, second = torch.tensor(graph.edges).T
    upper = torch.triu_indices(graph.num_nodes, graph.num_nodes, offset=1)
    energy = distances[..., first, second].mean(-1) / distances[..., upper[0], upper[1]].mean(-1)
    return energy.cpu().numpy()


def debiased_spectral_profile(metrics: EnergyMetrics, means: torch.Tensor, counts: torch.Tensor,
                              mean_squared_norms: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """EnergyMetrics.spectral_profile's shares [..., K] of class means [..., n, d] (of counts [..., n]
    activations whose squared norms average mean_squared_norms [..., n]) with the means' sampling noise
    taken out, and the distinct eigenvalues [K] (float64 numpy).

    A class mean of c activations with spread v (their mean squared distance from it) is off its
    expectation by about v / (c - 1) in squared norm, in no preferred direction, so the centred means'
    squared norm on the eigenvectors u of an eigenvalue gains sum_i s_i sum_u (u_i - mean(u))^2, s_i =
    v_i / (c_i - 1), and their total squared norm sum_i s_i (1 - 1/n): noise alone gives each eigenvalue
    its count of eigenvectors over n - 1 (3/15 for the grid's two lowest non-zero eigenvalues). Each
    share is the ratio of the two after that is taken out (as debiased_energy does for the energy), so
    more tokens per class do not by themselves move it; the shares still sum to 1, and one may fall a
    little below 0 where an eigenvalue holds less than the noise. NaN where a node is seen fewer than
    twice (its noise cannot be estimated) or the noise is as large as the whole variance.

    Means on the ring's z2, z3 (eigenvalue 1) seen through 200 noisy activations per node:

    >>> import icgt, torch
    >>> metrics = icgt.EnergyMetrics(icgt.Graph.ring(6))
    >>> exact = torch.zeros(6, 24, dtype=torch.float64)
    >>> exact[:, :2] = torch.tensor(metrics.graph.spectral_embedding(2).eigenvectors)
    >>> tokens = exact + torch.randn(200, 6, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> shares, eigenvalues = debiased_spectral_profile(metrics, tokens.mean(0), torch.full([6], 200),
    ...                                                 tokens.square().sum(-1).mean(0))
    >>> eigenvalues.round(3).tolist(), round(float(shares[1]), 2)
    ([0.0, 1.0, 3.0, 4.0], 1.02)
    >>> round(float(metrics.spectral_profile(tokens.mean(0)).shares[1]), 2)  # the noise left in
    0.88
    """
    means = means.double()
    profile = metrics.spectral_profile(means)
    centred = means - means.mean(-2, keepdim=True)
    total = centred.square().sum((-2, -1))
    count = counts.to(means)
    spread = (mean_squared_norms.to(means) - means.square().sum(-1)).clamp(min=0)
    noise = torch.where(count >= 2, spread / (count - 1), torch.nan)  # a class seen once has no spread to go by
    vectors = profile.eigenvectors.to(means)
    weights = torch.zeros(vectors.shape[0], profile.eigenvalues.numel(), dtype=means.dtype, device=means.device)
    groups = torch.repeat_interleave(torch.arange(profile.eigenvalues.numel()), profile.multiplicities).to(means.device)
    weights.index_add_(1, groups, (vectors - vectors.mean(0)).square())  # [n, K]
    noise_on = noise @ weights  # [..., K]
    signal = total - noise_on.sum(-1)
    shares = (profile.shares.to(means) * total.unsqueeze(-1) - noise_on) / signal.unsqueeze(-1)
    shares = torch.where((signal > 0).unsqueeze(-1), shares, torch.nan)
    return shares.cpu().numpy(), profile.eigenvalues.cpu().numpy()


def trailing_accuracy_sums(accuracy: np.ndarray, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence, the sum and count [B, S] of the finite accuracy values [B, T] over each position's
    timing window: the accuracy that the energy of trailing_class_sums is timed against."""
    finite = np.isfinite(accuracy)
    before = np.concatenate([np.zeros((accuracy.shape[0], 1)), np.cumsum(np.where(finite, accuracy, 0.0), 1)], 1)
    seen = np.concatenate([np.zeros((accuracy.shape[0], 1)), np.cumsum(finite, 1)], 1)
    starts = np.array([position - timing_window(position) for position in positions])
    ends = np.array(positions) + 1
    return before[:, ends] - before[:, starts], seen[:, ends] - seen[:, starts]


def timing_bootstrap(config: configs.ExperimentConfig, graph: Graph, sums: torch.Tensor, counts: torch.Tensor,
                     squares: torch.Tensor, arrays: dict[str, np.ndarray], positions: list[int]
                     ) -> dict[str, np.ndarray]:
    """The order of the changes in one layer, from its trailing class sums (trailing_class_sums) and the
    energy they give (debiased_energy): the run
    itself (replicate 0) and ``config.bootstrap`` resamples of its sequences (with replacement, the same
    resample for energy and accuracy).

    Returns, in context lengths (NaN where a curve has none): energy_change_points [1 + R] (the energy's
    fall) and accuracy_change_points [1 + R, 2] (the rise of accuracy: full vocabulary, renormalised),
    each needing a change of MIN_AMPLITUDE_SPREADS standard deviations of its curve over the resamples;
    the paper's statistic, energy_minimum_points [1 + R] and accuracy_rise_points [1 + R, 2] (where
    accuracy rises fastest); and the run's own curves, timing_accuracy [2, S].
    """
    batch = counts.shape[0]
    generator = np.random.default_rng(config.seed)
    draws = generator.integers(0, batch, size=(config.bootstrap, batch))
    weights = np.concatenate([np.ones((1, batch)), np.stack([np.bincount(d, minlength=batch) for d in draws])
                              if config.bootstrap else np.zeros((0, batch))])
    energy = np.concatenate([debiased_energy(graph, sums, counts, squares, torch.from_numpy(weights[start:start + 25]))
                             for start in range(0, weights.shape[0], 25)])  # [1 + R, S]; 25 bounds the means held
    accuracy = []
    for variant in ("accuracy", "accuracy_renormalized"):
        totals, seen = trailing_accuracy_sums(arrays[variant], positions)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy.append((weights @ totals) / (weights @ seen))
    accuracy = np.stack(accuracy, axis=1)  # [1 + R, 2, S]
    at = np.asarray(positions)

    def threshold(curves: np.ndarray) -> float:
        if curves.shape[0] < 3:
            return 0.0
        spread = nanstd(curves[1:])
        return MIN_AMPLITUDE_SPREADS * float(np.nanmedian(spread)) if np.isfinite(spread).any() else 0.0

    energy_amplitude = threshold(energy)
    accuracy_amplitude = [threshold(accuracy[:, variant]) for variant in range(2)]
    energy_points = [first_change_point(at, curve, -1, energy_amplitude) for curve in energy]
    accuracy_points = [[first_change_point(at, curves[variant], +1, accuracy_amplitude[variant])
                        for variant in range(2)] for curves in accuracy]
    minima = [energy_minimum(at, curve) for curve in energy]
    rises = [[steepest_rise(at, curves[variant]) for variant in range(2)] for curves in accuracy]
    return {"energy_change_points": np.array(energy_points), "accuracy_change_points": np.array(accuracy_points),
            "energy_minimum_points": np.array([np.nan if m is None else m[0] for m in minima], dtype=float),
            "accuracy_rise_points": np.array([[np.nan if r is None else r[0] for r in row] for row in rises],
                                             dtype=float),
            "timing_accuracy": accuracy[0]}


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
