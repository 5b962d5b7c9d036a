"""Is the geometry used, and which heads make it? The causal and circuit experiments of a run.

Each is an ``experiment`` setting of a config, run like the graph experiment into its own run folder
(docs/run-format.md lists its arrays):

- ``intervention`` (the paper's authors' code): at the last position of each sequence, in the late
  blocks, move the current token in the plane of its class means' PCs 1-2 (wide window, same
  sequence, PCA per block) to a random target node's place, and measure the probability mass on the
  target's neighbours; controls: a random direction of the same norm, a move of the same norm in a
  random direction within the plane (to a random place in it), and a move to the current node's own
  place. The authors' code also subtracts the target's normalised unembedding once per PC: an option
  (``intervention_unembedding``), off by default, run as a further condition.
- ``heads`` (the induction-circuit critique): score every head for previous-token attention and for
  induction on BOS and L random tokens repeated twice; ablate the top-k of each kind, replacing their
  outputs z by their mean over the plain run (the main variant) or by zero, and, for the main variant
  at the k nearest 5% of the heads, k random heads (``random_draws`` draws); accuracy over context
  and the geometry of the analysis block.
- ``subspace``: project the residual stream of the late blocks off the class means' PC1-2 plane
  (fitted on the other half of the sequences) against ``random_draws`` random planes and as many
  variance-matched planes (random planes within the stream's top principal directions, holding as
  much of its variance as the PC plane); accuracy before and after, and the share of the residual
  stream's variance each plane holds.

Both ablations act from position 1 on by default, sparing the BOS (an attention sink, whose residual
can be far larger than any other's), or on every position (``bos_variants``).
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
from .._icgt import AttentionScore, EnergyMetrics, Graph, RepresentationStats
from .analysis import analyse
from .run_folder import INTERVENTION_CONDITIONS

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


def remove_plane(residual: torch.Tensor, basis: torch.Tensor, centre: torch.Tensor,
                 first_position: int = 0) -> torch.Tensor:
    """residual [..., T, d] projected off the plane through centre [d] spanned by the orthonormal rows of
    basis [k, d], at positions first_position.. (the earlier ones unchanged): what lies along the
    plane's directions, measured from the centre, is taken away.

    >>> remove_plane(torch.tensor([[2.0, 3.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([0.5, 0.0])).tolist()
    [[0.5, 3.0]]
    >>> remove_plane(torch.tensor([[2.0, 3.0], [4.0, 1.0]]), torch.tensor([[1.0, 0.0]]), torch.zeros(2), 1).tolist()
    [[2.0, 3.0], [0.0, 1.0]]
    """
    basis, centre = basis.to(residual.device), centre.to(residual.device)
    offset = residual.float() - centre
    projected = residual.float() - (offset @ basis.T) @ basis
    if first_position:
        projected[..., :first_position, :] = residual[..., :first_position, :].float()
    return projected.to(residual.dtype)


def removed_share(residual: torch.Tensor, basis: torch.Tensor, centre: torch.Tensor, first_position: int = 0) -> float:
    """The share of the residual stream's variance about centre [d] that the plane of basis [k, d]
    (orthonormal rows) holds, over residual [..., T, d] at positions first_position..: what
    remove_plane takes away, sum ||P(x - c)||^2 / sum ||x - c||^2 (float64).

    >>> residual = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])
    >>> removed_share(residual, torch.tensor([[1.0, 0.0]]), torch.zeros(2))   # 9 of 26
    0.34615384615384615
    >>> removed_share(residual, torch.tensor([[1.0, 0.0]]), torch.zeros(2), first_position=1)
    0.0
    """
    offset = residual[..., first_position:, :].double() - centre.to(residual.device, torch.float64)
    return float(((offset @ basis.to(residual.device, torch.float64).T) ** 2).sum() / (offset ** 2).sum())


def variance_matched_planes(offsets: torch.Tensor, target_share: float, count: int,
                            generator: torch.Generator) -> tuple[list[torch.Tensor], int]:
    """count random planes [2, d] (orthonormal rows), each uniform among the planes within the span of
    the top k principal directions of offsets [N, d] (rows measured from the planes' centre), and k:
    the largest dimension at which such a plane holds on average at least target_share of
    sum ||offset||^2. A random plane in d dimensions holds about 2/d of the variance, far less than a
    plane fitted to the data; these hold as much (a little more on average, so that a fitted plane
    that still costs more than them cannot owe it to holding more). The top two directions hold the
    most any plane can, so k >= 2 whenever target_share is at most that.

    >>> offsets = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5]))   # variances 9, 4, 1, 0.25 of 14.25
    >>> planes, k = variance_matched_planes(offsets, 0.6, 2, torch.Generator().manual_seed(0))
    >>> k, planes[0].shape, float(planes[0][:, 3].abs().max())     # a plane of the top 3 holds 0.65 on average
    (3, torch.Size([2, 4]), 0.0)
    """
    values, vectors = torch.linalg.eigh(offsets.double().T @ offsets.double())
    values, vectors = values.flip(0).clamp(min=0), vectors.flip(1)
    dimensions = torch.arange(1, values.numel() + 1, dtype=torch.float64)
    mean_share = 2 * values.cumsum(0) / dimensions / values.sum()  # a random plane of the top k's, k = 1..d
    holding = torch.nonzero(mean_share[1:] >= target_share).flatten()
    k = int(holding.max()) + 2 if holding.numel() else 2
    top = vectors[:, :k].float()
    return [(top @ torch.linalg.qr(torch.randn(k, 2, generator=generator)).Q).T.contiguous()
            for _ in range(count)], k


def run_mechanism(config: configs.ExperimentConfig, probe, graph: Graph, nodes: np.ndarray, scored: np.ndarray,
                  token_ids: np.ndarray, word_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of the config's experiment (not "graph"): intervention, heads, subspace or toy_mixing.

    >>> words = [f"w{i}" for i in range(1, 17)]   # the toy bundle's words (w0 is its BOS)
    >>> config = icgt.study.config.preset("grid-toy-mixing", model=toy_bundle, words=words, num_sequences=4,
    ...                                   sequence_length=40, pca_window=30)
    >>> arrays = icgt.study.compute.compute_run(config, progress=False).arrays   # calls run_mechanism
    >>> 0 <= float(arrays["toy_spectral_alignment"][0, -1]) <= 1
    True
    """
    experiments = {"intervention": intervention, "heads": heads, "subspace": subspace, "toy_mixing": toy_mixing}
    return experiments[config.experiment](config, probe, graph, nodes, scored, token_ids, word_ids)


def _residuals(clean, layer: int) -> torch.Tensor:
    return clean.residuals[layer + 1]  # layers -1..L-1 were captured


def _node_probability(logits: torch.Tensor, word_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From full next-token logits [B, 1, vocab]: the probabilities of the node tokens [B, n], under the
    full-vocabulary softmax and renormalised over the node tokens."""
    probabilities = logits[:, 0].float().cpu().softmax(-1)[:, torch.from_numpy(word_ids)]
    return probabilities.numpy(), (probabilities / probabilities.sum(-1, keepdim=True)).numpy()


def turn_in_plane(step: torch.Tensor, basis: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """A step [C, d] of each case's plane (the span of the orthonormal rows of basis [C, 2, d]) turned
    by angles [C] (radians) within that plane: the same norm, another direction in the same plane.

    >>> basis = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    >>> turned = turn_in_plane(torch.tensor([[2.0, 0.0, 0.0]]), basis, torch.tensor([math.pi / 2]))
    >>> (turned.round(decimals=6) + 0.0).tolist()   # + 0.0: no negative zeros
    [[0.0, 2.0, 0.0]]
    """
    coordinates = torch.einsum("ckd,cd->ck", basis, step)
    cos, sin = torch.cos(angles), torch.sin(angles)
    turned = torch.stack([cos * coordinates[:, 0] - sin * coordinates[:, 1],
                          sin * coordinates[:, 0] + cos * coordinates[:, 1]], dim=1)
    return torch.einsum("ck,ckd->cd", turned, basis)


def intervention(config, probe, graph, nodes, scored, token_ids, word_ids) -> dict[str, np.ndarray]:
    """Move the last token to a target node's place in the PC1-2 plane of each late block's class means.

    Arrays: targets [B, K], current [B]; mass on the target's neighbours [condition, B, K] (full
    vocabulary and renormalised) for the conditions of INTERVENTION_CONDITIONS: clean, moved, random
    (a random direction of the moved displacement's norm), self (moved to the current node's own
    place) and in_plane (the moved displacement turned by a uniform random angle within the plane:
    a move of the same norm, in the plane, to a random place); top1 / top3 [condition, B, K]: whether
    the highest (three highest) node words are neighbours of the target. With
    config.intervention_unembedding > 0 (the authors' option), the same four measures [B, K] as
    intervention_unembedding_mass, ... for the move that also subtracts the target word's unit
    unembedding (probe.unembedding) that many times per PC. Targets are drawn among the
    nodes that occur in the sequence's window (the others have no place to move to). The K targets of
    a sequence share its context, so intervals are taken over sequences
    (icgt.study.intervals.clustered_interval).

    >>> words = [f"w{i}" for i in range(1, 17)]   # the toy bundle's words (w0 is its BOS)
    >>> config = icgt.study.config.preset("grid-intervention", model=toy_bundle, words=words, num_sequences=4,
    ...                                   sequence_length=40, pca_window=30, intervention_window=39)
    >>> arrays = icgt.study.compute.compute_run(config, progress=False).arrays
    >>> arrays["intervention_mass"].shape   # conditions x walks x targets
    (5, 4, 3)
    """
    blocks = late_blocks(probe.num_layers)
    clean = clean_run(probe, token_ids, word_ids, config.max_batch)
    batch, length = token_ids.shape
    stats = RepresentationStats(graph.num_nodes)
    node_tensor = torch.from_numpy(nodes)
    window = min(config.intervention_window, length - 1)
    planes = {}
    for block in blocks:
        result = stats.class_means_per_sequence(_residuals(clean, block), node_tensor, window, [length - 1])
        means = result.means[:, 0]
        pcs = stats.principal_components(means, 2)  # per sequence: [B, 2, d], centre [B, d]
        planes[block] = (pcs.components.float().cpu(), pcs.mean.float().cpu(), means.float().cpu())
    present = result.counts[:, 0].cpu().numpy() > 0  # [B, n]: the nodes with a place in each sequence's window
    generator = np.random.default_rng(config.seed)
    current = nodes[:, -1]
    candidates = [[n for n in range(graph.num_nodes) if n != c and present[b, n]] for b, c in enumerate(current)]
    if min(len(nodes_of) for nodes_of in candidates) < TARGETS_PER_SEQUENCE:
        raise ValueError(f"intervention: some walk's window of {window} tokens holds fewer than "
                         f"{TARGETS_PER_SEQUENCE} nodes besides its last one to move to; widen intervention_window")
    targets = np.stack([generator.choice(nodes_of, TARGETS_PER_SEQUENCE, replace=False) for nodes_of in candidates])
    cases = np.repeat(np.arange(batch), TARGETS_PER_SEQUENCE)  # case i: sequence cases[i], target targets.flat[i]
    directions = torch.from_numpy(generator.normal(size=(len(blocks), cases.size, probe.hidden_size))).float()
    directions /= directions.norm(dim=-1, keepdim=True)
    angles = torch.from_numpy(generator.uniform(0, 2 * np.pi, size=(len(blocks), cases.size))).float()
    conditions = INTERVENTION_CONDITIONS + (("unembedding",) if config.intervention_unembedding else ())
    if config.intervention_unembedding:
        rows = probe.unembedding(torch.from_numpy(word_ids))
        unit_unembedding = rows / rows.norm(dim=-1, keepdim=True)  # [n, d], one row per node word

    def displacement(block: int, last: torch.Tensor, rows: np.ndarray, to_nodes: np.ndarray) -> torch.Tensor:
        components, _, means = planes[block]
        goal = means[torch.from_numpy(rows), torch.from_numpy(to_nodes)]  # [C, d]
        return move_in_plane(last, goal, components[torch.from_numpy(rows)])

    def hooks(kind: str, part: slice) -> dict:
        rows = cases[part]

        def move(block: int, residual: torch.Tensor) -> None:
            last = residual[:, -1].float().cpu()  # the planes and draws live on the CPU
            if kind == "self":
                change = displacement(block, last, rows, current[rows])
            else:
                change = displacement(block, last, rows, targets.reshape(-1)[part])
                if kind == "random":
                    change = directions[blocks.index(block), part] * change.norm(dim=-1, keepdim=True)
                elif kind == "in_plane":
                    basis = planes[block][0][torch.from_numpy(rows)]
                    change = turn_in_plane(change, basis, angles[blocks.index(block), part])
                elif kind == "unembedding":  # once per PC of the plane
                    unit = unit_unembedding[torch.from_numpy(targets.reshape(-1)[part])]
                    change = change - planes[block][0].shape[1] * config.intervention_unembedding * unit
            residual[:, -1] += change.to(residual.device, residual.dtype)
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
               for kind in conditions}
    neighbours = np.zeros((graph.num_nodes, graph.num_nodes), dtype=bool)
    for a, b in graph.edges:
        neighbours[a, b] = neighbours[b, a] = True
    target_neighbours = neighbours[targets.reshape(-1)]  # [C, n]
    measures: dict[str, dict[str, np.ndarray]] = {}
    for kind in conditions:
        full, renormalized = _node_probability(results[kind], word_ids)
        ranked = np.argsort(-full, axis=1)
        measures[kind] = {"mass": (full * target_neighbours).sum(1),
                          "mass_renormalized": (renormalized * target_neighbours).sum(1),
                          "top1": target_neighbours[np.arange(cases.size), ranked[:, 0]],
                          "top3": target_neighbours[np.arange(cases.size)[:, None], ranked[:, :3]].any(1)}
    shape = (batch, TARGETS_PER_SEQUENCE)
    arrays = {f"intervention_{name}": np.stack([measures[kind][name].reshape(shape) for kind in INTERVENTION_CONDITIONS])
              for name in measures["clean"]}
    if "unembedding" in measures:
        arrays.update({f"intervention_unembedding_{name}": value.reshape(shape)
                       for name, value in measures["unembedding"].items()})
    return {"intervention_targets": targets, "intervention_current": current,
            "intervention_blocks": np.array(blocks), **arrays}


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
    previous, induction = (score.mean(1).cpu().numpy() for score in scores)  # over sequences: [layers, heads]
    return previous, induction


def head_counts(total: int, counts: list[int]) -> list[int]:
    """The ks of the ablations: 1 and 2 heads, 1%, 2.5%, 5%, 10% and 20% of all heads and the config's
    counts (say the follow-up's 4 and 32 for comparison across models), distinct, each below the total.

    >>> head_counts(270, []), head_counts(72, [2, 4, 32])
    ([1, 2, 3, 7, 14, 27, 54], [1, 2, 4, 7, 14, 32])
    """
    fractions = [max(1, round(total * f)) for f in (0.01, 0.025, 0.05, 0.1, 0.2)]
    return sorted({k for k in [1, 2, *counts, *fractions] if 1 <= k < total})


#: The share of all heads at which the report compares the top sets with random heads, and the one
#: size at which random heads are drawn.
COMPARED_SHARE = 0.05


def random_head_counts(total: int, counts: list[int]) -> list[int]:
    """The ks at which random heads are drawn: the one of counts (head_counts) nearest COMPARED_SHARE of
    all heads, the smaller on a tie; the size at which the report reads the top sets against random ones.

    Random draws are the cost of the heads experiment (random_draws passes for each k they are made
    at), so they are made only where they are compared; k = 1 as well would add random_draws passes
    per BOS variant, half as many again for Gemma 3 270M.

    >>> random_head_counts(72, head_counts(72, [])), random_head_counts(336, head_counts(336, []))
    ([4], [17])
    """
    if not counts:
        raise ValueError(f"no ablation sizes to draw random heads at (counts is empty; {total} heads in all)")
    return [counts[int(np.argmin(np.abs(np.asarray(counts) - COMPARED_SHARE * total)))]]


def ablation_passes(config: configs.ExperimentConfig, total: int) -> int:
    """How many ablated forward passes of the walks the heads experiment makes for a model of total heads:
    the top-k previous-token and induction heads for every ablation kind, BOS variant and k of
    head_counts, and random_draws draws of random heads for the first kind and every BOS variant at
    random_head_counts. Besides these it makes one plain pass (which also collects the means of z) and
    scores the heads on short sequences.

    >>> config = icgt.study.config.from_dict({"experiment": "heads"})
    >>> ablation_passes(config, 72), ablation_passes(config, 336)   # Gemma 3 270M, Qwen2.5-Coder-1.5B
    (40, 48)
    """
    counts = head_counts(total, config.head_counts)
    top = len(config.head_ablation_kinds) * len(config.bos_variants) * 2 * len(counts)
    return top + len(config.bos_variants) * config.random_draws * len(random_head_counts(total, counts))


def top_overlap(first: np.ndarray, second: np.ndarray, counts: list[int]) -> np.ndarray:
    """For each k of counts: how many heads the top k of two scores [layers, heads] share (each ranked
    as the heads experiment ranks them, np.argsort of the negated flat scores).

    >>> top_overlap(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([[0.1, 0.9], [0.8, 0.2]]), [1, 2, 3])
    array([0, 1, 2])
    """
    first_order, second_order = np.argsort(-first, axis=None), np.argsort(-second, axis=None)
    return np.array([len(set(first_order[:k].tolist()) & set(second_order[:k].tolist())) for k in counts])


def heads_by_block(flat_heads: np.ndarray, num_heads: int) -> dict[int, list[int]]:
    """Flat head indices (block * num_heads + head) as {block: sorted heads}.

    >>> heads_by_block(np.array([5, 0, 4]), 4)
    {0: [0], 1: [0, 1]}
    """
    by_block: dict[int, list[int]] = {}
    for flat in flat_heads:
        by_block.setdefault(int(flat) // num_heads, []).append(int(flat) % num_heads)
    return {block: sorted(heads_of) for block, heads_of in sorted(by_block.items())}


def head_ablation_hooks(chosen: dict[int, list[int]], first_position: int = 1,
                        means: dict[int, torch.Tensor] | None = None) -> dict:
    """Hooks on z ([batch, length, heads, head_dim], after the probe's own gates and ablations) that
    replace the chosen heads' outputs ({block: heads}) at positions first_position.. by zero (means
    None) or by their means (means[block]: [heads, head_dim], every head of the block), before the
    output projection. From position 0 they equal icgt.HeadAblation's zero and mean ablations; from
    position 1 they spare the BOS, which HeadAblation cannot.

    >>> probe = icgt.ActivationProbe(toy_bundle)
    >>> hooked = probe.run(" w1 w2 w3", hooks=head_ablation_hooks({1: [0, 2]}, first_position=0), logits="last").logits
    >>> ablated = probe.run(" w1 w2 w3", ablations=[icgt.HeadAblation(1, [0, 2])], logits="last").logits
    >>> torch.allclose(hooked, ablated, atol=1e-6)
    True
    """
    def hook(block: int, z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        heads_of = torch.tensor(chosen[block], dtype=torch.long, device=z.device)
        if means is None:
            z[:, first_position:, heads_of] = 0
        else:
            z[:, first_position:, heads_of] = means[block].to(z.device, z.dtype)[heads_of]
        return z
    return {("z", block): hook for block in chosen}


def z_mean_hooks(num_layers: int, first_position: int = 1) -> tuple[dict, dict[int, torch.Tensor]]:
    """Hooks that leave z unchanged and sum it, and the means they fill: after a run, means[block] is
    each head's z [heads, head_dim] averaged over every sequence and the positions first_position..
    (float64): the values of a mean ablation.

    >>> probe = icgt.ActivationProbe(toy_bundle)
    >>> hooks, means = z_mean_hooks(probe.num_layers)
    >>> z = probe.run(" w1 w2 w3", hooks=hooks, capture=[("z", 2)]).activations["blocks.2.attn.hook_z"]
    >>> torch.allclose(means[2], z[:, 1:].double().mean((0, 1)))
    True
    """
    sums: dict[int, tuple] = {}
    means: dict[int, torch.Tensor] = {}

    def hook(block: int, z: torch.Tensor) -> None:
        part = z[:, first_position:].double()
        total, count = sums.get(block, (0.0, 0))
        sums[block] = (part.sum((0, 1)) + total, count + part.shape[0] * part.shape[1])
        means[block] = sums[block][0] / sums[block][1]
    return {("z", block): hook for block in range(num_layers)}, means


def heads(config, probe, graph, nodes, scored, token_ids, word_ids) -> dict[str, np.ndarray]:
    """Scores of every head; accuracy and geometry with the top-k previous-token and top-k induction heads
    ablated, for the ks of head_counts, each ablation kind of config.head_ablation_kinds ("mean": each
    head's mean z over the plain run's walks, BOS left out; "zero") and each of config.bos_variants
    (head_ablation_hooks); and with k random heads ablated (config.random_draws draws) for the first
    kind only, at random_head_counts (the k nearest 5% of the heads, where the report compares them).
    ablation_passes counts the passes.

    Arrays: head_previous_token, head_induction [layers, heads]; head_counts [K]; head_top_overlap [K]
    (heads the top-k previous-token and induction sets share); head_ablation_kinds [A];
    head_bos_included [VB]; for kind x BOS variant x condition (previous_token, induction) x k:
    head_accuracy, head_accuracy_renormalized [A, VB, 2, K, T] (mean over sequences), head_alignment,
    head_energy_z [A, VB, 2, K] at the analysis block, late in the context; head_random_counts [KR];
    head_random_order [D, layers * heads] (each draw's permutation of the flat heads: its first k are
    the k ablated); the same measures for the random heads, head_random_accuracy,
    head_random_accuracy_renormalized [VB, D, KR, T], head_random_alignment, head_random_energy_z
    [VB, D, KR]; and for the plain run (head_clean_*).

    >>> words = [f"w{i}" for i in range(1, 17)]   # the toy bundle's words (w0 is its BOS)
    >>> config = icgt.study.config.preset("grid-heads", model=toy_bundle, words=words, num_sequences=4,
    ...                                   sequence_length=40, pca_window=30, score_length=16, random_draws=2,
    ...                                   bos_variants=["excluded", "included"])
    >>> arrays = icgt.study.compute.compute_run(config, progress=False).arrays
    >>> arrays["head_accuracy"].shape   # mean, zero x BOS spared, included x top sets x k = 1, 2 x positions
    (2, 2, 2, 2, 41)
    >>> arrays["head_random_counts"].tolist(), arrays["head_random_accuracy"].shape   # mean only, 2 draws
    ([1], (2, 2, 1, 41))
    """
    previous, induction = head_scores(probe, config)
    total = previous.size
    counts = head_counts(total, config.head_counts)
    random_counts = random_head_counts(total, counts)
    generator = np.random.default_rng(config.seed + 1)
    tops = [np.argsort(-previous, axis=None), np.argsort(-induction, axis=None)]
    random_orders = np.stack([generator.permutation(total) for _ in range(config.random_draws)])
    layer = int(np.argmin(np.abs(np.arange(probe.num_layers) - configs.LAG_LAYER_DEPTH * probe.num_layers)))
    collect, means = z_mean_hooks(probe.num_layers)
    clean = _ablated_measures(config, probe, graph, nodes, scored, token_ids, word_ids, layer, collect)

    def ablated(kind: str, variant: str, order: np.ndarray, k: int) -> dict:
        hooks = head_ablation_hooks(heads_by_block(order[:k], probe.num_heads), first_ablated_position(variant),
                                    means if kind == "mean" else None)
        return _ablated_measures(config, probe, graph, nodes, scored, token_ids, word_ids, layer, hooks)

    kinds, variants = config.head_ablation_kinds, config.bos_variants
    top = [ablated(kind, variant, order, k) for kind in kinds for variant in variants for order in tops for k in counts]
    # The random draws get arrays of their own rather than NaN cells beside the top sets: NaN already
    # means "not scored" or "a node absent" in these measures, so a NaN for "not drawn" would be
    # ambiguous, and every reader would have to mask it; these hold only what was measured.
    random_ = [ablated(kinds[0], variant, order, k) for variant in variants for order in random_orders
               for k in random_counts]
    arrays = {"head_previous_token": previous, "head_induction": induction, "head_counts": np.array(counts),
              "head_top_overlap": top_overlap(previous, induction, counts),
              "head_ablation_kinds": np.array(kinds),
              "head_bos_included": np.array([variant == "included" for variant in variants]),
              "head_analysis_block": np.array(layer), "head_random_counts": np.array(random_counts),
              "head_random_order": random_orders}
    for name in clean:
        shape = np.shape(clean[name])
        arrays[f"head_clean_{name}"] = np.asarray(clean[name])
        arrays[f"head_{name}"] = np.stack([m[name] for m in top]).reshape(len(kinds), len(variants), len(tops),
                                                                           len(counts), *shape)
        arrays[f"head_random_{name}"] = np.stack([m[name] for m in random_]).reshape(
            len(variants), len(random_orders), len(random_counts), *shape)
    return arrays


def _ablated_measures(config, probe, graph, nodes, scored, token_ids, word_ids, layer, hooks) -> dict:
    result = probe.run(torch.from_numpy(token_ids), layers=[layer], target_ids=torch.from_numpy(word_ids),
                       hooks=hooks, max_batch=config.max_batch)
    metrics = EnergyMetrics(graph)
    node_tensor = torch.from_numpy(nodes)
    accuracy = metrics.rule_following_accuracy(result.target_probs, node_tensor, torch.from_numpy(scored))
    length = nodes.shape[1]
    late = [length - 1]
    window = min(config.pca_window, length - 1)
    means = RepresentationStats(graph.num_nodes).class_means(result.residuals[0], node_tensor, window, late).means
    null = metrics.energy_null_baseline(means, "normalized", config.null_permutations, config.seed)
    alignment = metrics.spectral_alignment(means, 2, first_component=config.pca_components[0])
    return {"accuracy": accuracy.mean_full_vocabulary.cpu().numpy(),
            "accuracy_renormalized": accuracy.mean_renormalized.cpu().numpy(),
            "alignment": float((alignment.principal_angle_cosines[0] ** 2).mean()),
            "energy_z": float(null.z_score[0])}


def first_ablated_position(variant: str) -> int:
    """The first position an ablation acts on: 1 when the BOS is "excluded" (spared), else 0.

    >>> first_ablated_position("excluded"), first_ablated_position("included")
    (1, 0)
    """
    return {"excluded": 1, "included": 0}[variant]


def subspace(config, probe, graph, nodes, scored, token_ids, word_ids) -> dict[str, np.ndarray]:
    """Project the late blocks' residuals off the class means' PC1-2 plane, fitted on the first half of
    the sequences, and measure accuracy on the second half; against config.random_draws random planes
    (uniform on the Grassmannian, through the same centre), for each of config.bos_variants.

    A projection removes all that lies in its plane (scaling it changes nothing), and random planes in
    d dimensions all hold about 2/d of the variance, far less than a plane fitted to the data. So a
    second control, config.random_draws variance-matched planes, is drawn within the residual
    stream's top principal directions (variance_matched_planes, on the fitted sequences at the
    positions the projection acts on, per block and variant), as many as a random plane there must
    span to hold the PC plane's share. The share each plane holds is measured (removed_share, on the
    plain run's residuals of the measured sequences at the positions the projection acts on) and
    reported beside its accuracy.

    Arrays: subspace_blocks [Bl]; subspace_measured_sequences [M]; subspace_bos_included [VB];
    subspace_plain_accuracy, subspace_plain_accuracy_renormalized [T] (mean over the measured
    sequences); subspace_accuracy, subspace_accuracy_renormalized [VB, PL, T] with plane 0 the PC plane
    and planes 1.. the random draws; subspace_removed_variance [VB, PL, Bl];
    subspace_matched_accuracy, subspace_matched_accuracy_renormalized [VB, PM, T] and
    subspace_matched_removed_variance [VB, PM, Bl] for the variance-matched planes, drawn within the
    top subspace_matched_dimension [VB, Bl] principal directions.

    >>> words = [f"w{i}" for i in range(1, 17)]   # the toy bundle's words (w0 is its BOS)
    >>> config = icgt.study.config.preset("grid-subspace", model=toy_bundle, words=words, num_sequences=4,
    ...                                   sequence_length=40, pca_window=30, random_draws=3)
    >>> arrays = icgt.study.compute.compute_run(config, progress=False).arrays
    >>> arrays["subspace_accuracy"].shape, arrays["subspace_removed_variance"].shape   # the PC plane, 3 random
    ((1, 4, 41), (1, 4, 1))
    >>> arrays["subspace_matched_accuracy"].shape, arrays["subspace_matched_dimension"].shape  # 3 matched
    ((1, 3, 41), (1, 1))
    """
    blocks = late_blocks(probe.num_layers)
    clean = clean_run(probe, token_ids, word_ids, config.max_batch)
    batch, length = token_ids.shape
    fit, measure = np.arange(batch // 2), np.arange(batch // 2, batch)
    stats = RepresentationStats(graph.num_nodes)
    generator = torch.Generator().manual_seed(config.seed)
    pc_plane = {}
    for block in blocks:
        window = min(config.pca_window, length - 1)
        means = stats.class_means(_residuals(clean, block)[torch.from_numpy(fit)], torch.from_numpy(nodes[fit]),
                                  window, [length - 1]).means[0]
        pcs = stats.principal_components(means, 2)
        pc_plane[block] = (pcs.components.float(), pcs.mean.float())
    planes = [pc_plane] + [{block: (torch.linalg.qr(torch.randn(probe.hidden_size, 2, generator=generator)).Q.T,
                                    pc_plane[block][1]) for block in blocks}
                           for _ in range(config.random_draws)]

    def project_off(chosen: dict, first_position: int) -> dict:
        def hook(block: int, residual: torch.Tensor) -> torch.Tensor:
            basis, centre = chosen[block]
            return remove_plane(residual, basis, centre, first_position)
        return {("resid_post", block): hook for block in blocks}

    metrics = EnergyMetrics(graph)
    ids = torch.from_numpy(token_ids[measure])
    start = _residuals(clean, blocks[0] - 1)[torch.from_numpy(measure)]

    def accuracy(hooks: dict) -> tuple[np.ndarray, np.ndarray]:
        probabilities = probe.run(ids, start_residual=start, start_layer=blocks[0], hooks=hooks,
                                  target_ids=torch.from_numpy(word_ids), max_batch=config.max_batch).target_probs
        result = metrics.rule_following_accuracy(probabilities, torch.from_numpy(nodes[measure]),
                                                 torch.from_numpy(scored[measure]))
        return result.mean_full_vocabulary.cpu().numpy(), result.mean_renormalized.cpu().numpy()

    def measured(chosen_planes: list[dict], first: int) -> dict[str, np.ndarray]:
        passes = [accuracy(project_off(plane, first)) for plane in chosen_planes]
        return {"accuracy": np.stack([full for full, _ in passes]),
                "accuracy_renormalized": np.stack([renormalized for _, renormalized in passes]),
                "removed_variance": np.array([[removed_share(_residuals(clean, block)[torch.from_numpy(measure)],
                                                             *plane[block], first) for block in blocks]
                                              for plane in chosen_planes])}

    plain = accuracy({})
    curves: dict[str, list] = {}
    for variant in config.bos_variants:
        first = first_ablated_position(variant)
        matched, dimensions = [{} for _ in range(config.random_draws)], []
        for block in blocks:
            basis, centre = pc_plane[block]
            offsets = (_residuals(clean, block)[torch.from_numpy(fit), first:].float() - centre).flatten(0, -2)
            drawn, k = variance_matched_planes(offsets, removed_share(offsets, basis, torch.zeros_like(centre)),
                                               config.random_draws, generator)
            dimensions.append(k)
            for plane, basis_drawn in zip(matched, drawn):
                plane[block] = (basis_drawn, centre)
        for prefix, chosen in (("", planes), ("matched_", matched)):
            for name, values in measured(chosen, first).items():
                curves.setdefault(prefix + name, []).append(values)
        curves.setdefault("matched_dimension", []).append(np.array(dimensions))
    return {"subspace_blocks": np.array(blocks), "subspace_measured_sequences": measure,
            "subspace_bos_included": np.array([variant == "included" for variant in config.bos_variants]),
            "subspace_plain_accuracy": plain[0], "subspace_plain_accuracy_renormalized": plain[1],
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
