"""Synthetic run folders in the format of docs/run-format.md, with known answers planted in them.

Planted: energy that falls to its minimum at ENERGY_MINIMUM_AT in every layer and then flattens
(NaN at the first snapshot, as when nodes are absent from the window); accuracy that rises fastest
at ACCURACY_RISE_AT and ends near FINAL_ACCURACY; class means that move from noise to the graph's
spectral layout, with random sign flips between snapshots. Days runs put the weekly circle on
PCs 1-2 and the in-context ring on PCs 3-4.

The no-effect variant (``effect=False``) plants the opposite answer: renormalised accuracy at the
chance level degree / n (and almost no probability on the node words at all), energy that scatters
around its relabelling null, class means that stay noise, alignment of random planes. Days runs keep
the weekly circle on PCs 1-2 (pretraining, not the context, puts it there) with no ring beneath.
"""

import json
from pathlib import Path

import numpy as np

WORDS = ("apple bird car egg house milk plane opera box sand sun mango rock math code phone").split()
WEEKLY_ORDER = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
#: Every third day of the week: neighbours on this ring are never neighbours in the week.
IN_CONTEXT_RING = [WEEKLY_ORDER[(3 * i) % 7] for i in range(7)]
NUM_LAYERS = 8
NUM_SEQUENCES = 4
NUM_POSITIONS = 401  # BOS and 400 words
PCA_POSITIONS = [25, 50, 100, 400]
K = 4
ENERGY_MINIMUM_AT = 40
#: Where the timing energy falls: two doublings before accuracy rises.
EARLY_ENERGY_CHANGE = 15
TIMING_POSITIONS = np.unique(np.round(np.geomspace(1, NUM_POSITIONS - 1, 60)).astype(np.int64))
BOOTSTRAP = 40
ACCURACY_RISE_AT = 60
FINAL_ACCURACY = 0.1 + 0.8 / (1 + (ACCURACY_RISE_AT / 400) ** 2)


def grid_edges(rows, cols):
    """Row-major 4-neighbourhood lattice, as icgt.Graph.square_grid."""
    right = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    down = [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    return sorted(right + down)


def ring_edges(n):
    return sorted(tuple(sorted((i, (i + 1) % n))) for i in range(n))


def spectral_embedding(num_nodes, edges, k):
    """Laplacian eigenvectors z2 .. z(k+1)."""
    adjacency = np.zeros((num_nodes, num_nodes))
    for a, b in edges:
        adjacency[a, b] = adjacency[b, a] = 1
    _, vectors = np.linalg.eigh(np.diag(adjacency.sum(axis=1)) - adjacency)
    return vectors[:, 1:k + 1]


def laplacian_spectrum(num_nodes, edges):
    """The distinct eigenvalues of D - A and how many eigenvectors each has."""
    adjacency = np.zeros((num_nodes, num_nodes))
    for a, b in edges:
        adjacency[a, b] = adjacency[b, a] = 1
    values = np.round(np.linalg.eigvalsh(np.diag(adjacency.sum(axis=1)) - adjacency), 9)
    distinct, multiplicities = np.unique(values, return_counts=True)
    return np.abs(distinct), multiplicities


def spectral_profile(num_nodes, edges, low_share):
    """Shares [..., K] with ``low_share`` [...] on the lowest non-zero eigenvalue, the rest spread over the
    other non-zero eigenvectors evenly (as random means spread it), none on eigenvalue 0."""
    _, multiplicities = laplacian_spectrum(num_nodes, edges)
    rest = multiplicities[2:] / multiplicities[2:].sum()
    return np.concatenate([np.zeros(low_share.shape + (1,)), low_share[..., None],
                           (1 - low_share)[..., None] * rest], axis=-1)


def run_info(graph="grid", effect=True):
    """run.json for a synthetic grid (4x4) or days-of-week run (named "-no-effect" without the planted effect)."""
    labels = WORDS if graph == "grid" else IN_CONTEXT_RING
    edges = grid_edges(4, 4) if graph == "grid" else ring_edges(7)
    info = {
        "icgt_run_format": 3,
        "name": f"synthetic-{graph}" + ("" if effect else "-no-effect"),
        "config": {"model": "toy-8-layers", "preset": graph, "graph": graph, "mode": "walk",
                   "num_sequences": NUM_SEQUENCES, "sequence_length": NUM_POSITIONS - 1,
                   "energy_window": 20, "energy_every": 10, "pca_window": 200, "pca_positions": PCA_POSITIONS,
                   "null_permutations": 100, "seed": 0, "pca_components": [0, 1]},
        "model": {"name": "toy-8-layers", "architecture": "llama", "num_layers": NUM_LAYERS, "hidden_size": 32,
                  "bundle_sha256": "0" * 64},
        "graph": {"kind": graph, "num_nodes": len(labels), "edges": [list(edge) for edge in edges],
                  "labels": labels},
        "versions": {"icgt": "0.1.0", "torch": "2.4.0", "python": "3.11"},
        "timings": {"sample_s": 0.1, "probe_s": 2.0, "analysis_s": 0.5, "total_s": 2.6},
        "hardware": {"cpu": "Synthetic CPU", "capability": "AVX2", "threads": 2, "cores": 2},
        "dtype_choice": {"asked": "auto", "chosen": "float32", "reason": "auto: CPU without native bfloat16 (AVX2)"},
    }
    if graph == "days":
        info["weekly_order"] = WEEKLY_ORDER
    return info


def results(info, seed=0, effect=True):
    """results.npz arrays for run_info(...), with the planted answers of this module (or none: effect=False)."""
    rng = np.random.default_rng(seed)
    num_nodes = info["graph"]["num_nodes"]
    edges = info["graph"]["edges"]
    neighbours = [[b for a, b in edges if a == node] + [a for a, b in edges if b == node] for node in range(num_nodes)]
    layers = np.arange(NUM_LAYERS)
    nodes = np.full((NUM_SEQUENCES, NUM_POSITIONS), -1, dtype=np.int64)
    for sequence in range(NUM_SEQUENCES):
        nodes[sequence, 1] = sequence % num_nodes
        for position in range(2, NUM_POSITIONS):
            nodes[sequence, position] = rng.choice(neighbours[nodes[sequence, position - 1]])
    scored = nodes >= 0
    scored[:, -1] = False
    t = np.arange(NUM_POSITIONS, dtype=float)
    with np.errstate(divide="ignore"):
        rise = 1 / (1 + (ACCURACY_RISE_AT / t) ** 2)
    accuracy = np.where(scored, 0.1 + 0.8 * rise + rng.uniform(-0.02, 0.02, scored.shape), np.nan)
    accuracy_renormalized = np.where(scored, 0.25 + 0.7 * rise, np.nan)

    energy_positions = np.arange(10, NUM_POSITIONS, 10)
    log_ratio = np.log(energy_positions / ENERGY_MINIMUM_AT)
    shape = np.where(log_ratio < 0, 0.3 * log_ratio ** 2, 0.02 * log_ratio)
    energy = (0.5 - 0.03 * layers)[:, None] + shape[None, :]
    energy[:, 0] = np.nan
    energy_per_sequence = energy[:, None, :] + rng.normal(0, 0.02, (NUM_LAYERS, NUM_SEQUENCES, energy_positions.size))
    growth = energy_positions / (energy_positions + 50.0)
    depth = (layers + 1)[:, None] / NUM_LAYERS

    layout = spectral_embedding(num_nodes, edges, K)
    target = layout
    if info["graph"]["kind"] == "days":
        weekly_angle = 2 * np.pi * np.array([WEEKLY_ORDER.index(day) for day in info["graph"]["labels"]]) / 7
        ring_angle = 2 * np.pi * np.arange(7) / 7
        target = np.stack([np.cos(weekly_angle), np.sin(weekly_angle),
                           0.5 * np.cos(ring_angle), 0.5 * np.sin(ring_angle)], axis=1)
    pca_positions = np.array(PCA_POSITIONS)
    weight = (pca_positions / (pca_positions + 50.0))[None, :, None, None]
    noise = rng.normal(0, 0.3, (NUM_LAYERS, pca_positions.size, num_nodes, K))
    signs = rng.choice([-1.0, 1.0], (NUM_LAYERS, pca_positions.size, 1, K))
    pca_projections = signs * (weight * target[None, None] + (1 - weight) * noise)
    pca_projections[:, 0, :2] = np.nan
    pca_explained = np.broadcast_to([0.40, 0.25, 0.15, 0.10], (NUM_LAYERS, pca_positions.size, K)).copy()

    arrays = {
        "layers": layers,
        "nodes": nodes,
        "scored": scored,
        "accuracy": accuracy,
        "accuracy_renormalized": accuracy_renormalized,
        "energy_positions": energy_positions,
        "energy": energy,
        "energy_per_sequence": energy_per_sequence,
        "energy_scale_invariant": 0.8 - 0.3 * depth * growth[None, :],
        "energy_null_mean": np.full(energy.shape, 0.9),
        "energy_null_sd": np.full(energy.shape, 0.03),
        "pca_positions": pca_positions,
        "pca_projections": pca_projections,
        "pca_explained": pca_explained,
        "alignment_positions": energy_positions,
        "spectral_alignment": 0.9 * depth * growth[None, :],
        "distance_correlation": 0.8 * depth * growth[None, :],
        "spectral_embedding": layout,
        # Below the null at every late snapshot in the deep layers only (p = 0.001 there, 0.4 elsewhere).
        "energy_p_value": np.where((layers[:, None] >= 5) & (energy_positions[None, :] > 100), 0.001, 0.4),
        "timing_positions": TIMING_POSITIONS,
        # Trailing-window energy falling at EARLY_ENERGY_CHANGE in every layer, accuracy rising at ACCURACY_RISE_AT.
        "timing_energy": np.broadcast_to(1.0 - 0.5 / (1 + (EARLY_ENERGY_CHANGE / TIMING_POSITIONS) ** 3),
                                         (NUM_LAYERS, TIMING_POSITIONS.size)).copy(),
        "timing_accuracy": np.stack([0.1 + 0.8 / (1 + (ACCURACY_RISE_AT / TIMING_POSITIONS) ** 2)] * 2),
        "energy_change_points": EARLY_ENERGY_CHANGE * np.exp(rng.normal(0, 0.1, BOOTSTRAP + 1)),
        "accuracy_change_points": np.stack([ACCURACY_RISE_AT * np.exp(rng.normal(0, 0.1, BOOTSTRAP + 1)),
                                            1.1 * ACCURACY_RISE_AT * np.exp(rng.normal(0, 0.1, BOOTSTRAP + 1))], 1),
        # The paper's statistic: the energy's minimum where its fall ends, accuracy's steepest rise (the
        # run's own estimates exact, the resamples scattered around them).
        "energy_minimum_points": ENERGY_MINIMUM_AT * np.exp(np.r_[0, rng.normal(0, 0.1, BOOTSTRAP)]),
        "accuracy_rise_points": np.stack([ACCURACY_RISE_AT * np.exp(np.r_[0, rng.normal(0, 0.1, BOOTSTRAP)])] * 2, 1),
        "lag_layer": np.array(6),
        # The variance on the lowest non-zero Laplacian eigenvalue grows with depth and context, from what
        # random means put there (its share of the non-zero eigenvectors) to 0.2 + 0.7 of the rest.
        "spectral_eigenvalues": laplacian_spectrum(num_nodes, edges)[0],
    }
    multiplicities = laplacian_spectrum(num_nodes, edges)[1]
    chance = multiplicities[1] / (num_nodes - 1)
    low_share = chance + (1 - chance) * (0.2 + 0.7 * depth * growth[None, :])
    arrays["debiased_spectral_profile"] = spectral_profile(num_nodes, edges, low_share)
    arrays["debiased_spectral_profile"][:, 0] = np.nan  # as the energy: nodes absent from the first window
    if info["graph"]["kind"] == "days":
        pairs = (NUM_LAYERS, pca_positions.size)
        arrays["weekly_alignment"] = np.stack([np.full(pairs, 0.9), np.full(pairs, 0.1)], axis=-1)
        arrays["ring_alignment"] = np.stack([np.full(pairs, 0.1), np.broadcast_to(weight[:, :, 0, 0], pairs)], axis=-1)
    if not effect:
        _remove_the_effect(arrays, info, neighbours, rng)
    return arrays


def _remove_the_effect(arrays, info, neighbours, rng):
    """Overwrite the planted effect with its absence (see the module docstring)."""
    num_nodes = info["graph"]["num_nodes"]
    nodes, scored = arrays["nodes"], arrays["scored"]
    chance = np.array([len(n) for n in neighbours])[np.maximum(nodes, 0)] / num_nodes
    arrays["accuracy_renormalized"] = np.where(scored, chance + rng.uniform(-0.03, 0.03, scored.shape), np.nan)
    arrays["accuracy"] = np.where(scored, 0.04 * arrays["accuracy_renormalized"], np.nan)
    energy = arrays["energy_null_mean"] + arrays["energy_null_sd"] * rng.normal(0, 0.7, arrays["energy"].shape)
    energy[:, 0] = np.nan
    arrays["energy"] = energy
    arrays["energy_per_sequence"] = energy[:, None, :] + rng.normal(0, 0.02, arrays["energy_per_sequence"].shape)
    arrays["energy_scale_invariant"] = 1 + rng.normal(0, 0.03, energy.shape)
    arrays["energy_p_value"] = rng.uniform(0.1, 0.9, energy.shape)
    noise = rng.normal(0, 0.3, arrays["pca_projections"].shape)
    noise[:, 0, :2] = np.nan
    if info["graph"]["kind"] == "days":  # the weekly circle stays on PCs 1-2; nothing of the ring beneath
        noise[..., :2] += arrays["pca_projections"][..., :2]
    arrays["pca_projections"] = noise
    arrays["spectral_alignment"] = rng.uniform(0.05, 0.25, arrays["spectral_alignment"].shape)
    arrays["distance_correlation"] = rng.normal(0, 0.05, arrays["distance_correlation"].shape)
    multiplicities = laplacian_spectrum(info["graph"]["num_nodes"], info["graph"]["edges"])[1]
    chance = multiplicities[1] / (info["graph"]["num_nodes"] - 1)
    arrays["debiased_spectral_profile"] = spectral_profile(info["graph"]["num_nodes"], info["graph"]["edges"],
                                                           chance + rng.uniform(-0.02, 0.02, arrays["energy"].shape))
    if info["graph"]["kind"] == "days":
        arrays["ring_alignment"] = rng.uniform(0.0, 0.2, arrays["ring_alignment"].shape)


def write_run(folder, info, arrays):
    """Write run.json and results.npz into folder (created); return the folder as a Path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(info, indent=1))
    np.savez(folder / "results.npz", **arrays)
    return folder


def write_synthetic_run(folder, graph="grid", seed=0, effect=True):
    """A complete synthetic run of the given graph ("grid" or "days") in folder, with or without the effect;
    other seeds draw other walks and noise around the same planted answers."""
    info = run_info(graph, effect)
    info["config"]["seed"] = info["seed"] = seed
    return write_run(folder, info, results(info, seed, effect=effect))


def write_intervention_run(folder, used=True):
    """A synthetic intervention run (icgt.study.mechanism.intervention's arrays) on the grid, 20 walks x 3 targets:
    with ``used``, moving the token puts 0.6 of the mass on the target's neighbours (clean, random
    direction, own place, random place in the plane: 0.1); without, the move does no better than a
    random one. Each walk has its own level (sd 0.05) that its three targets share."""
    rng = np.random.default_rng(3)
    info = run_info("grid")
    info["config"]["experiment"] = info["experiment"] = "intervention"
    shape = (20, 3)
    moved = 0.6 if used else 0.1
    walk = rng.normal(0, 0.05, (20, 1))
    mass = np.stack([np.clip(level + walk + rng.normal(0, 0.02, shape), 0, 1) for level in (0.1, moved, 0.1, 0.1, 0.1)])
    arrays = {"nodes": np.zeros((20, NUM_POSITIONS), dtype=np.int64), "scored": np.ones((20, NUM_POSITIONS), bool),
              "intervention_targets": rng.integers(0, 16, shape), "intervention_current": rng.integers(0, 16, 20),
              "intervention_blocks": np.array([6, 7]), "intervention_mass": mass,
              "intervention_mass_renormalized": np.clip(mass * 1.5, 0, 1),
              "intervention_top1": mass > 0.3, "intervention_top3": mass > 0.2}
    return write_run(folder, info, arrays)


def write_heads_run(folder):
    """A synthetic heads run (icgt.study.mechanism.heads's arrays) on the grid: 8 blocks of 4 heads, k = 1, 2, 4, 6,
    both ablation kinds and both BOS variants, 5 draws of 2 random heads. Planted: one strong previous-token head
    per block in blocks 0-3 and one induction head per block in blocks 4-7; accuracy rises to 0.9 over the
    context, and each ablated induction head takes 0.12 of it away, each previous-token head 0.05, zero-ablation
    and ablating the BOS too a little more; random heads hardly any."""
    rng = np.random.default_rng(5)
    info = run_info("grid")
    info["config"]["experiment"] = info["experiment"] = "heads"
    blocks, heads, draws = NUM_LAYERS, 4, 5
    counts, random_counts, kinds, bos_included = [1, 2, 4, 6], [2], ["mean", "zero"], [False, True]
    previous, induction = rng.uniform(0, 0.3, (blocks, heads)), rng.uniform(0, 0.3, (blocks, heads))
    previous[np.arange(4), np.arange(4)] = [0.95, 0.9, 0.85, 0.8]
    induction[np.arange(4, 8), [2, 1, 0, 3]] = [0.9, 0.85, 0.8, 0.75]
    positions = np.arange(NUM_POSITIONS)
    rise = 1 / (1 + np.exp(-(np.log(np.maximum(positions, 1)) - np.log(ACCURACY_RISE_AT))))

    def curve(level):
        return np.clip(level * rise + rng.normal(0, 0.01, NUM_POSITIONS), 0, 1)

    loss = np.array([[[[0.05 * k, 0.12 * k] for k in counts]]]) * np.array([1.0, 1.3])[:, None, None, None] \
        * np.array([1.0, 1.2])[None, :, None, None]                                    # [A, VB, K, C]
    accuracy = np.stack([np.stack([np.stack([np.stack([curve(0.9 - loss[a, v, k, c]) for k in range(len(counts))])
                                             for c in range(2)]) for v in range(2)]) for a in range(2)])
    random_accuracy = np.stack([np.stack([np.stack([curve(0.9 - rng.uniform(0, 0.05)) for _ in random_counts])
                                          for _ in range(draws)]) for _ in range(2)])
    alignment = 0.8 - np.moveaxis(loss, 3, 2)
    arrays = {"nodes": np.zeros((NUM_SEQUENCES, NUM_POSITIONS), dtype=np.int64),
              "scored": np.ones((NUM_SEQUENCES, NUM_POSITIONS), bool),
              "head_previous_token": previous, "head_induction": induction, "head_counts": np.array(counts),
              "head_top_overlap": np.zeros(len(counts), dtype=np.int64), "head_ablation_kinds": np.array(kinds),
              "head_bos_included": np.array(bos_included), "head_analysis_block": np.array(6),
              "head_clean_accuracy": curve(0.9), "head_clean_accuracy_renormalized": curve(0.95),
              "head_clean_alignment": np.array(0.8), "head_clean_energy_z": np.array(-3.0),
              "head_accuracy": accuracy, "head_accuracy_renormalized": np.clip(accuracy * 1.05, 0, 1),
              "head_alignment": alignment, "head_energy_z": -3 + 10 * np.moveaxis(loss, 3, 2),
              "head_random_counts": np.array(random_counts),
              "head_random_order": np.stack([rng.permutation(blocks * heads) for _ in range(draws)]),
              "head_random_accuracy": random_accuracy,
              "head_random_accuracy_renormalized": np.clip(random_accuracy * 1.05, 0, 1),
              "head_random_alignment": 0.8 - rng.uniform(0, 0.05, (2, draws, len(random_counts))),
              "head_random_energy_z": -3 + rng.normal(0, 0.2, (2, draws, len(random_counts)))}
    return write_run(folder, info, arrays)
