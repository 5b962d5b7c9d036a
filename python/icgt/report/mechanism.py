"""The report of a mechanism run (icgt.study.mechanism): a sentence that states the result, its numbers with
95% intervals, and figures. Like icgt.report it needs only numpy and matplotlib.

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
from ..study.intervals import mean_interval
from ..study.run_folder import Run

CONDITIONS = {"intervention": ("clean", "moved to the target", "random direction, same norm", "moved to its own place"),
              "subspace": ("plain", "class means' PC1-2 plane removed", "random plane removed")}
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
    arrays = run.arrays
    blocks = arrays["intervention_blocks"]
    numbers = {}
    for name in ("mass", "mass_renormalized", "top1", "top3"):
        values = arrays[f"intervention_{name}"].astype(float).reshape(4, -1)
        numbers[name] = {condition: mean_interval(row) for condition, row in zip(CONDITIONS["intervention"], values)}
    clean, moved, random_, self_ = (numbers["mass"][c] for c in CONDITIONS["intervention"])
    cases = arrays["intervention_mass"].shape[1] * arrays["intervention_mass"].shape[2]
    top1 = numbers["top1"]
    sentence = (f"Moving the last token of each walk to a random target node's place in the plane of its class "
                f"means' PCs 1-2, in blocks {blocks.min()}-{blocks.max()}, puts {moved[0]:.3f} ± {moved[1]:.3f} of the "
                f"next-token probability on the target's neighbours ({cases} cases; clean: {clean[0]:.3f} ± "
                f"{clean[1]:.3f}; a random direction of the same norm: {random_[0]:.3f} ± {random_[1]:.3f}; moved "
                f"to its own place: {self_[0]:.3f} ± {self_[1]:.3f}). The top node word is a neighbour of the target "
                f"in {top1['moved to the target'][0]:.0%} of cases (random direction: "
                f"{top1['random direction, same norm'][0]:.0%}; clean: {top1['clean'][0]:.0%}).")
    verdict = ("The geometry is used: the move shifts predictions toward the target's neighbours far more than a "
               "random move of the same size." if moved[0] - random_[0] > 2 * math.hypot(moved[1], random_[1])
               and moved[0] > clean[0] else
               "The move does not shift predictions toward the target's neighbours more than a random move of the "
               "same size: this does not show that the geometry is used.")
    return {"numbers": numbers, "blocks": blocks.tolist(), "cases": cases, "sentences": [sentence, verdict]}


def _heads(run: Run) -> dict[str, Any]:
    arrays = run.arrays
    counts = arrays["head_counts"]
    total = arrays["head_previous_token"].size
    clean_late = _late_accuracy(arrays["head_clean_accuracy"])
    late = np.array([[_late_accuracy(curve) for curve in row] for row in arrays["head_accuracy"]])  # [C, K]
    draws = late.shape[0] - 2
    k_index = int(np.argmin(np.abs(counts - 0.05 * total)))  # about 5% of the heads
    k = int(counts[k_index])
    random_mean, random_half = mean_interval(late[2:, k_index]) if draws > 1 else (float(late[2, k_index]), math.nan)
    top = {kind: np.unravel_index(np.argmax(arrays[f"head_{kind}"]), arrays[f"head_{kind}"].shape)
           for kind in ("previous_token", "induction")}
    scores = {kind: float(arrays[f"head_{kind}"].max()) for kind in ("previous_token", "induction")}
    sentence = (f"Ablating the top {k} induction heads (of {total}) changes late accuracy from {clean_late:.3f} to "
                f"{late[1, k_index]:.3f}; the top {k} previous-token heads: {late[0, k_index]:.3f}; {k} random heads: "
                f"{random_mean:.3f}" + (f" ± {random_half:.3f} ({draws} draws)." if np.isfinite(random_half) else "."))
    geometry = (f"In block {int(arrays['head_analysis_block'])} the class means' alignment with z2, z3 goes from "
                f"{float(arrays['head_clean_alignment']):.2f} to {arrays['head_alignment'][1, k_index]:.2f} (induction "
                f"heads ablated) and {arrays['head_alignment'][0, k_index]:.2f} (previous-token heads ablated).")
    strongest = (f"Strongest previous-token head: block {top['previous_token'][0]} head {top['previous_token'][1]} "
                 f"(score {scores['previous_token']:.2f}); strongest induction head: block {top['induction'][0]} head "
                 f"{top['induction'][1]} (score {scores['induction']:.2f}).")
    return {"clean_late_accuracy": clean_late, "late_accuracy": late.tolist(), "counts": counts.tolist(),
            "strongest_heads": {kind: [int(v) for v in top[kind]] for kind in top}, "top_scores": scores,
            "sentences": [sentence, geometry, strongest]}


def _subspace(run: Run) -> dict[str, Any]:
    arrays = run.arrays
    blocks = arrays["subspace_blocks"]
    late = [_late_accuracy(curve) for curve in arrays["subspace_accuracy"]]
    late_renormalized = [_late_accuracy(curve) for curve in arrays["subspace_accuracy_renormalized"]]
    sentence = (f"Projecting the residual stream of blocks {blocks.min()}-{blocks.max()} off the plane of the class "
                f"means' PCs 1-2 (fitted on other walks) changes late accuracy from {late[0]:.3f} to {late[1]:.3f} "
                f"(renormalised: {late_renormalized[0]:.3f} to {late_renormalized[1]:.3f}); removing a random plane: "
                f"{late[2]:.3f} ({late_renormalized[2]:.3f}).")
    return {"late_accuracy": dict(zip(CONDITIONS["subspace"], late)),
            "late_accuracy_renormalized": dict(zip(CONDITIONS["subspace"], late_renormalized)),
            "blocks": blocks.tolist(), "sentences": [sentence]}


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
        return {"subspace": _curves_figure(run, "subspace_accuracy", CONDITIONS["subspace"])}
    return {"toy_mixing": _toy_figure(run)}


FIGURE_CAPTIONS = {
    "intervention": "Probability mass on the target's neighbours and how often the top (top three) node words are "
                    "among them, by condition; bars: means over cases, lines: 95% intervals.",
    "head_scores": "Previous-token and induction scores of every head (BOS and random tokens repeated twice).",
    "head_ablations": "Late accuracy with the top-k previous-token, top-k induction and k random heads zero-ablated "
                      "(random: mean and spread over draws); the dotted line is the plain model.",
    "subspace": "Accuracy over context with the late blocks' residuals projected off a plane.",
    "toy_mixing": "Alignment of a one-step mixture of random node vectors with z2, z3 over context.",
}


def _intervention_figure(run: Run) -> Figure:
    figure = new_figure(10, 3.4)
    axes = figure.subplots(1, 3)
    for ax, name, title in zip(axes, ("mass", "top1", "top3"),
                               ("mass on the target's neighbours", "top node word is a neighbour", "one of top three is")):
        values = run.arrays[f"intervention_{name}"].astype(float).reshape(4, -1)
        means = [mean_interval(row) for row in values]
        ax.bar(range(4), [m for m, _ in means], yerr=[h for _, h in means], color=["0.6", "tab:red", "tab:blue", "0.8"])
        ax.set_xticks(range(4), ["clean", "moved", "random", "own place"], rotation=20)
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
    figure = new_figure(6.5, 4)
    ax = figure.subplots()
    counts = run.arrays["head_counts"]
    late = np.array([[_late_accuracy(curve) for curve in row] for row in run.arrays["head_accuracy"]])
    ax.plot(counts, late[0], "o-", color="tab:blue", label="top previous-token heads")
    ax.plot(counts, late[1], "s-", color="tab:red", label="top induction heads")
    random_ = late[2:]
    ax.plot(counts, random_.mean(0), "^-", color="0.4", label=f"random heads ({len(random_)} draws)")
    ax.fill_between(counts, random_.min(0), random_.max(0), color="0.4", alpha=0.2)
    ax.axhline(_late_accuracy(run.arrays["head_clean_accuracy"]), color="k", linestyle=":", label="no ablation")
    ax.set_xscale("log")
    ax.set_xlabel("heads ablated (k)")
    ax.set_ylabel("late accuracy (full vocabulary)")
    ax.legend(fontsize=8)
    return figure


def _curves_figure(run: Run, name: str, labels: tuple[str, ...]) -> Figure:
    figure = new_figure(6.5, 4)
    ax = figure.subplots()
    positions = np.arange(1, run.arrays[name].shape[-1])
    bins = np.unique(np.round(np.geomspace(1, positions.max(), 30)).astype(int))
    for curve, label in zip(run.arrays[name], labels):
        means = [np.nanmean(curve[low:high]) if np.isfinite(curve[low:high]).any() else np.nan
                 for low, high in zip(bins[:-1], bins[1:])]
        ax.plot(np.sqrt(bins[:-1] * bins[1:]), means, label=label)
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
