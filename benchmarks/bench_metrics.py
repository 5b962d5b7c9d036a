"""Benchmark: icgt's RepresentationStats and EnergyMetrics against numpy/scikit-learn written the
way the paper's analysis code computes the same formulas (a Python loop over windows, a boolean
mask per node, sklearn PCA per snapshot).

Workload: 30 captured layers of 16 walks x 1400 positions on the 4x4 grid, hidden size 576;
Dirichlet energy (the paper's normalised variant) every 10th position with Nw=20 for every layer;
at 8 snapshots with Nw=200: PCA (2 components, sign-aligned across snapshots), the null baseline
of the energy (1000 relabellings), spectral alignment and graph-distance correlation; and
rule-following accuracy (full vocabulary and renormalised) over all positions.

Both sides get the same float32 activations and must agree (the null baselines, drawn from
different random relabellings, to within sampling error). Run:

    python benchmarks/bench_metrics.py [--repeats 3] [--threads N] [--breakdown]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from scipy.linalg import subspace_angles
from scipy.stats import pearsonr
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

import icgt

LAYERS, BATCH, LENGTH, HIDDEN = 30, 16, 1400, 576
ENERGY_WINDOW, ENERGY_STRIDE = 20, 10
PCA_WINDOW, PCA_SNAPSHOTS, COMPONENTS = 200, 8, 2
RELABELLINGS = 1000


def make_inputs(seed: int = 0):
    """Activations with a layer-dependent grid signal under noise, walks, and next-node probabilities."""
    grid = icgt.Graph.square_grid(4, 4)
    walks = icgt.WalkSampler(grid, seed=seed).random_walks(BATCH, LENGTH, start="per_node")
    generator = torch.Generator().manual_seed(seed)
    coordinates = torch.tensor([[r, c] for r in range(4) for c in range(4)], dtype=torch.float32) - 1.5
    directions = torch.linalg.qr(torch.randn(HIDDEN, 2, generator=generator))[0].T  # [2, hidden]
    node_signal = coordinates * torch.tensor([1.0, 0.6]) @ directions  # [16, hidden]
    strength = torch.linspace(1.0, 3.0, LAYERS).view(LAYERS, 1, 1, 1)
    residuals = torch.randn(LAYERS, BATCH, LENGTH, HIDDEN, generator=generator)
    residuals += strength * node_signal[torch.from_numpy(walks)]
    probabilities = torch.distributions.Dirichlet(torch.ones(17)).sample((BATCH, LENGTH))[..., :16]
    return grid, walks, residuals, probabilities


def energy_positions():
    return list(range(0, LENGTH, ENERGY_STRIDE))


def pca_positions():
    return np.linspace(PCA_WINDOW, LENGTH - 1, PCA_SNAPSHOTS).astype(int).tolist()


def run_icgt(grid, walks, residuals, probabilities):
    stats = icgt.RepresentationStats(grid.num_nodes)
    metrics = icgt.EnergyMetrics(grid)
    # One pass over the activations: the energy curve from its window sums, and the class means of
    # the PCA snapshots.
    sweep = metrics.energy_over_context(residuals, walks, ENERGY_WINDOW, energy_positions(), "normalized",
                                        class_means_at=[(PCA_WINDOW, pca_positions())])
    snapshots = sweep.class_means[0]
    pcs = stats.align_snapshots(stats.principal_components(snapshots.means, COMPONENTS), "sign_flip")
    null = metrics.energy_null_baseline(snapshots.means, "normalized", RELABELLINGS, seed=0)
    accuracy = metrics.rule_following_accuracy(probabilities, walks)
    return {
        "energy": sweep.energy.numpy(),
        "projections": pcs.projections.numpy(),
        "explained_variance_ratio": pcs.explained_variance_ratio.numpy(),
        "null_observed": null.observed.numpy(),
        "null_mean": null.mean.numpy(),
        "null_sd": null.sd.numpy(),
        "cosines": metrics.spectral_alignment(snapshots.means, COMPONENTS).principal_angle_cosines.numpy(),
        "distance_correlation": metrics.graph_distance_correlation(snapshots.means).numpy(),
        "accuracy_full": accuracy.mean_full_vocabulary.numpy(),
        "accuracy_renormalized": accuracy.mean_renormalized.numpy(),
    }


# --- the reference: straightforward numpy / scikit-learn, one window at a time -----------------


def reference_class_means(layer, nodes, t, window, num_nodes):
    start = max(0, t - window)
    activations, labels = layer[:, start : t + 1], nodes[:, start : t + 1]
    means = np.full((num_nodes, layer.shape[-1]), np.nan)
    for k in range(num_nodes):
        mask = labels == k
        if mask.any():
            means[k] = activations[mask].mean(axis=0)
    return means


def reference_energy(means, adjacency):
    x = means / np.linalg.norm(means)
    differences = x[:, None, :] - x[None, :, :]
    return 0.5 * np.sum(adjacency * np.mean(differences**2, axis=-1))


def run_reference(grid, walks, residuals, probabilities):
    n = grid.num_nodes
    adjacency = grid.adjacency()
    activations = residuals.numpy()
    eigenvectors = grid.spectral_embedding(COMPONENTS).eigenvectors
    path_lengths = grid.shortest_path_lengths()
    upper = np.triu_indices(n, 1)
    rng = np.random.default_rng(0)
    relabelled_adjacency = np.stack([adjacency[np.ix_(p, p)] for p in (rng.permutation(n) for _ in range(RELABELLINGS))])
    energy = np.empty((LAYERS, len(energy_positions())))
    projections = np.empty((LAYERS, PCA_SNAPSHOTS, n, COMPONENTS))
    ratios = np.empty((LAYERS, PCA_SNAPSHOTS, COMPONENTS))
    null = np.empty((3, LAYERS, PCA_SNAPSHOTS))
    cosines = np.empty((LAYERS, PCA_SNAPSHOTS, COMPONENTS))
    correlation = np.empty((LAYERS, PCA_SNAPSHOTS))
    for layer in range(LAYERS):
        for i, t in enumerate(energy_positions()):
            means = reference_class_means(activations[layer], walks, t, ENERGY_WINDOW, n)
            energy[layer, i] = reference_energy(means, adjacency)
        previous = None
        for i, t in enumerate(pca_positions()):
            means = reference_class_means(activations[layer], walks, t, PCA_WINDOW, n)
            pca = PCA(COMPONENTS, svd_solver="full").fit(means)
            scores = pca.transform(means)
            if previous is not None:
                scores *= np.where(np.sum(scores * previous, axis=0) < 0, -1.0, 1.0)
            projections[layer, i], ratios[layer, i], previous = scores, pca.explained_variance_ratio_, scores
            x = means / np.linalg.norm(means)
            squared_distances = np.mean((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
            relabelled = 0.5 * np.einsum("pij,ij->p", relabelled_adjacency, squared_distances)
            null[:, layer, i] = reference_energy(means, adjacency), relabelled.mean(), relabelled.std(ddof=1)
            cosines[layer, i] = np.sort(np.cos(subspace_angles(scores, eigenvectors)))[::-1]
            distances = np.linalg.norm(means[:, None] - means[None, :], axis=-1)
            correlation[layer, i] = pearsonr(distances[upper], path_lengths[upper]).statistic
    p = probabilities.numpy()
    full = np.empty((BATCH, LENGTH))
    renormalized = np.empty((BATCH, LENGTH))
    for b in range(BATCH):
        for t in range(LENGTH):
            mass = sum(p[b, t, w] for w in grid.neighbours(int(walks[b, t])))
            full[b, t], renormalized[b, t] = mass, mass / p[b, t].sum()
    return {
        "energy": energy,
        "projections": projections,
        "explained_variance_ratio": ratios,
        "null_observed": null[0],
        "null_mean": null[1],
        "null_sd": null[2],
        "cosines": cosines,
        "distance_correlation": correlation,
        "accuracy_full": full.mean(axis=0),
        "accuracy_renormalized": renormalized.mean(axis=0),
    }


def icgt_stage_times(grid, walks, residuals, probabilities, repeats):
    """Best time of each icgt call on its own, the same pass with the energy window alone, and a
    floor: one read of the activations."""
    stats = icgt.RepresentationStats(grid.num_nodes)
    metrics = icgt.EnergyMetrics(grid)
    snapshots = stats.class_means(residuals, walks, PCA_WINDOW, pca_positions())
    stages = {
        "energy curve + Nw=200 means, one pass": lambda: metrics.energy_over_context(
            residuals, walks, ENERGY_WINDOW, energy_positions(), class_means_at=[(PCA_WINDOW, pca_positions())]
        ),
        "  the energy curve alone": lambda: metrics.energy_over_context(
            residuals, walks, ENERGY_WINDOW, energy_positions()
        ),
        "PCA + alignment": lambda: stats.align_snapshots(
            stats.principal_components(snapshots.means, COMPONENTS), "sign_flip"
        ),
        "null baseline": lambda: metrics.energy_null_baseline(snapshots.means, "normalized", RELABELLINGS),
        "spectral alignment": lambda: metrics.spectral_alignment(snapshots.means, COMPONENTS),
        "distance correlation": lambda: metrics.graph_distance_correlation(snapshots.means),
        "accuracy": lambda: metrics.rule_following_accuracy(probabilities, walks),
        "floor: read the activations once (sum)": lambda: residuals.sum(),
    }
    return {name: best_time(stage, repeats)[0] for name, stage in stages.items()}


def check_agreement(ours, reference):
    """Raises AssertionError naming the first metric that differs; returns the largest differences."""
    differences = {}
    for name in ours:
        a, b = np.asarray(ours[name], dtype=np.float64), np.asarray(reference[name], dtype=np.float64)
        if name == "projections":  # PCA signs are a convention; sklearn's may differ by snapshot
            a, b = np.abs(a), np.abs(b)
        if name in ("null_mean", "null_sd"):  # different random relabellings: sampling error
            tolerance = 6 * reference["null_sd"] / np.sqrt(RELABELLINGS) * (2 if name == "null_sd" else 1)
            assert np.all(np.abs(a - b) <= tolerance), f"{name} differs beyond sampling error"
        else:
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=name)
        differences[name] = float(np.max(np.abs(a - b)))
    return differences


def best_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the best counts")
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides (default: each library's)")
    parser.add_argument("--breakdown", action="store_true", help="also time each icgt call on its own")
    args = parser.parse_args()
    if args.threads:
        # Both sides get the same threads: torch's for icgt, the BLAS and OpenMP pools for numpy,
        # scipy and scikit-learn.
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    inputs = make_inputs()
    print(f"workload: {LAYERS} layers x {BATCH} sequences x {LENGTH} positions x hidden {HIDDEN} (float32)")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    # The two sides take turns, so that both see the same load on a shared machine.
    ours_times, reference_times = [], []
    for _ in range(args.repeats):
        seconds, ours = best_time(lambda: run_icgt(*inputs), 1)
        ours_times.append(seconds)
        seconds, reference = best_time(lambda: run_reference(*inputs), 1)
        reference_times.append(seconds)
    ours_time, reference_time = min(ours_times), min(reference_times)
    print(f"icgt:      {ours_time:8.3f} s (best of {args.repeats})")
    print(f"reference: {reference_time:8.3f} s (numpy/scikit-learn loop over windows, best of {args.repeats})")
    differences = check_agreement(ours, reference)
    print("largest absolute differences: " + ", ".join(f"{k} {v:.1e}" for k, v in differences.items()))
    print(f"speed ratio: {reference_time / ours_time:.1f}x")
    if args.breakdown:
        for name, seconds in icgt_stage_times(*inputs, args.repeats).items():
            print(f"  {name:42s} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
