"""Is the geometry used, and which heads make it? The causal and circuit experiments of a run.

Each is an ``experiment`` setting of a config, run like the graph experiment into its own run folder
(docs/run-format.md lists its arrays):

- ``intervention`` (the paper's authors' code): at the last position of each sequence, in the late
  blocks, move the current token in the plane of its class means' PCs 1-2 (wide window, same
  sequence, PCA per block) to a random target node's place, and measure the probability mass on the
  target's neighbours; controls: a random direction of the same norm, and a move to the current
  node's own place.
- ``heads`` (the induction-circuit critique): score every head for previous-token attention and for
  induction on BOS and L random tokens repeated twice; zero-ablate the top-k of each kind and k
  random heads (several draws); accuracy over context and the geometry of the analysis block.
- ``subspace``: project the residual stream of the late blocks off the class means' PC1-2 plane
  (fitted on the other half of the sequences) against a random plane; accuracy before and after.
- ``toy_mixing``: random Gaussian vectors for the nodes, each position their own plus the previous
  token's, through the same analysis: the geometry a one-step mixture gives without any model.

The forward pass they share (the walks through the plain model, every block captured) is computed
once per process and sequence set (``clean_run``), so that running several of them in one sweep
pays for it once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from . import config as configs
from .._icgt import AttentionScore, EnergyMetrics, Graph, HeadAblation, RepresentationStats
from .analysis import analyse

#: The blocks an intervention or subspace ablation acts on: the last eighth of the model (the
#: authors': blocks 28-31 of 32), at least one.
LATE_FRACTION = 1 / 8
#: Targets per sequence in the intervention (each a test case, batched).
TARGETS_PER_SEQUENCE = 3

_CLEAN: dict[tuple, Any] = {}


def late_blocks(num_layers: int) -> list[int]:
    """The last eighth of the blocks (rounded up).

    >>> late_blocks(32), late_blocks(18)
    ([28, 29, 30, 31], [15, 16, 17])
    """
    count = max(1, math.ceil(num_layers * LATE_FRACTION))
    return list(range(num_layers - count, num_layers))


def clean_run(probe, token_ids: np.ndarray, word_ids: np.ndarray, max_batch: int = 0):
    """The plain run of the walks, every block captured, the node tokens' probabilities: computed once
    per (bundle, tokens) in this process and shared by the experiments that need it."""
    key = (str(probe.bundle), token_ids.tobytes(), token_ids.shape, word_ids.tobytes())
    if key not in _CLEAN:
        _CLEAN.clear()  # one at a time: a run's captures can be gigabytes
        _CLEAN[key] = probe.run(torch.from_numpy(token_ids), layers=list(range(-1, probe.num_layers)),
                                target_ids=torch.from_numpy(word_ids), max_batch=max_batch)
    return _CLEAN[key]


def move_in_plane(points: torch.Tensor, goals: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The displacement [C, d] that moves each point to its goal's coordinates within its plane, and
    leaves the rest: basis [C, k, d] has orthonormal rows (the plane's directions). Zero when a point
    already has its goal's coordinates.

    >>> basis = torch.tensor([[[1.0, 0.0, 0.0]]])
    >>> move_in_plane(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[5.0, 0.0, 0.0]]), basis).tolist()
    [[4.0, 0.0, 0.0]]
    """
    coordinates = torch.einsum("ckd,cd->ck", basis, goals - points)
    return torch.einsum("ck,ckd->cd", coordinates, basis)


def remove_plane(residual: torch.Tensor, basis: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """residual [..., d] projected off the plane through centre [d] spanned by the orthonormal rows of
    basis [k, d]: what lies along the plane's directions, measured from the centre, is taken away.

    >>> remove_plane(torch.tensor([[2.0, 3.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([0.5, 0.0])).tolist()
    [[0.5, 3.0]]
    """
    offset = residual.float() - centre
    return (residual.float() - (offset @ basis.T) @ basis).to(residual.dtype)


def run_mechanism(config: configs.ExperimentConfig, probe, graph: Graph, nodes: np.ndarray, scored: np.ndarray,
                  token_ids: np.ndarray, word_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of the config's experiment (not "graph")."""
    experiments = {"intervention": intervention, "heads": heads, "subspace": subspace, "toy_mixing": toy_mixing}
    return experiments[config.experiment](config, probe, graph, nodes, scored, token_ids, word_ids)


def _residuals(clean, layer: int) -> torch.Tensor:
    return clean.residuals[layer + 1]  # layers -1..L-1 were captured


def _node_probability(logits: torch.Tensor, word_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From full next-token logits [B, 1, vocab]: the probabilities of the node tokens [B, n], under the
    full-vocabulary softmax and renormalised over the node tokens."""
    probabilities = logits[:, 0].float().softmax(-1)[:, torch.from_numpy(word_ids)]
    return probabilities.numpy(), (probabilities / probabilities.sum(-1, keepdim=True)).numpy()


def intervention(config, probe, graph, nodes, scored, token_ids, word_ids) -> dict[str, np.ndarray]:
    """Move the last token to a target node's place in the PC1-2 plane of each late block's class means.

    Arrays: targets [B, K], current [B]; mass on the target's neighbours [condition, B, K] (full
    vocabulary and renormalised) for conditions clean, moved, random (a direction of the moved
    displacement's norm) and self (moved to the current node's own place); top1 / top3 [condition,
    B, K]: whether the highest (three highest) node words are neighbours of the target.
    """
    blocks = late_blocks(probe.num_layers)
    clean = clean_run(probe, token_ids, word_ids, config.max_batch)
    batch, length = token_ids.shape
    stats = RepresentationStats(graph.num_nodes)
    node_tensor = torch.from_numpy(nodes)
    window = min(config.intervention_window, length - 1)
    planes = {}
    for block in blocks:
        means = stats.class_means_per_sequence(_residuals(clean, block), node_tensor, window, [length - 1]).means[:, 0]
        pcs = stats.principal_components(means, 2)  # per sequence: [B, 2, d], centre [B, d]
        planes[block] = (pcs.components.float(), pcs.mean.float(), means.float())
    generator = np.random.default_rng(config.seed)
    current = nodes[:, -1]
    targets = np.stack([generator.choice([n for n in range(graph.num_nodes) if n != c], TARGETS_PER_SEQUENCE,
                                         replace=False) for c in current])
    cases = np.repeat(np.arange(batch), TARGETS_PER_SEQUENCE)  # case i: sequence cases[i], target targets.flat[i]
    directions = torch.from_numpy(generator.normal(size=(len(blocks), cases.size, probe.hidden_size))).float()
    directions /= directions.norm(dim=-1, keepdim=True)

    def displacement(block: int, last: torch.Tensor, rows: np.ndarray, to_nodes: np.ndarray) -> torch.Tensor:
        components, _, means = planes[block]
        goal = means[torch.from_numpy(rows), torch.from_numpy(to_nodes)]  # [C, d]
        return move_in_plane(last, goal, components[torch.from_numpy(rows)])

    def hooks(kind: str, part: slice) -> dict:
        rows = cases[part]

        def move(block: int, residual: torch.Tensor) -> None:
            last = residual[:, -1].float()
            if kind == "self":
                change = displacement(block, last, rows, current[rows])
            else:
                change = displacement(block, last, rows, targets.reshape(-1)[part])
                if kind == "random":
                    change = directions[blocks.index(block), part] * change.norm(dim=-1, keepdim=True)
            residual[:, -1] += change.to(residual.dtype)
        return {} if kind == "clean" else {("resid_post", block): move for block in blocks}

    start = _residuals(clean, blocks[0] - 1)[torch.from_numpy(cases)]
    ids = torch.from_numpy(token_ids[cases])
    # The hooks move case i by its own target, so each pass must hold known cases: the probe's own
    # split of a batch would hand a hook rows it cannot place. The parts are the probe's passes.
    rows_per_pass = config.max_batch or probe.automatic_batch(cases.size, length)
    parts = [slice(first, min(first + rows_per_pass, cases.size)) for first in range(0, cases.size, rows_per_pass)]
    results = {kind: torch.cat([probe.run(ids[part], start_residual=start[part], start_layer=blocks[0],
                                          hooks=hooks(kind, part), logits="last",
                                          max_batch=part.stop - part.start).logits for part in parts])
               for kind in ("moved", "random", "self", "clean")}
    neighbours = np.zeros((graph.num_nodes, graph.num_nodes), dtype=bool)
    for a, b in graph.edges:
        neighbours[a, b] = neighbours[b, a] = True
    target_neighbours = neighbours[targets.reshape(-1)]  # [C, n]
    arrays: dict[str, list] = {"mass": [], "mass_renormalized": [], "top1": [], "top3": []}
    for kind in ("clean", "moved", "random", "self"):
        full, renormalized = _node_probability(results[kind], word_ids)
        ranked = np.argsort(-full, axis=1)
        arrays["mass"].append((full * target_neighbours).sum(1))
        arrays["mass_renormalized"].append((renormalized * target_neighbours).sum(1))
        arrays["top1"].append(target_neighbours[np.arange(cases.size), ranked[:, 0]])
        arrays["top3"].append(target_neighbours[np.arange(cases.size)[:, None], ranked[:, :3]].any(1))
    shape = (4, batch, TARGETS_PER_SEQUENCE)
    return {"intervention_targets": targets, "intervention_current": current,
            "intervention_blocks": np.array(blocks),
            **{f"intervention_{name}": np.stack(values).reshape(shape) for name, values in arrays.items()}}


def head_scores(probe, config) -> tuple[np.ndarray, np.ndarray]:
    """Previous-token and induction scores [layers, heads] of every head, on BOS and L random tokens
    repeated twice (the usual TransformerLens definitions), averaged over a few such sequences."""
    length = config.score_length
    generator = np.random.default_rng(config.seed)
    # Real vocabularies keep special and byte tokens at their ends; a small one is used whole but BOS.
    margin = 100 if probe.vocab_size > 1000 else 1
    tokens = generator.integers(margin, probe.vocab_size - margin + 1, size=(config.score_sequences, length))
    tokens = np.where(tokens == probe.bos_token_id, (tokens + 1) % probe.vocab_size, tokens)
    ids = np.concatenate([np.full((config.score_sequences, 1), probe.bos_token_id), tokens, tokens], axis=1)
    scores = probe.run(torch.from_numpy(ids), attention_scores=[
        AttentionScore(offset=1, first_query=1),
        AttentionScore(offset=length - 1, first_query=length + 1)]).attention_scores
    previous, induction = (score.mean(1).numpy() for score in scores)  # over sequences: [layers, heads]
    return previous, induction


def head_counts(total: int, counts: list[int]) -> list[int]:
    """The ks of the ablations: 1%, 2.5%, 5%, 10% and 20% of all heads and the config's counts (say the
    follow-up's 2, 4 and 32 for comparison across models), distinct, each at least 1 and below the total.

    >>> head_counts(270, []), head_counts(72, [2, 4, 32])
    ([3, 7, 14, 27, 54], [1, 2, 4, 7, 14, 32])
    """
    fractions = [max(1, round(total * f)) for f in (0.01, 0.025, 0.05, 0.1, 0.2)]
    return sorted({k for k in [*counts, *fractions] if 1 <= k < total})


def heads(config, probe, graph, nodes, scored, token_ids, word_ids) -> dict[str, np.ndarray]:
    """Scores of every head; accuracy and geometry with the top-k previous-token, top-k induction and k
    random heads zero-ablated, for the ks of head_counts.

    Arrays: head_previous_token, head_induction [layers, heads]; head_counts [K]; for condition
    (previous_token, induction, random: draw-major, config.random_draws rows each) x k:
    head_accuracy, head_accuracy_renormalized [conditions, K, T] (mean over sequences),
    head_alignment, head_energy_z [conditions, K] at the analysis block, late in the context; and the
    same for the plain run (head_clean_*).
    """
    previous, induction = head_scores(probe, config)
    total = previous.size
    counts = head_counts(total, config.head_counts)
    generator = np.random.default_rng(config.seed + 1)
    rankings = {"previous_token": np.argsort(-previous, axis=None), "induction": np.argsort(-induction, axis=None)}
    orders = [rankings["previous_token"], rankings["induction"]] + [generator.permutation(total)
                                                                    for _ in range(config.random_draws)]
    layer = int(np.argmin(np.abs(np.arange(probe.num_layers) - configs.LAG_LAYER_DEPTH * probe.num_layers)))
    measured = [_ablated_measures(config, probe, graph, nodes, scored, token_ids, word_ids, layer, [])]
    for order in orders:
        for k in counts:
            chosen = order[:k]
            by_layer: dict[int, list[int]] = {}
            for flat in chosen:
                by_layer.setdefault(int(flat) // probe.num_heads, []).append(int(flat) % probe.num_heads)
            ablations = [HeadAblation(block, sorted(heads_of)) for block, heads_of in sorted(by_layer.items())]
            measured.append(_ablated_measures(config, probe, graph, nodes, scored, token_ids, word_ids, layer,
                                              ablations))
    clean, rest = measured[0], measured[1:]
    shape = (len(orders), len(counts))
    arrays = {"head_previous_token": previous, "head_induction": induction, "head_counts": np.array(counts),
              "head_analysis_block": np.array(layer)}
    for name in clean:
        arrays[f"head_clean_{name}"] = np.asarray(clean[name])
        arrays[f"head_{name}"] = np.stack([m[name] for m in rest]).reshape(*shape, *np.shape(clean[name]))
    return arrays


def _ablated_measures(config, probe, graph, nodes, scored, token_ids, word_ids, layer, ablations) -> dict:
    result = probe.run(torch.from_numpy(token_ids), layers=[layer], target_ids=torch.from_numpy(word_ids),
                       ablations=ablations, max_batch=config.max_batch)
    metrics = EnergyMetrics(graph)
    node_tensor = torch.from_numpy(nodes)
    accuracy = metrics.rule_following_accuracy(result.target_probs, node_tensor, torch.from_numpy(scored))
    length = nodes.shape[1]
    late = [length - 1]
    window = min(config.pca_window, length - 1)
    means = RepresentationStats(graph.num_nodes).class_means(result.residuals[0], node_tensor, window, late).means
    null = metrics.energy_null_baseline(means, "normalized", config.null_permutations, config.seed)
    alignment = metrics.spectral_alignment(means, 2, first_component=config.pca_components[0])
    return {"accuracy": accuracy.mean_full_vocabulary.numpy(), "accuracy_renormalized": accuracy.mean_renormalized.numpy(),
            "alignment": float((alignment.principal_angle_cosines[0] ** 2).mean()),
            "energy_z": float(null.z_score[0])}


def subspace(config, probe, graph, nodes, scored, token_ids, word_ids) -> dict[str, np.ndarray]:
    """Project the late blocks' residuals off the class means' PC1-2 plane, fitted on the first half of
    the sequences, and measure accuracy on the second half; against a random plane of the same size.

    Arrays: subspace_blocks; subspace_accuracy, subspace_accuracy_renormalized [3, T] for plain,
    PC plane removed, random plane removed (mean over the measured sequences).
    """
    blocks = late_blocks(probe.num_layers)
    clean = clean_run(probe, token_ids, word_ids, config.max_batch)
    batch, length = token_ids.shape
    fit, measure = np.arange(batch // 2), np.arange(batch // 2, batch)
    stats = RepresentationStats(graph.num_nodes)
    generator = torch.Generator().manual_seed(config.seed)
    planes, random_planes = {}, {}
    for block in blocks:
        window = min(config.pca_window, length - 1)
        means = stats.class_means(_residuals(clean, block)[torch.from_numpy(fit)], torch.from_numpy(nodes[fit]),
                                  window, [length - 1]).means[0]
        pcs = stats.principal_components(means, 2)
        planes[block] = (pcs.components.float(), pcs.mean.float())
        random_basis = torch.linalg.qr(torch.randn(probe.hidden_size, 2, generator=generator)).Q.T
        random_planes[block] = (random_basis, pcs.mean.float())

    def project_off(chosen: dict) -> dict:
        def hook(block: int, residual: torch.Tensor) -> torch.Tensor:
            basis, centre = chosen[block]
            return remove_plane(residual, basis, centre)
        return {("resid_post", block): hook for block in blocks}

    metrics = EnergyMetrics(graph)
    curves = {"accuracy": [], "accuracy_renormalized": []}
    ids = torch.from_numpy(token_ids[measure])
    start = _residuals(clean, blocks[0] - 1)[torch.from_numpy(measure)]
    for hooks in ({}, project_off(planes), project_off(random_planes)):
        probabilities = probe.run(ids, start_residual=start, start_layer=blocks[0], hooks=hooks,
                                  target_ids=torch.from_numpy(word_ids), max_batch=config.max_batch).target_probs
        accuracy = metrics.rule_following_accuracy(probabilities, torch.from_numpy(nodes[measure]),
                                                   torch.from_numpy(scored[measure]))
        curves["accuracy"].append(accuracy.mean_full_vocabulary.numpy())
        curves["accuracy_renormalized"].append(accuracy.mean_renormalized.numpy())
    return {"subspace_blocks": np.array(blocks), "subspace_measured_sequences": measure,
            **{f"subspace_{name}": np.stack(values) for name, values in curves.items()}}


def toy_mixing(config, probe, graph, nodes, scored, token_ids, word_ids) -> dict[str, np.ndarray]:
    """The analysis of a graph run on the one-step mixture e(node_t) + e(node_t-1) of random Gaussian
    node vectors (width: the model's), for the same walks: one layer of arrays, accuracy left out."""
    generator = torch.Generator().manual_seed(config.seed)
    vectors = torch.randn(graph.num_nodes + 1, probe.hidden_size, generator=generator)  # the last: the BOS
    index = torch.from_numpy(np.where(nodes >= 0, nodes, graph.num_nodes))
    own = vectors[index]
    previous = torch.cat([vectors[graph.num_nodes].expand(nodes.shape[0], 1, -1), own[:, :-1]], dim=1)
    residuals = (own + previous).unsqueeze(0)
    arrays = analyse(config, graph, residuals, None, nodes, scored, [0], 1)
    return {f"toy_{name}": value for name, value in arrays.items()
            if name not in ("accuracy", "accuracy_renormalized", "accuracy_change_points", "energy_change_points",
                            "lag_layer", "layers")}
