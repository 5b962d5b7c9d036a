"""The report of a mechanism run (icgt.study.mechanism): sentences that state the result, its numbers with
95% intervals (t intervals, clustered by walk where a walk holds several cases) or, for a random control,
the spread of its draws (2.5-97.5 percentiles), and figures. Like icgt.report it needs only numpy and
matplotlib (and scipy's t quantiles, icgt.study.intervals).

Example:
    >>> from icgt.report.mechanism import mechanism_summary
    >>> from icgt.study.run_folder import load_run
    >>> summary = mechanism_summary(load_run(intervention_run))
    >>> summary["experiment"], len(summary["sentences"]) > 0
    ('intervention', True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .plots import context_length_axis, new_figure
from ..study.intervals import clustered_interval, spread
from ..study.run_folder import Run

#: The intervention's conditions in words, in the order of icgt.study.mechanism.INTERVENTION_CONDITIONS.
CONDITIONS = {"intervention": ("clean", "moved to the target", "random direction, same norm", "moved to its own place",
                              "random place in the plane, same norm")}
#: The late context over which accuracy is averaged in the sentences: its last tenth.
LATE = 0.9


def experiment_of(run: Run) -> str:
    return run.info["config"].get("experiment", "graph")


def _late_accuracy(curve: np.ndarray) -> float:
    positions = np.arange(curve.shape[-1])
    late = positions >= LATE * positions.max()
    values = curve[..., late]
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def mechanism_summary(run: Run) -> dict[str, Any]:
    """The numbers of a mechanism run and the sentences that state its result."""
    experiment = experiment_of(run)
    summary: dict[str, Any] = {"run": run.name, "model": run.model_name, "model_description": run.model_description,
                               "graph": run.graph_kind, "experiment": experiment}
    summary.update({"intervention": _intervention, "heads": _heads, "subspace": _subspace,
                    "toy_mixing": _toy}[experiment](run))
    return summary


def _intervention(run: Run) -> dict[str, Any]:
    """The intervention's numbers: each condition's mean over cases with a 95% t interval clustered by
    sequence (each sequence's targets averaged first: they share its context), and the paired
    difference of the move from each control (case by case, then clustered likewise)."""
    arrays = run.arrays
    blocks = arrays["intervention_blocks"]
    conditions = CONDITIONS["intervention"]
    numbers: dict[str, Any] = {}
    for name in ("mass", "mass_renormalized", "top1", "top3"):
        values = arrays[f"intervention_{name}"].astype(float)  # [conditions, B, K]
        numbers[name] = {condition: clustered_interval(row)[:2] for condition, row in zip(conditions, values)}
    mass = arrays["intervention_mass"].astype(float)
    sequences, targets = mass.shape[1:]
    differences = {control: clustered_interval(mass[1] - mass[index])[:2]
                   for index, control in ((0, "clean"), (2, "random direction"), (4, "random place in the plane"))}
    numbers["moved_minus"] = differences
    clean, moved, random_, self_, in_plane = (numbers["mass"][c] for c in conditions)
    renormalized = numbers["mass_renormalized"]
    top1 = numbers["top1"]

    def stated(value: tuple[float, float]) -> str:
        return f"{value[0]:.3f} ± {value[1]:.3f}"

    sentence = (f"Moving the last token of each walk to a random target node's place in the plane of its class "
                f"means' PCs 1-2, in {blocks_text(blocks)}, puts {stated(moved)} of the next-token "
                f"probability on the target's neighbours ({sequences} walks x {targets} targets; 95% intervals over "
                f"walks; clean: {stated(clean)}; a random direction of the same norm: {stated(random_)}; a random "
                f"place in the plane at the same distance: {stated(in_plane)}; moved to its own place: "
                f"{stated(self_)}). Over the node words alone: {renormalized[conditions[1]][0]:.3f} (clean "
                f"{renormalized[conditions[0]][0]:.3f}, random direction {renormalized[conditions[2]][0]:.3f}, random "
                f"place in the plane {renormalized[conditions[4]][0]:.3f}). The top node word is a neighbour of the "
                f"target in {top1[conditions[1]][0]:.0%} of cases (random direction: {top1[conditions[2]][0]:.0%}; "
                f"random place in the plane: {top1[conditions[4]][0]:.0%}; clean: {top1[conditions[0]][0]:.0%}).")
    beats = {control: _low_end(value) > 0 for control, value in differences.items()}
    if all(beats.values()):
        verdict = ("The geometry is used: the move shifts predictions toward the target's neighbours more than a "
                   "random move of the same size, in any direction or within the plane (paired differences "
                   f"{stated(differences['random direction'])} and {stated(differences['random place in the plane'])}).")
    else:
        failed = [control for control, beaten in beats.items() if not beaten]
        verdict = ("The move does not shift predictions toward the target's neighbours more than "
                   + _listed([{"clean": "the clean run", "random direction": "a random move of the same size",
                               "random place in the plane": "a move of the same size to a random place in the "
                                                            "plane"}[c] for c in failed], "or")
                   + " (paired differences, 95% intervals over walks: "
                   + "; ".join(f"{c}: {stated(differences[c])}" for c in failed)
                   + "): this does not show that the geometry is used.")
    sentences = [sentence, verdict]
    if "intervention_unembedding_mass" in arrays:
        option = {name: clustered_interval(arrays[f"intervention_unembedding_{name}"].astype(float))[:2]
                  for name in ("mass", "mass_renormalized", "top1", "top3")}
        option["minus_moved"] = clustered_interval(arrays["intervention_unembedding_mass"] - mass[1])[:2]
        numbers["unembedding"] = option
        times = run.info["config"]["intervention_unembedding"]
        sentences.append(
            f"With the authors' option, the move also subtracting the target word's unembedding (unit length) "
            f"{times:g} time{'s' if times != 1 else ''} per PC: {stated(option['mass'])} on the target's neighbours "
            f"(over the node words alone {option['mass_renormalized'][0]:.3f}; top node word a neighbour in "
            f"{option['top1'][0]:.0%} of cases), {stated(option['minus_moved'])} from the plain move (paired, 95% "
            f"interval over walks).")
    return {"numbers": numbers, "blocks": blocks.tolist(), "cases": sequences * targets, "sequences": sequences,
            "sentences": sentences}


def _listed(items: list[str], last: str = "and") -> str:
    """Items in words: "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {last} " + items[-1]


def blocks_text(blocks: Any) -> str:
    """Consecutive blocks in words.

    >>> blocks_text(np.array([15, 16, 17])), blocks_text(np.array([2]))
    ('blocks 15-17', 'block 2')
    """
    blocks = np.asarray(blocks)
    return f"block {int(blocks[0])}" if blocks.size == 1 else f"blocks {int(blocks.min())}-{int(blocks.max())}"


def _low_end(value: tuple[float, float]) -> float:
    """The lower end of a (mean, half-width) interval; NaN where either is."""
    return value[0] - value[1]


#: How an ablation treats the BOS, in words, by whether it included it.
BOS_WORDS = {False: "the BOS spared", True: "the BOS included"}


def share_of_heads(k: int, total: int) -> str:
    """An ablation's size as a count and a share of all heads.

    >>> share_of_heads(4, 72)
    '4 of 72 heads, 5.6%'
    """
    return f"{k} of {total} heads, {100 * k / total:.1f}%"


def _heads_word(k: int) -> str:
    return "head" if k == 1 else "heads"


def _spread_text(values: dict[str, Any], digits: int = 3) -> str:
    return f"{values['mean']:.{digits}f} [{values['low']:.{digits}f}-{values['high']:.{digits}f}]"


def late_accuracy(values: np.ndarray) -> np.ndarray:
    """Late accuracy of each curve [..., T]: its mean over the last tenth of the context (LATE), NaN where that
    holds no finite value.

    >>> late_accuracy(np.array([[0.0] * 9 + [0.5, 0.7], [np.nan] * 11])).tolist()
    [0.6, nan]
    """
    return np.vectorize(_late_accuracy, signature="(t)->()")(values)


def compared_count(counts: list[int], random_counts: list[int], total: int) -> tuple[int, int]:
    """The k at which the top heads are read against random ones, as (its index in counts, its index in
    random_counts): of the ks random heads were drawn at (head_random_counts), the one nearest 5% of all
    total heads. Raises ValueError when there is none, or one that is not among counts (head_counts).

    >>> compared_count([1, 2, 4, 7, 14], [4], 72)   # Gemma 3 270M: 4 of 72 heads
    (2, 0)
    >>> compared_count([1, 2, 4, 7, 14], [1, 4], 72)
    (2, 1)
    """
    stray = sorted(set(random_counts) - set(counts))
    if stray or not random_counts:
        raise ValueError(f"random heads must be drawn at some of the ablation sizes {counts}, got {random_counts}")
    # 5%: icgt.study.mechanism.COMPARED_SHARE, not imported here (the report needs no torch).
    r = int(np.argmin(np.abs(np.array(random_counts) - 0.05 * total)))
    return counts.index(random_counts[r]), r


def _heads(run: Run) -> dict[str, Any]:
    """The heads experiment's numbers: late accuracy (full vocabulary and renormalised) and alignment for
    every ablation kind, BOS variant, top set and k; the random heads, drawn for the first kind only and
    at head_random_counts only, as the mean and the 2.5-97.5 percentiles of their draws; and the
    sentences, led by the first ablation kind. Random numbers are stated only where they were drawn."""
    arrays = run.arrays
    counts = [int(k) for k in arrays["head_counts"]]
    random_counts = [int(k) for k in arrays["head_random_counts"]]
    total = arrays["head_previous_token"].size
    kinds = [str(kind) for kind in arrays["head_ablation_kinds"]]
    bos_included = [bool(v) for v in arrays["head_bos_included"]]
    clean = {"accuracy": _late_accuracy(arrays["head_clean_accuracy"]),
             "accuracy_renormalized": _late_accuracy(arrays["head_clean_accuracy_renormalized"]),
             "alignment": float(arrays["head_clean_alignment"])}
    late = {"accuracy": late_accuracy(arrays["head_accuracy"]), "accuracy_renormalized": late_accuracy(
        arrays["head_accuracy_renormalized"]), "alignment": arrays["head_alignment"]}  # each [A, VB, 2, K]
    random_late = {"accuracy": late_accuracy(arrays["head_random_accuracy"]), "accuracy_renormalized": late_accuracy(
        arrays["head_random_accuracy_renormalized"]), "alignment": arrays["head_random_alignment"]}  # [VB, D, KR]
    draws = arrays["head_random_accuracy"].shape[1]
    ablations: dict[str, dict[str, Any]] = {}
    for a, kind in enumerate(kinds):
        for v, included in enumerate(bos_included):
            numbers = {name: {"previous_token": values[a, v, 0].tolist(), "induction": values[a, v, 1].tolist()}
                       for name, values in late.items()}
            if a == 0:  # the random heads, by head_random_counts
                for name, values in random_late.items():
                    numbers[name]["random"] = [spread(values[v, :, r]) for r in range(len(random_counts))]
            ablations.setdefault(kind, {})[BOS_WORDS[included]] = numbers
    k_index, r_index = compared_count(counts, random_counts, total)
    k = counts[k_index]
    block = int(arrays["head_analysis_block"])
    sentences = []
    for a, kind in enumerate(kinds):
        for included in bos_included:
            numbers = ablations[kind][BOS_WORDS[included]]
            accuracy, renormalized, alignment = (numbers[name] for name in ("accuracy", "accuracy_renormalized",
                                                                             "alignment"))
            verb = f"{kind.capitalize()}-ablating"
            if a == 0:
                sentences.append(
                    f"{verb} the top {k} induction {_heads_word(k)} ({share_of_heads(k, total)}; {BOS_WORDS[included]}) changes "
                    f"late accuracy from {clean['accuracy']:.3f} to {accuracy['induction'][k_index]:.3f} "
                    f"(renormalised over the node words: {clean['accuracy_renormalized']:.3f} to "
                    f"{renormalized['induction'][k_index]:.3f}); the top {k} previous-token {_heads_word(k)}: "
                    f"{accuracy['previous_token'][k_index]:.3f} ({renormalized['previous_token'][k_index]:.3f}); {k} "
                    f"random {_heads_word(k)}: {_spread_text(accuracy['random'][r_index])} "
                    f"({_spread_text(renormalized['random'][r_index])}; mean [2.5-97.5 percentiles] of {draws} draws).")

                def by_size(i: int, count: int) -> str:
                    text = f"k = {count} ({100 * count / total:.1f}%): {accuracy['previous_token'][i]:.3f} / " \
                           f"{accuracy['induction'][i]:.3f}"
                    if count in random_counts:
                        text += f" / random {_spread_text(accuracy['random'][random_counts.index(count)])}"
                    return text

                sentences.append(
                    "Late accuracy by ablation size (top previous-token / top induction heads, and random heads where "
                    f"drawn, {draws} draws at k = {', '.join(map(str, random_counts))}): "
                    + "; ".join(by_size(i, count) for i, count in enumerate(counts)) + ".")
                sentences.append(
                    f"In block {block} the class means' alignment with z2, z3 goes from {clean['alignment']:.2f} to "
                    f"{alignment['induction'][k_index]:.2f} (top {k} induction {_heads_word(k)} {kind}-ablated), "
                    f"{alignment['previous_token'][k_index]:.2f} (top {k} previous-token {_heads_word(k)}) and "
                    f"{_spread_text(alignment['random'][r_index], 2)} ({k} random {_heads_word(k)}).")
            else:
                sentences.append(
                    f"{verb} them instead ({BOS_WORDS[included]}): late accuracy {accuracy['induction'][k_index]:.3f} "
                    f"(top {k} induction {_heads_word(k)}), {accuracy['previous_token'][k_index]:.3f} "
                    f"(previous-token); "
                    f"alignment {alignment['induction'][k_index]:.2f}, {alignment['previous_token'][k_index]:.2f} "
                    f"(random heads are drawn for the {kinds[0]} ablation only).")
    overlap = [int(v) for v in arrays["head_top_overlap"]]
    sentences.append("The top-k previous-token and induction heads overlap in " + "; ".join(
        f"{shared} of {count}" for shared, count in zip(overlap, counts)) + f" heads (k = {', '.join(map(str, counts))}).")
    top = {kind: np.unravel_index(np.argmax(arrays[f"head_{kind}"]), arrays[f"head_{kind}"].shape)
           for kind in ("previous_token", "induction")}
    scores = {kind: float(arrays[f"head_{kind}"].max()) for kind in ("previous_token", "induction")}
    sentences.append(f"Strongest previous-token head: block {top['previous_token'][0]} head {top['previous_token'][1]} "
                     f"(score {scores['previous_token']:.2f}); strongest induction head: block {top['induction'][0]} "
                     f"head {top['induction'][1]} (score {scores['induction']:.2f}).")
    return {"clean_late": clean, "counts": counts, "fractions": [k / total for k in counts], "total_heads": total,
            "draws": draws, "random_counts": random_counts, "random_kind": kinds[0], "ablations": ablations,
            "top_overlap": overlap, "strongest_heads": {kind: [int(v) for v in top[kind]] for kind in top},
            "top_scores": scores, "sentences": sentences}


def _subspace(run: Run) -> dict[str, Any]:
    """The subspace ablation's numbers: late accuracy (both variants) without projection, without the PC
    plane and without each random and variance-matched plane (mean and 2.5-97.5 percentiles of the
    draws; runs written before the matched planes have none), and the share of the residual stream's
    variance each plane holds (mean over the blocks), per BOS variant."""
    arrays = run.arrays
    blocks = arrays["subspace_blocks"]
    plain = {"accuracy": _late_accuracy(arrays["subspace_plain_accuracy"]),
             "accuracy_renormalized": _late_accuracy(arrays["subspace_plain_accuracy_renormalized"])}
    controls = {"random_planes": "subspace_", "matched_planes": "subspace_matched_"}
    controls = {name: prefix for name, prefix in controls.items() if f"{prefix}accuracy" in arrays}
    variants: dict[str, Any] = {}
    sentences = []
    for v, included in enumerate(arrays["subspace_bos_included"].tolist()):
        pc_late = {name: _late_accuracy(arrays[f"subspace_{name}"][v, 0])
                   for name in ("accuracy", "accuracy_renormalized")}
        numbers: dict[str, Any] = {"pc_plane": {**pc_late, "removed_variance":
                                                float(arrays["subspace_removed_variance"][v, 0].mean())}}
        for control, prefix in controls.items():
            first = 1 if control == "random_planes" else 0  # plane 0 of the first set is the PC plane
            late = {name: np.array([_late_accuracy(curve) for curve in arrays[f"{prefix}{name}"][v, first:]])
                    for name in ("accuracy", "accuracy_renormalized")}  # [planes]
            numbers[control] = {**{name: spread(values) for name, values in late.items()},
                                "removed_variance": spread(arrays[f"{prefix}removed_variance"][v, first:].mean(axis=1))}
            numbers[f"{control}_at_or_above"] = int((late["accuracy"] >= pc_late["accuracy"]).sum())
        if "matched_planes" in controls:
            matched_late = np.array([_late_accuracy(curve) for curve in arrays["subspace_matched_accuracy"][v]])
            holding_less = arrays["subspace_matched_removed_variance"][v].mean(axis=1) < numbers["pc_plane"][
                "removed_variance"]
            numbers["matched_planes"].update({
                "dimension": arrays["subspace_matched_dimension"][v].tolist(),
                "holding_less": int(holding_less.sum()),
                "holding_less_at_or_above": int((matched_late[holding_less] >= pc_late["accuracy"]).sum())})
        variants[BOS_WORDS[included]] = numbers
        random_ = numbers["random_planes"]
        draws = random_["accuracy"]["draws"]
        sentence = (
            f"Projecting the residual stream of {blocks_text(blocks)} off the plane of the class means' PCs 1-2 "
            f"(fitted on other walks; {BOS_WORDS[included]}) changes late accuracy from {plain['accuracy']:.3f} to "
            f"{numbers['pc_plane']['accuracy']:.3f} (renormalised: {plain['accuracy_renormalized']:.3f} to "
            f"{numbers['pc_plane']['accuracy_renormalized']:.3f}); random planes: "
            f"{_spread_text(random_['accuracy'])} ({_spread_text(random_['accuracy_renormalized'])}; mean [2.5-97.5 "
            f"percentiles] of {draws} draws), {numbers['random_planes_at_or_above']} of {draws} leaving accuracy at "
            f"or above the PC plane's. The PC plane holds {100 * numbers['pc_plane']['removed_variance']:.2f}% of the "
            f"residual stream's variance about its centre there, a random plane "
            f"{100 * random_['removed_variance']['mean']:.2f}% [{100 * random_['removed_variance']['low']:.2f}-"
            f"{100 * random_['removed_variance']['high']:.2f}%] (mean over the blocks).")
        if "matched_planes" in controls:
            matched = numbers["matched_planes"]
            sentence += (
                f" Planes drawn within the stream's top {'/'.join(map(str, matched['dimension']))} principal "
                f"directions (by block), to hold as much, hold {100 * matched['removed_variance']['mean']:.2f}% "
                f"[{100 * matched['removed_variance']['low']:.2f}-{100 * matched['removed_variance']['high']:.2f}%] "
                f"and leave accuracy at {_spread_text(matched['accuracy'])} "
                f"({_spread_text(matched['accuracy_renormalized'])}), {numbers['matched_planes_at_or_above']} of "
                f"{matched['accuracy']['draws']} at or above the PC plane's; "
                + (f"of the {matched['holding_less']} that hold less variance than the PC plane, "
                   f"{matched['holding_less_at_or_above']} leave accuracy at or above its." if matched["holding_less"]
                   else "none holds less variance than the PC plane."))
        sentences.append(sentence)
    return {"plain_late_accuracy": plain, "variants": variants, "blocks": blocks.tolist(), "sentences": sentences}


def _toy(run: Run) -> dict[str, Any]:
    alignment = run.arrays["toy_spectral_alignment"][0]
    finite = np.flatnonzero(np.isfinite(alignment))
    final = float(alignment[finite[-1]]) if finite.size else math.nan
    p_values = run.arrays["toy_energy_p_value"][0]
    sentence = (f"A one-step mixture of random Gaussian node vectors (each position its node's vector plus the "
                f"previous token's), through the same analysis, aligns with z2, z3 at {final:.2f} late in the "
                f"context; its energy's p-value against the relabelling null there is "
                f"{float(p_values[np.flatnonzero(np.isfinite(p_values))[-1]]):.3g}. A model's geometry is news only "
                "beyond this.")
    return {"final_alignment": final, "sentences": [sentence]}


def mechanism_figures(run: Run) -> dict[str, Figure]:
    """The figures of a mechanism run, by name."""
    experiment = experiment_of(run)
    if experiment == "intervention":
        return {"intervention": _intervention_figure(run)}
    if experiment == "heads":
        return {"head_scores": _head_scores_figure(run), "head_ablations": _head_ablations_figure(run)}
    if experiment == "subspace":
        return {"subspace": _subspace_figure(run)}
    return {"toy_mixing": _toy_figure(run)}


FIGURE_CAPTIONS = {
    "intervention": "Probability mass on the target's neighbours and how often the top (top three) node words are "
                    "among them, by condition; bars: means over cases, lines: 95% t intervals over walks (each "
                    "walk's targets averaged first).",
    "head_scores": "Previous-token and induction scores of every head (BOS and random tokens repeated twice).",
    "head_ablations": "Late accuracy with the top-k previous-token and top-k induction heads ablated, one panel per "
                      "ablation kind (solid: the BOS spared; dashed: the BOS ablated too), and with k random heads "
                      "ablated, drawn for the first kind only and at the k nearest 5% of the heads only: mean and "
                      "the 2.5-97.5 percentiles of the draws (triangle and bar; hollow: the BOS ablated too); the "
                      "dotted line is the plain model.",
    "subspace": "Accuracy over context with the late blocks' residuals projected off the class means' PC1-2 plane "
                "and off random planes (mean and 2.5-97.5 percentiles of the draws, band); solid: the BOS spared, "
                "dashed: the BOS projected too.",
    "toy_mixing": "Alignment of a one-step mixture of random node vectors with z2, z3 over context.",
}


def _intervention_figure(run: Run) -> Figure:
    figure = new_figure(11, 3.6)
    axes = figure.subplots(1, 3)
    labels = ["clean", "moved", "random\ndirection", "own place", "random place\nin plane"]
    for ax, name, title in zip(axes, ("mass", "top1", "top3"),
                               ("mass on the target's neighbours", "top node word is a neighbour", "one of top three is")):
        values = run.arrays[f"intervention_{name}"].astype(float)
        means = [clustered_interval(row)[:2] for row in values]
        ax.bar(range(len(means)), [m for m, _ in means], yerr=[h for _, h in means],
               color=["0.6", "tab:red", "tab:blue", "0.8", "tab:cyan"])
        ax.set_xticks(range(len(means)), labels, rotation=30, fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 1)
    return figure


def _head_scores_figure(run: Run) -> Figure:
    figure = new_figure(10, 3.6)
    axes = figure.subplots(1, 2)
    for ax, kind in zip(axes, ("previous_token", "induction")):
        image = ax.imshow(run.arrays[f"head_{kind}"].T, aspect="auto", origin="lower", vmin=0, vmax=1, cmap="viridis")
        ax.set_xlabel("block")
        ax.set_ylabel("head")
        ax.set_title(kind.replace("_", "-") + " score")
    figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


def _head_ablations_figure(run: Run) -> Figure:
    arrays = run.arrays
    kinds = [str(kind) for kind in arrays["head_ablation_kinds"]]
    figure = new_figure(5 * len(kinds) + 1, 4)
    axes = np.atleast_1d(figure.subplots(1, len(kinds), sharey=True))
    counts = arrays["head_counts"]
    total = arrays["head_previous_token"].size
    late = late_accuracy(arrays["head_accuracy"])  # [A, VB, 2, K]
    random_late = late_accuracy(arrays["head_random_accuracy"])  # [VB, D, KR]: the first kind only
    for a, (ax, kind) in enumerate(zip(axes, kinds)):
        for v, included in enumerate(arrays["head_bos_included"].tolist()):
            style = "--" if included else "-"
            suffix = f" ({BOS_WORDS[included]})" if arrays["head_bos_included"].size > 1 else ""
            ax.plot(counts, late[a, v, 0], "o" + style, color="tab:blue", label="top previous-token heads" + suffix)
            ax.plot(counts, late[a, v, 1], "s" + style, color="tab:red", label="top induction heads" + suffix)
            if a == 0:
                spreads = [spread(random_late[v, :, r]) for r in range(random_late.shape[2])]
                means = np.array([s["mean"] for s in spreads])
                shift = 1.06 ** (v - (arrays["head_bos_included"].size - 1) / 2)  # the variants side by side
                ax.errorbar(arrays["head_random_counts"] * shift, means,
                            yerr=[means - [s["low"] for s in spreads], [s["high"] for s in spreads] - means],
                            fmt="^", linestyle="none", color="0.4", capsize=4, mfc="none" if included else "0.4",
                            label=f"random heads ({random_late.shape[1]} draws)" + suffix)
        ax.axhline(_late_accuracy(arrays["head_clean_accuracy"]), color="k", linestyle=":", label="no ablation")
        ax.set_xscale("log")
        ax.set_xticks(counts, [f"{k}\n{100 * k / total:.1f}%" for k in counts], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("heads ablated (k, share of all heads)")
        ax.set_title(f"{kind} ablation" + ("" if a == 0 else " (no random draws)"))
    axes[0].set_ylabel("late accuracy (full vocabulary)")
    axes[0].legend(fontsize=7)
    return figure


#: Bins of the mechanism figures' accuracy over context: about this many, of equal width in log context length.
CONTEXT_BINS = 30


def context_bins(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(edges, centres) of about CONTEXT_BINS bins of equal width in log context length over a curve of
    ``length`` positions (position t at index t, the BOS at 0): bin i holds positions edges[i] to
    edges[i + 1] - 1, and is drawn at the geometric mean of its edges.

    >>> edges, centres = context_bins(11)
    >>> edges.tolist(), centres.round(2).tolist()[:3]
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1.41, 2.45, 3.46])
    """
    edges = np.unique(np.round(np.geomspace(1, length - 1, CONTEXT_BINS)).astype(int))
    return edges, np.sqrt(edges[:-1] * edges[1:])


def binned(curve: np.ndarray, edges: np.ndarray) -> list[float]:
    """The mean of ``curve`` [T] in each bin of :func:`context_bins`' edges, NaN where a bin holds no finite value.

    >>> binned(np.array([np.nan, 1.0, 3.0, 5.0, np.nan]), np.array([1, 3, 5]))
    [2.0, 5.0]
    """
    return [float(np.nanmean(curve[low:high])) if np.isfinite(curve[low:high]).any() else math.nan
            for low, high in zip(edges[:-1], edges[1:])]


def _subspace_figure(run: Run) -> Figure:
    figure = new_figure(6.5, 4)
    ax = figure.subplots()
    arrays = run.arrays
    bins, centres = context_bins(arrays["subspace_plain_accuracy"].shape[-1])
    ax.plot(centres, binned(arrays["subspace_plain_accuracy"], bins), color="k", label="plain")
    for v, included in enumerate(arrays["subspace_bos_included"].tolist()):
        style = "--" if included else "-"
        suffix = f" ({BOS_WORDS[included]})" if arrays["subspace_bos_included"].size > 1 else ""
        curves = arrays["subspace_accuracy"][v]
        ax.plot(centres, binned(curves[0], bins), style, color="tab:red", label="PC1-2 plane removed" + suffix)
        controls = [("random planes", curves[1:], "tab:blue")]
        if "subspace_matched_accuracy" in arrays:
            controls.append(("variance-matched planes", arrays["subspace_matched_accuracy"][v], "tab:green"))
        for label, control_curves, color in controls:
            binned_curves = np.array([binned(curve, bins) for curve in control_curves])
            spreads = [spread(binned_curves[:, i]) for i in range(binned_curves.shape[1])]
            ax.plot(centres, [s["mean"] for s in spreads], style, color=color,
                    label=f"{label} removed ({len(binned_curves)})" + suffix)
            ax.fill_between(centres, [s["low"] for s in spreads], [s["high"] for s in spreads], color=color,
                            alpha=0.15)
    context_length_axis(ax)
    ax.set_ylabel("accuracy (full vocabulary)")
    ax.legend(fontsize=8)
    return figure


def _toy_figure(run: Run) -> Figure:
    figure = new_figure(6.5, 4)
    ax = figure.subplots()
    ax.plot(run.arrays["toy_alignment_positions"], run.arrays["toy_spectral_alignment"][0], color="tab:green")
    context_length_axis(ax)
    ax.set_ylim(0, 1)
    ax.set_ylabel("alignment of the drawn PCs with z2, z3")
    return figure
