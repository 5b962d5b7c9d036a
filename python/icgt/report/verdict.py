"""What a run found, in words: does the model follow the graph, do its class means take the graph's shape,
from which context length and in which blocks, computed from the run's numbers with fixed thresholds.

Like the rest of the report it uses numpy only. The thresholds are module constants, each with the
reason for its value; docs/report.md lists them. "Late" is the last tenth of the context, as in the
key numbers.

>>> from icgt.study.run_folder import load_run
>>> from icgt.report.verdict import judge
>>> print(judge(load_run(grid_run)).sentences[0])   # doctest: +ELLIPSIS
toy-8-layers follows the graph: at the end of the context it puts 93% of its probability over the node words on valid next nodes (uniform guessing: 20%) and 88% of all its probability; ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..study.curves import MIN_AMPLITUDE_SPREADS, log_binned, nanmean, onset, order_of, spans
from ..study.heldout import heldout_sentence, heldout_summary
from ..study.two_graphs import two_graph_sentence, two_graph_summary
from ..study.run_folder import Run

#: Following the graph is judged on the renormalised accuracy as a skill score, (accuracy - chance) /
#: (1 - chance), where chance is uniform guessing over the node words (degree / n): 0 is guessing, 1 is
#: all probability on valid next nodes. "Follows" needs at least half the way from chance to perfect...
FOLLOWS_SKILL = 0.5
#: ... and at least this much of the full-vocabulary probability on valid next nodes: a model that
#: ranks neighbours first among the node words but hardly predicts the node words at all (SmolLM2 on
#: the grid puts 4% of its probability on them) is not following the walk.
FOLLOWS_FULL_VOCABULARY = 0.3
#: Below this skill the renormalised accuracy is within a fifth of the way from chance: "does not
#: follow". Between the two: "follows only partly".
PARTLY_SKILL = 0.2
#: A block's class means take the graph's shape when the drawn PCs (config.pca_components: PCs 1-2, or
#: 2-3 for rings) align with the Laplacian eigenvectors
#: z2, z3 at least this well (mean squared cosine of the principal angles, 1 = the same plane). Random
#: planes give about 2 / (n - 1) (0.13 for the 4x4 grid); the paper's grid pictures are near 0.9;
#: 0.7 leaves both well apart.
SHAPED_ALIGNMENT = 0.7
#: Alignment from here up to SHAPED_ALIGNMENT is a weak trace of the graph: about three times
#: what random planes give on the grid, not yet a picture of it.
TRACE_ALIGNMENT = 0.4
#: Dirichlet energy counts as below the relabelling null when (energy - null mean) / null sd is at
#: most this: lower than about 98% of random relabellings of the nodes (if they were normal).
BELOW_NULL_Z = -2.0
#: "Late" numbers average the last tenth of the context.
LATE_FRACTION = 0.1
#: Onsets ("from about t tokens on") are read on curves averaged in bins of half a doubling of
#: context (as the fastest rise is): the first bin from which the curve stays past the threshold.
ONSET_BINS_PER_DOUBLING = 2


@dataclass
class Verdict:
    """What a run found. ``follows``: "yes", "partly", "no" (or "unknown" without scored positions);
    ``shape``: "yes", "transient" (graph-shaped for a while, not late), "weak" (a trace), "no" (or
    "unknown"). Blocks are icgt's 0-based decoder blocks; positions are context lengths in tokens.
    ``sentences`` say it in words."""

    follows: str
    shape: str
    skill: float | None = None
    accuracy_onset: int | None = None
    shaped_blocks: list[int] = field(default_factory=list)
    shape_onset: int | None = None
    trace_blocks: list[int] = field(default_factory=list)
    late_alignment_by_block: dict[int, float | None] = field(default_factory=dict)
    late_energy_z_by_block: dict[int, float | None] = field(default_factory=dict)
    sentences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (block numbers as string keys, as JSON writes them).

        >>> from icgt.study.run_folder import load_run
        >>> from icgt.report.verdict import judge
        >>> values = judge(load_run(grid_run)).to_dict()
        >>> values["follows"], values["late_alignment_by_block"]["7"] > 0.7
        ('yes', True)
        """
        values = asdict(self)
        for key in ("late_alignment_by_block", "late_energy_z_by_block"):
            values[key] = {str(block): value for block, value in values[key].items()}
        return values


def judge(run: Run, layer: int | None = None) -> Verdict:
    """The verdict of ``run``; ``layer`` (default: :meth:`Run.default_layer`) is the block whose energy
    minimum and days-of-week numbers the sentences quote.

    >>> from icgt.study.run_folder import load_run
    >>> from icgt.report.verdict import judge
    >>> verdict = judge(load_run(grid_run))
    >>> verdict.follows, verdict.shape, verdict.shaped_blocks
    ('yes', 'yes', [7])
    """
    follows, skill, accuracy_onset, following = _following(run)
    verdict = Verdict(follows=follows, shape="unknown", skill=skill, accuracy_onset=accuracy_onset)
    verdict.sentences.append(following)
    verdict.sentences.append(_shape(run, verdict))
    timing = _timing(run, verdict, layer)
    if timing:
        verdict.sentences.append(timing)
    if run.is_days:
        verdict.sentences.append(_days(run, layer))
    if run.has_held_out_edges:
        verdict.sentences.append(heldout_sentence(heldout_summary(run)))
    if run.has_second_graph:
        verdict.sentences.append(two_graph_sentence(two_graph_summary(run)))
    return verdict


def _late(positions: np.ndarray) -> np.ndarray:
    return positions >= (1 - LATE_FRACTION) * positions.max(initial=0)


def _following(run: Run) -> tuple[str, float | None, int | None, str]:
    model = run.model_short_name
    positions, accuracy, _ = run.accuracy_curve()
    _, renormalized, _ = run.accuracy_curve(renormalized=True)
    late = _late(positions)
    full, renormalized_late = _finite_mean(accuracy[late]), _finite_mean(renormalized[late])
    if full is None or renormalized_late is None:
        return "unknown", None, None, f"{model}: no scored positions, so whether it follows the graph is unknown."
    chance = run.chance_accuracy_renormalized()
    skill = (renormalized_late - chance) / (1 - chance) if chance < 1 else 0.0
    bin_positions, binned, _ = run.binned_accuracy(renormalized=True, bins_per_doubling=ONSET_BINS_PER_DOUBLING)
    follow_onset = onset(bin_positions, (binned - chance) / (1 - chance) if chance < 1 else binned, FOLLOWS_SKILL)
    numbers = (f"at the end of the context it puts {_percent(renormalized_late)} of its probability over the node "
               f"words on valid next nodes (uniform guessing: {_percent(chance)}) and {_percent(full)} of all its "
               "probability")
    if skill >= FOLLOWS_SKILL and full >= FOLLOWS_FULL_VOCABULARY:
        when = (f"; it is more than halfway from guessing to perfect from about {follow_onset} tokens on"
                if follow_onset else "")
        return "yes", skill, follow_onset, f"{model} follows the graph: {numbers}{when}."
    if skill >= PARTLY_SKILL:
        why = (" (it ranks the valid next nodes first among the node words, but hardly predicts node words)"
               if skill >= FOLLOWS_SKILL else "")
        return "partly", skill, follow_onset, f"{model} follows the graph only partly{why}: {numbers}."
    return "no", skill, follow_onset, f"{model} does not follow the graph: {numbers}."


def _alignment(run: Run) -> tuple[np.ndarray, np.ndarray, str]:
    """(positions, [layers, snapshots] alignment with the graph, what is aligned) for the shape verdict.

    Days runs: in each block, the PC pair that carries the in-context ring best late in the context
    (the weekly circle is expected in PCs 1-2, the ring beneath it), followed over the whole context."""
    if not run.is_days:
        return (run.arrays["alignment_positions"], run.arrays["spectral_alignment"],
                f"{run.drawn_pcs} align with z2, z3")
    ring = run.arrays["ring_alignment"]  # [layers, snapshots, pairs]
    positions = run.arrays["pca_positions"]
    late = np.stack([_late_means(ring[..., pair], positions) for pair in range(ring.shape[-1])], axis=-1)
    pairs = np.argmax(np.where(np.isfinite(late), late, -np.inf), axis=-1)
    curves = np.take_along_axis(ring, pairs[:, None, None], axis=-1)[..., 0]
    common = int(np.bincount(pairs).argmax())
    if (pairs == common).all():
        aligned = f"PCs {_pair(common)} align with the in-context ring's z2, z3"
    else:
        aligned = (f"the PC pair that carries the in-context ring late in each block (mostly PCs {_pair(common)}) "
                   "aligns with its z2, z3")
    return positions, curves, aligned


def _shape(run: Run, verdict: Verdict) -> str:
    positions, alignment, aligned = _alignment(run)
    late_alignment = _late_means(alignment, positions)
    late_z = _late_means(run.energy_z(), run.arrays["energy_positions"])
    blocks = run.layers
    verdict.late_alignment_by_block = {int(b): _float(a) for b, a in zip(blocks, late_alignment)}
    verdict.late_energy_z_by_block = {int(b): _float(value) for b, value in zip(blocks, late_z)}
    if not np.isfinite(late_alignment).any():
        verdict.shape = "unknown"
        return "Whether the class means take the graph's shape is unknown: no alignment late in the context."

    shaped = np.flatnonzero(late_alignment >= SHAPED_ALIGNMENT)
    best = int(np.nanargmax(late_alignment))
    best_block = f"{run.block_name(blocks[best])}: {late_alignment[best]:.2f}"
    if shaped.size:
        verdict.shape = "yes"
        verdict.shaped_blocks = [int(blocks[index]) for index in shaped]
        bin_positions, _, mean_curve = log_binned(positions, nanmean(alignment[shaped]), ONSET_BINS_PER_DOUBLING)
        verdict.shape_onset = onset(bin_positions, mean_curve, SHAPED_ALIGNMENT)
        when = (f", from about {verdict.shape_onset} tokens on" if verdict.shape_onset
                else " late in the context")
        earlier = [f"{start}–{end}" if start != end else f"{start}"
                   for start, end in spans(bin_positions, mean_curve, SHAPED_ALIGNMENT)
                   if verdict.shape_onset is None or end < verdict.shape_onset]
        if earlier:
            when += f" (and earlier, at {' and '.join(earlier)} tokens)"
        sentence = (f"Its class means take the graph's shape in {_describe_blocks(run, verdict.shaped_blocks)}: "
                    f"{aligned} at {np.mean(late_alignment[shaped]):.2f} late in the context "
                    f"({f'best: {best_block}; ' if shaped.size > 1 else ''}1 = the same plane){when}.")
        shaped_z = late_z[shaped][np.isfinite(late_z[shaped])]
        if shaped_z.size:
            below = int((shaped_z <= BELOW_NULL_Z).sum())
            energy = f"Their Dirichlet energy late in the context (window {run.info['config']['energy_window']} tokens)"
            clearly = f"clearly: z {BELOW_NULL_Z:+.0f} or lower, below about 98% of random relabellings"
            if below == shaped_z.size:
                sentence += f" {energy} is clearly below the relabelling null there (z = {shaped_z.mean():+.1f}; {clearly})."
            elif below:
                sentence += (f" {energy} is clearly below the relabelling null in {below} of these {shaped_z.size} "
                             f"blocks (mean z = {shaped_z.mean():+.1f}; {clearly}).")
            elif shaped_z.mean() < 0:
                sentence += (f" {energy} is below the relabelling null, but not clearly (mean z = "
                             f"{shaped_z.mean():+.1f}; {clearly}).")
            else:
                sentence += f" {energy} is not below the relabelling null (mean z = {shaped_z.mean():+.1f})."
        return sentence

    peak = _peak(run, positions, alignment)
    trace = sorted({int(b) for b, a, value in zip(blocks, late_alignment, late_z)
                    if (np.isfinite(a) and a >= TRACE_ALIGNMENT) or (np.isfinite(value) and value <= BELOW_NULL_Z)})
    verdict.trace_blocks = trace
    baseline = "" if run.is_days else f"; random planes: about {2 / (len(run.labels) - 1):.2f}"
    if peak is not None:
        verdict.shape = "transient"
        block, position, value = peak
        return (f"Its class means take the graph's shape only for a while: in {run.block_name(block)} {aligned} "
                f"at {value:.2f} around {position} tokens, but at most {late_alignment[best]:.2f} late in the "
                f"context ({best_block}; graph-shaped: {SHAPED_ALIGNMENT} or more).")
    if trace:
        verdict.shape = "weak"
        energy_blocks = [int(b) for b, value in zip(blocks, late_z) if np.isfinite(value) and value <= BELOW_NULL_Z]
        energy = (f"; their energy is below the relabelling null in {_describe_blocks(run, energy_blocks)} "
                  f"(z down to {np.nanmin(late_z):+.1f})" if energy_blocks else "")
        return (f"Its class means carry only a weak trace of the graph: late in the context {aligned} at most at "
                f"{late_alignment[best]:.2f} ({best_block}; graph-shaped: {SHAPED_ALIGNMENT} or more{baseline})"
                f"{energy}.")
    verdict.shape = "no"
    return (f"Its class means do not take the graph's shape: late in the context {aligned} at most at "
            f"{late_alignment[best]:.2f} ({best_block}; graph-shaped: {SHAPED_ALIGNMENT} or more{baseline}), and "
            f"their energy is not below the relabelling null (z above {BELOW_NULL_Z:+.0f} in every block).")


def _peak(run: Run, positions: np.ndarray, alignment: np.ndarray) -> tuple[int, int, float] | None:
    """(block, position, value) of the highest binned alignment past SHAPED_ALIGNMENT anywhere in the context,
    the first bin of each curve left out (an edge: windows that hold a handful of tokens); None if none."""
    found = None
    for block, row in zip(run.layers, alignment):
        bin_positions, _, values = log_binned(positions, row, ONSET_BINS_PER_DOUBLING)
        if values.size < 2:
            continue
        index = int(np.argmax(values[1:])) + 1
        if values[index] >= SHAPED_ALIGNMENT and (found is None or values[index] > found[2]):
            found = (int(block), int(bin_positions[index]), float(values[index]))
    return found


def _timing(run: Run, verdict: Verdict, layer: int | None) -> str | None:
    """The paper's ordering, tested on change points: does the energy of the class means fall before
    accuracy rises (icgt.study.analysis: both curves over the trailing half of the context; the run's own
    estimate and a 95% interval over resamples of its sequences)? With the paper's own statistic beside it."""
    if verdict.follows == "no" or verdict.shape not in ("yes", "transient"):
        return None
    timing = lag_summary(run)
    block = run.block_name(timing["block"])
    paper = timing["paper"]
    paper_text = (f"The paper's statistic, from the energy's minimum ({paper['energy_at']:.0f} tokens) to accuracy's "
                  f"steepest rise ({paper['accuracy_at']:.0f}), gives {paper['lag_doublings']:+.1f} doublings"
                  + (f" (95% interval {paper['lag_ci95'][0]:+.1f} to {paper['lag_ci95'][1]:+.1f})"
                     if paper["lag_ci95"][0] is not None else "")
                  + "; a minimum on a flat floor marks no change, so the sigmoid fits decide."
                  if paper["lag_doublings"] is not None else "")
    if timing["energy_change_point"] is None or timing["accuracy_change_point"] is None:
        missing = " and ".join(name for name, key in (("the energy has no fall", "energy_change_point"),
                                                      ("accuracy has no rise", "accuracy_change_point"))
                               if timing[key] is None)
        return (f"Order of the changes in {block}: undecided, because {missing} clear enough to time (a sigmoid fit "
                f"in log context that explains at least half the curve's variance, with a change of at least "
                f"{MIN_AMPLITUDE_SPREADS:.0f} resampling standard deviations). {paper_text}").strip()
    low, high = timing["lag_ci95"]
    order = {"energy first": "the energy falls first, as the paper finds",
             "accuracy first": "accuracy rises first, against the paper's order",
             "undecided": ("undecided: " + ("the interval holds zero" if low is not None and low <= 0 <= high else
                                            f"only {timing['lag_defined_share']:.0%} of the resamples have both "
                                            "change points"))}[timing["order"]]
    interval = f"95% interval {low:+.1f} to {high:+.1f}" if low is not None else "no interval"
    return (f"The energy of the class means in {block} falls at about {timing['energy_change_point']:.0f} tokens and "
            f"accuracy rises at about {timing['accuracy_change_point']:.0f} (both over the trailing half of the "
            f"context): a lag of {timing['lag_doublings']:+.1f} doublings of context ({interval} over resamples of the "
            f"sequences); {order}. {paper_text}").strip()


def _lag_numbers(first: np.ndarray, second: np.ndarray) -> dict:
    """The lag log2(second / first) of a run (entry 0) and its 95% percentile interval over the resamples."""
    lags = np.log2(second / first)
    finite = lags[1:][np.isfinite(lags[1:])]

    def number(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    share = float(finite.size / max(1, lags.size - 1))
    interval = [float(v) for v in np.percentile(finite, [2.5, 97.5])] if finite.size >= 10 else [None, None]
    return {"energy_at": number(first[0]), "accuracy_at": number(second[0]), "lag_doublings": number(lags[0]),
            "lag_ci95": interval, "lag_defined_share": share,
            "order": order_of(interval, share) if np.isfinite(lags[0]) else "undecided"}


def lag_summary(run: Run) -> dict:
    """The change points of the run (entry 0 of its bootstrap arrays: the energy's fall and accuracy's
    rise, full vocabulary), the lag log2(accuracy / energy) in doublings, its 95% percentile interval
    over the resampled sequences (None where undefined), the order it decides (order_of), and under
    "paper" the same numbers for the paper's statistic (the energy's minimum, accuracy's steepest rise).

    >>> from icgt.study.run_folder import load_run
    >>> timing = lag_summary(load_run(grid_run))
    >>> timing["block"], round(timing["lag_doublings"]), timing["lag_ci95"][0] < 2 < timing["lag_ci95"][1]
    (6, 2, True)
    >>> timing["order"]
    'energy first'
    """
    arrays = run.arrays
    sigmoid = _lag_numbers(arrays["energy_change_points"], arrays["accuracy_change_points"][:, 0])
    return {"block": int(arrays["lag_layer"]), "energy_change_point": sigmoid["energy_at"],
            "accuracy_change_point": sigmoid["accuracy_at"],
            **{key: sigmoid[key] for key in ("lag_doublings", "lag_ci95", "lag_defined_share", "order")},
            "paper": _lag_numbers(arrays["energy_minimum_points"], arrays["accuracy_rise_points"][:, 0])}


def _days(run: Run, layer: int | None) -> str:
    layer_index = run.layer_index(layer)
    weekly = run.arrays["weekly_alignment"][layer_index, -1]
    ring = run.arrays["ring_alignment"][layer_index, -1]
    if not (np.isfinite(weekly).any() and np.isfinite(ring).any()):
        return "Days of the week: no PCs at the last snapshot."
    weekly_pair, ring_pair = int(np.nanargmax(weekly)), int(np.nanargmax(ring))
    where = f"{run.block_name(run.layers[layer_index])}, {run.arrays['pca_positions'][-1]} tokens"

    def place(name: str, alignment: np.ndarray, pair: int) -> str:
        if alignment[pair] < TRACE_ALIGNMENT:
            return f"no pair of PCs carries the {name} (at most {alignment[pair]:.2f})"
        return f"the {name} is in PCs {_pair(pair)} (alignment {alignment[pair]:.2f})"

    if weekly_pair == ring_pair and min(weekly[weekly_pair], ring[ring_pair]) >= TRACE_ALIGNMENT:
        return (f"Days of the week ({where}): the weekly circle and the in-context ring compete for the same "
                f"PCs {_pair(weekly_pair)} (alignment {weekly[weekly_pair]:.2f} and {ring[ring_pair]:.2f}).")
    return (f"Days of the week ({where}): {place('weekly circle', weekly, weekly_pair)} and "
            f"{place('in-context ring', ring, ring_pair)}.")


def _pair(pair: int) -> str:
    return f"{2 * pair + 1}-{2 * pair + 2}"


def _describe_blocks(run: Run, blocks: list[int]) -> str:
    """ "blocks 12-17 of 18, in the deep third" (icgt's 0-based numbering; ranges of consecutive blocks)."""
    ranges, start = [], None
    for index, block in enumerate(blocks):
        if start is None:
            start = block
        if index + 1 == len(blocks) or blocks[index + 1] != block + 1:
            ranges.append(f"{start}" if start == block else f"{start}–{block}")
            start = None
    thirds = [name for name, indices in run.layer_groups().items() if set(run.layers[indices].tolist()) & set(blocks)]
    if len(thirds) == 3:
        where = "in every third of the depth"
    else:
        where = f"in the {' and '.join(thirds)} third{'s' if len(thirds) > 1 else ''}"
    noun = "block" if len(blocks) == 1 else "blocks"
    return f"{noun} {', '.join(ranges)} of {run.num_layers}, {where}"


def _late_means(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The mean of each row of [layers, snapshots] over the late snapshots (finite values; NaN if none)."""
    return nanmean(values[:, _late(positions)].T)


def _finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _percent(value: float) -> str:
    return f"{value:.1%}" if abs(value) < 0.01 and value != 0 else f"{value:.0%}"
