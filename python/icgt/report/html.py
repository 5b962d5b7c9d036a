"""The report of an icgt run: its verdict in words (icgt.report.verdict), its key numbers, and PNG figures with an
index.html that shows them.

Like ``icgt.report.plots`` and ``icgt.study.run_folder`` it uses only numpy and matplotlib, never the compiled
core, so a report can be made wherever a run folder is copied.
"""

from __future__ import annotations

import html
import json
import os
import textwrap
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from . import plots
from ..files import write_atomically
from .interactive import explore_html
from ..hardware import describe_line
from .mechanism import FIGURE_CAPTIONS as MECHANISM_CAPTIONS
from .mechanism import experiment_of, mechanism_figures, mechanism_summary
from .spectrum import has_spectrum, spectrum_figure, spectrum_summary
from ..study.curves import energy_minimum, steepest_rise
from ..study.heldout import heldout_summary
from ..study.two_graphs import SIGNIFICANCE, two_graph_summary
from .two_graphs import two_graphs_figure
from ..study.run_folder import Run, load_run
from .verdict import FOLLOWS_SKILL, SHAPED_ALIGNMENT, judge, lag_summary

#: The report's figures, file stem → caption; "days" only for days-of-week runs, "heldout" for held-out runs.
FIGURE_CAPTIONS = {
    "pca": "Class means projected on their own top principal components at several context lengths, at "
           "one block (0-based); lines are the graph's edges. Each node keeps one colour, from its place in "
           "the graph; the last panel, the graph's spectral layout (z2, z3) that minimises Dirichlet "
           "energy, is the key. Words are left out where they would cover another word or node.",
    "energy_accuracy": "Dirichlet energy of the class means per third of the model's depth (top: normalised, "
                       "as in the paper; middle: scale-invariant, which collapse cannot lower) and "
                       "rule-following accuracy (bottom, in bins of half a doubling of context) against "
                       "context length. Bands: one standard deviation over sequences; dotted lines and faint "
                       "bands: the energy of randomly relabelled nodes. Vertical lines: each third's energy "
                       "minimum (none where a curve is lowest at its first snapshot) and the fastest rise in "
                       "accuracy.",
    "alignment": "How well the top-2 principal components are explained by the Laplacian eigenvectors z2, z3, "
                 "and how well representation distances follow graph distances; thick lines: thirds of the "
                 "model's depth, thin lines: single blocks.",
    "spectrum": "Where the class means' variance lies on the graph's Laplacian spectrum (centred means "
                "projected on the eigenvectors of D - A, summed per distinct eigenvalue; low eigenvalues are "
                "smooth on the graph, high ones rough): per captured block at the last snapshot where every "
                "block has every node (left), and over context length at the deep block (right). The "
                "low-frequency bias (Yang, Tanaka, Hu, arXiv 2507.13540) predicts the share at low "
                "eigenvalues to grow with depth and with context.",
    "heldout": "Held-out edges. Left: the probability per word that the model gives, after a word whose "
               "neighbour was held out, to that neighbour, to a shown neighbour, to a word two steps away in the "
               "full graph, and to one as far as the held-out neighbour in the shown graph (each over the trailing "
               "half of the context). Right: the distance between class means of pairs of each kind in the "
               "plane of the PCA figure, relative to all pairs, per block at the last snapshot; the lines mark where "
               "the spectral layouts (z2, z3) of the shown graph (dashed) and of the full graph (dotted) put a "
               "held-out pair.",
    "two_graphs": "Two graphs over the same words. Left: accuracy against each graph over context (in bins of half "
                  "a doubling). Middle: per block, the alignment of PCs 1-2 (solid) and 3-4 (dashed) with each "
                  "graph's spectral layout z2, z3. Right: per block, the share of the class means' variance on each "
                  "graph's layout (both fitted together) and the mean squared cosine of the principal angles "
                  "between the two graphs' subspaces (0: orthogonal, 1: one plane), each beside its mean over random "
                  "relabellings of the nodes (dotted: the chance level), the blocks whose share is above that null at "
                  f"p < {SIGNIFICANCE:g} ringed; middle and right at the last PCA snapshot where every node has a mean.",
    "days": "Days of the week on an in-context ring that contradicts the weekly order: which principal "
            "components carry the weekly circle and which the in-context ring.",
}


def _as_run(run: Run | str | os.PathLike) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def summarize(run: Run | str | os.PathLike, layer: int | None = None) -> dict[str, Any]:
    """The verdict and key numbers of a run, JSON-ready (None where a number is undefined).

    ``verdict`` holds the verdict's sentences (icgt.report.verdict.judge), ``follows_graph`` and
    ``graph_shape`` its levels. Energy, alignment and days numbers are for block ``layer`` (default:
    :meth:`Run.default_layer`); the energy minimum is also given for each third of the depth. Final
    accuracy is the mean over sequences and over the scored positions in the last tenth of the context.
    Where the run has a spectral profile, ``spectrum`` says where the class means' variance lies on the
    graph's Laplacian spectrum and ``low_frequency_share`` gives its numbers (icgt.report.spectrum).

    >>> from icgt.report import summarize
    >>> summary = summarize(grid_run)
    >>> summary["layer"], summary["energy_minimum_position"], round(summary["lag_doublings"])
    (6, 40, 2)
    >>> summary["follows_graph"], summary["graph_shape"], summary["shaped_blocks"]
    ('yes', 'yes', [7])
    """
    run = _as_run(run)
    if experiment_of(run) != "graph":
        return mechanism_summary(run)
    layer_index = run.layer_index(layer)
    positions, accuracy, _ = run.accuracy_curve()
    last_tenth = positions >= 0.9 * positions.max(initial=0)
    _, accuracy_renormalized, _ = run.accuracy_curve(renormalized=True)
    rise = steepest_rise(positions, accuracy)
    energy_positions = run.arrays["energy_positions"]
    minimum = energy_minimum(energy_positions, run.arrays["energy"][layer_index])
    group_minima = {group: energy_minimum(energy_positions, energy)
                    for group, energy in run.layer_group_means("energy").items()}
    verdict = judge(run, layer)
    summary: dict[str, Any] = {
        "run": run.name,
        "model": run.model_name,
        "model_description": run.model_description,
        "graph": run.graph_kind,
        "mode": run.info["config"]["mode"],
        "verdict": verdict.sentences,
        "follows_graph": verdict.follows,
        "graph_shape": verdict.shape,
        "accuracy_skill": verdict.skill,
        "accuracy_onset_position": verdict.accuracy_onset,
        "shaped_blocks": verdict.shaped_blocks,
        "shape_onset_position": verdict.shape_onset,
        "trace_blocks": verdict.trace_blocks,
        "layer": int(run.layers[layer_index]),
        "final_accuracy": _mean_or_none(accuracy[last_tenth]),
        "final_accuracy_renormalized": _mean_or_none(accuracy_renormalized[last_tenth]),
        "chance_accuracy_renormalized": run.chance_accuracy_renormalized(),
        "accuracy_rise_position": rise[0] if rise else None,
        "accuracy_rise_per_doubling": rise[1] if rise else None,
        "energy_minimum": minimum[1] if minimum else None,
        "energy_minimum_position": minimum[0] if minimum else None,
        "null_energy_at_minimum": _null_energy_at(run, layer_index, minimum),
        "energy_minimum_position_by_group": {group: found[0] if found else None
                                             for group, found in group_minima.items()},
        **{key: value for key, value in lag_summary(run).items() if key != "block"},
        "lag_block": int(run.arrays["lag_layer"]),
        "blocks_below_null": _blocks_below_null(run),
        "final_spectral_alignment": _last_finite(run.arrays["spectral_alignment"][layer_index]),
        "final_distance_correlation": _last_finite(run.arrays["distance_correlation"][layer_index]),
        **spectrum_summary(run, layer),
    }
    if run.is_days:
        summary.update(_days_summary(run, layer_index))
    if run.has_held_out_edges:
        summary["heldout"] = heldout_summary(run)
    if run.has_second_graph:
        summary["two_graphs"] = two_graph_summary(run)
    return summary


#: Level of the per-block test of the energy against the relabelling null.
NULL_ALPHA = 0.01


def _blocks_below_null(run: Run) -> list[int]:
    """Blocks whose normalised energy, at the last snapshot where every block has one, is lower than
    relabelled nodes give with p < NULL_ALPHA."""
    p_values = run.arrays["energy_p_value"]
    complete = np.flatnonzero(np.isfinite(p_values).all(axis=0))
    if complete.size == 0:
        return []
    return [int(block) for block in run.layers[p_values[:, complete[-1]] < NULL_ALPHA]]


def _days_summary(run: Run, layer_index: int) -> dict[str, Any]:
    weekly = run.arrays["weekly_alignment"][layer_index, -1]
    ring = run.arrays["ring_alignment"][layer_index, -1]

    def best_pair(alignment: np.ndarray) -> str | None:
        return plots.pc_pair_name(int(np.nanargmax(alignment))) if np.isfinite(alignment).any() else None

    return {
        "final_weekly_alignment_by_pc_pair": _json_floats(weekly),
        "final_ring_alignment_by_pc_pair": _json_floats(ring),
        "weekly_circle_pcs": best_pair(weekly),
        "in_context_ring_pcs": best_pair(ring),
    }


def _mean_or_none(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _last_finite(values: np.ndarray) -> float | None:
    finite = np.flatnonzero(np.isfinite(values))
    return float(values[finite[-1]]) if finite.size else None


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [float(value) if np.isfinite(value) else None for value in values]


def _null_energy_at(run: Run, layer_index: int, minimum: tuple[int, float] | None) -> float | None:
    if minimum is None:
        return None
    snapshot = int(np.flatnonzero(run.arrays["energy_positions"] == minimum[0])[0])
    value = run.arrays["energy_null_mean"][layer_index, snapshot]
    return float(value) if np.isfinite(value) else None


def report_figures(run: Run | str | os.PathLike, layer: int | None = None) -> dict[str, Figure]:
    """The report's figures by name ("pca", "energy_accuracy", "alignment", "spectrum" where the run has a
    spectral profile, and "days" for days runs).

    In Jupyter, ``display(figure)`` (or a figure as a cell's last expression) shows it inline.

    >>> from icgt.report import report_figures
    >>> sorted(report_figures(grid_run)), sorted(report_figures(days_run))
    (['alignment', 'energy_accuracy', 'pca', 'spectrum'], ['alignment', 'days', 'energy_accuracy', 'pca', 'spectrum'])
    """
    run = _as_run(run)
    if experiment_of(run) != "graph":
        return mechanism_figures(run)
    figures = {
        "pca": plots.pca_figure(run, layer),
        "energy_accuracy": plots.energy_accuracy_figure(run),
        "alignment": plots.alignment_figure(run),
    }
    if has_spectrum(run):
        figures["spectrum"] = spectrum_figure(run, layer)
    if run.is_days:
        figures["days"] = plots.days_figure(run, layer)
    if run.has_held_out_edges:
        figures["heldout"] = plots.heldout_figure(run)
    if run.has_second_graph:
        figures["two_graphs"] = two_graphs_figure(run)
    return figures


def write_seeds_figure(run_folders: list[str | os.PathLike], path: str | os.PathLike) -> Path:
    """Write :func:`icgt.report.plots.seeds_figure` of runs that differ only in their seed to ``path`` (PNG,
    atomically); ``icgt run --seeds N`` puts it beside aggregate.json as seeds.png.

    >>> from icgt.report import write_seeds_figure
    >>> write_seeds_figure([grid_run, grid_run_seed1, grid_run_seed2], "seeds.png").name
    'seeds.png'
    """
    from .plots import seeds_figure

    figure = seeds_figure([load_run(folder) for folder in run_folders])
    write_atomically(Path(path), partial(figure.savefig, format="png"))
    return Path(path)


def write_report(run_folder: str | os.PathLike, layer: int | None = None,
                 output_folder: str | os.PathLike | None = None) -> Path:
    """Write the figures (PNG), summary.json and index.html; return the path of index.html.

    The files go to ``output_folder`` (default: ``<run_folder>/report``). Each is written under a
    temporary name in the same folder and renamed into place, so a reader never sees half a file;
    index.html comes last, so its presence means the report is complete.

    >>> from icgt.report import write_report
    >>> index = write_report(grid_run)
    >>> index.name, sorted(path.name for path in index.parent.iterdir())
    ('index.html', ['alignment.png', 'energy_accuracy.png', 'index.html', 'pca.png', 'spectrum.png', 'summary.json'])
    """
    run = load_run(run_folder)
    folder = Path(output_folder) if output_folder is not None else run.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    figures = report_figures(run, layer)
    for name, figure in figures.items():
        write_atomically(folder / f"{name}.png", partial(figure.savefig, format="png"))
    summary = summarize(run, layer)
    write_atomically(folder / "summary.json", lambda path: path.write_text(json.dumps(summary, indent=2) + "\n"))
    page = _index_html(run, summary, list(figures))
    write_atomically(folder / "index.html", lambda path: path.write_text(page))
    return folder / "index.html"


def timing_line(run: Run | str | os.PathLike) -> str:
    """How long a run took, on what, in which dtype and why: one line for the terminal and the report.

    >>> timing_line(grid_run)
    'timing: forward pass 2.0 s, analysis 0.5 s, in all 2.6 s on Synthetic CPU (AVX2), 2 threads; float32 (auto: CPU without native bfloat16 (AVX2))'
    """
    run = _as_run(run)
    timings = run.info.get("timings", {})
    parts = [f"{label} {_duration(timings[key])}" for key, label in
             (("probe_s", "forward pass"), ("experiment_s", "experiment"), ("analysis_s", "analysis"),
              ("total_s", "in all")) if key in timings]
    line = "timing: " + ", ".join(parts)
    if "hardware" in run.info:
        line += f" on {describe_line(run.info['hardware'])}"
    choice = run.info.get("dtype_choice")
    if choice:
        line += f"; {choice['chosen']} ({choice['reason']})"
    return line


def _duration(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{seconds:.1f} s" if minutes < 1 else f"{minutes:.0f} min {rest:.0f} s"


SUMMARY_LABELS = {
    "follows_graph": "follows the graph",
    "accuracy_skill": "renormalised accuracy as a skill: (accuracy - chance) / (1 - chance), last tenth",
    "accuracy_onset_position": f"context length from which that skill stays at {FOLLOWS_SKILL} or more",
    "graph_shape": "class means take the graph's shape",
    "shaped_blocks": f"blocks whose drawn PCs align with z2, z3 at {SHAPED_ALIGNMENT} or more, last tenth",
    "shape_onset_position": "context length from which those blocks stay graph-shaped",
    "trace_blocks": "blocks with a weak trace (alignment 0.4 or more, or energy z -2 or less)",
    "layer": "block (0-based) of the per-block numbers",
    "final_accuracy": "final accuracy (full vocabulary; last tenth of the context)",
    "final_accuracy_renormalized": "final accuracy (renormalised over the node tokens)",
    "chance_accuracy_renormalized": "renormalised accuracy of uniform guessing (degree / n)",
    "accuracy_rise_position": "context length where accuracy rises fastest",
    "accuracy_rise_per_doubling": "accuracy gained per doubling of context there",
    "energy_minimum": "minimum normalised energy",
    "energy_minimum_position": "context length of the minimum energy",
    "null_energy_at_minimum": "energy of randomly relabelled nodes there (null mean)",
    "energy_minimum_position_by_group": "context length of the minimum energy, by third of the depth",
    "energy_change_point": "context length where the energy falls (sigmoid fit; class means over the trailing half)",
    "accuracy_change_point": "context length where accuracy rises (sigmoid fit, full vocabulary, same smoothing)",
    "lag_doublings": "lag from the energy's change to accuracy's, in doublings of context (positive: energy first)",
    "lag_ci95": "its 95% interval over resamples of the sequences",
    "lag_defined_share": "share of the resamples where both change points exist",
    "order": "energy first, accuracy first, or undecided (the interval holds zero, or too few resamples time both)",
    "paper": "the paper's statistic: the energy's minimum against accuracy's steepest rise, the same numbers",
    "lag_block": "block (0-based) of the timed energy",
    "blocks_below_null": f"blocks whose energy is below the relabelling null at p < {NULL_ALPHA}, late",
    "final_spectral_alignment": "final spectral alignment of the drawn PCs with z2, z3",
    "final_distance_correlation": "final correlation of representation and graph distances",
    "low_frequency_share": "share of the class means' variance on the two lowest non-zero Laplacian eigenvalues "
                           "(first and last snapshot; shallow and deep block; means unrelated to the graph)",
    "final_weekly_alignment_by_pc_pair": "final weekly-circle alignment per PC pair (PC1-2, PC3-4, ...)",
    "final_ring_alignment_by_pc_pair": "final in-context-ring alignment per PC pair",
    "weekly_circle_pcs": "PC pair that best carries the weekly circle",
    "in_context_ring_pcs": "PC pair that best carries the in-context ring",
}


def format_summary(summary: dict[str, Any], width: int = 100) -> str:
    """:func:`summarize` as plain text for a terminal: the verdict in words first (wrapped at ``width``),
    then the key numbers, one labelled line each.

    >>> from icgt.report import format_summary, summarize
    >>> text = format_summary(summarize(grid_run)).splitlines()
    >>> print(text[0]); print(text[1])
    synthetic-grid: toy-8-layers · grid graph · walk
      toy-8-layers follows the graph: at the end of the context it puts 93% of its probability over the
    >>> print(next(line for line in text if "minimum energy:" in line))
      context length of the minimum energy: 40
    """
    model = summary.get("model_description", summary["model"])
    kind = summary.get("mode", summary.get("experiment", ""))
    lines = [f"{summary['run']}: {model} · {summary['graph']} graph · {kind}"]
    for sentence in _sentences(summary):
        lines += textwrap.wrap(sentence, width, initial_indent="  ", subsequent_indent="    ")
    if summary.get("verdict"):
        lines.append("  key numbers:")
    lines += [f"  {label}: {_format_value(summary[key])}" for key, label in SUMMARY_LABELS.items() if key in summary]
    return "\n".join(lines)


def _sentences(summary: dict[str, Any]) -> list[str]:
    """What the report says in words: the verdict (a mechanism run's sentences), then the spectrum's."""
    return [*summary.get("verdict", summary.get("sentences", [])), *filter(None, [summary.get("spectrum")])]


def _format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return " · ".join(f"{key}: {_format_value(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_format_value(item) for item in value) if value else "none"
    return str(value)


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(_format_value(value))}</td></tr>"
                    for label, value in rows)
    return f"<table>{cells}</table>"


def _index_html(run: Run, summary: dict[str, Any], figure_names: list[str]) -> str:
    config = run.info["config"]
    model = run.info["model"]
    setting = [("model", f"{run.model_description} ({model['num_layers']} blocks, numbered from 0)"),
               ("graph", f"{run.graph_kind}, {len(run.labels)} nodes, {len(run.edges)} edges"),
               *[(key, config[key]) for key in ("mode", "num_sequences", "sequence_length", "energy_window",
                                                "pca_window", "null_permutations", "seed") if key in config],
               *([("captured blocks", ", ".join(map(str, run.layers.tolist())))] if "layers" in run.arrays else []),
               *([("experiment", config["experiment"])] if config.get("experiment", "graph") != "graph" else [])]
    if run.is_days:
        setting += [("in-context ring order", " → ".join(run.labels)),
                    ("weekly order", " → ".join(run.info["weekly_order"]))]
    provenance = [(f"{name} version", value) for name, value in run.info.get("versions", {}).items()]
    provenance += [(f"{name.removesuffix('_s')} time (s)", seconds)
                   for name, seconds in run.info.get("timings", {}).items()]
    if "hardware" in run.info:
        provenance.append(("machine", f"{describe_line(run.info['hardware'])}, {run.info['hardware']['cores']} cores"))
    if "dtype_choice" in run.info:
        choice = run.info["dtype_choice"]
        provenance.append(("dtype", f"{choice['chosen']} ({choice['reason']}; asked: {choice['asked']})"))
    if "bundle_sha256" in model:
        provenance.append(("model bundle sha256", model["bundle_sha256"]))
    numbers = [(label, summary[key]) for key, label in SUMMARY_LABELS.items() if key in summary]
    verdict = "".join(f"<p>{html.escape(sentence)}</p>"
                      for sentence in _sentences(summary))
    captions = {**FIGURE_CAPTIONS, **MECHANISM_CAPTIONS}
    figures = "".join(
        f'<figure><img src="{name}.png" alt="{html.escape(captions[name])}">'
        f"<figcaption>{html.escape(captions[name])}</figcaption></figure>"
        for name in figure_names)
    # Graph and heads runs get their interactive figure (icgt.report.interactive) above the static figures,
    # which stay.
    interactive = explore_html(run)
    explore = f"<h2>Explore</h2>{interactive}" if interactive else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>icgt report: {html.escape(run.name)}</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
.verdict p {{ font-size: 1.1em; line-height: 1.45; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ font-weight: normal; color: #555; }}
img {{ max-width: 100%; }} figure {{ margin: 2em 0; }} figcaption {{ color: #555; }}
</style></head><body>
<h1>icgt report: {html.escape(run.name)}</h1>
<p>{html.escape(run.title)}</p>
<h2>Verdict</h2><div class="verdict">{verdict}</div>
<h2>Key numbers</h2>{_table(numbers)}
<h2>Setting</h2>{_table(setting)}
{explore}
<h2>Figures</h2>{figures}
<h2>Provenance</h2>{_table(provenance)}
</body></html>
"""


def run_card(run: Run) -> str:
    """A short HTML card of a run, what Jupyter shows for a Run: model, graph, the verdict in words and a few
    key numbers of its summary.

    >>> from icgt.study.run_folder import load_run
    >>> "follows the graph" in run_card(load_run(grid_run))
    True
    """
    summary = summarize(run)
    rows = [("model", run.model_description), ("graph", f"{run.graph_kind}, {len(run.labels)} nodes"),
            ("experiment", run.info["config"].get("experiment", "graph"))]
    if "layers" in run.arrays:
        rows.append(("captured", f"{run.layers.size} captured blocks of {run.num_layers}"))
    keys = ("follows_graph", "graph_shape", "final_accuracy", "final_accuracy_renormalized",
            "final_spectral_alignment", "lag_doublings", "order")
    rows += [(SUMMARY_LABELS[key].split(":")[0], _format_value(summary[key])) for key in keys if key in summary]
    cells = "".join(f"<tr><th style='text-align: left'>{html.escape(label)}</th>"
                    f"<td style='text-align: left'>{html.escape(str(value))}</td></tr>" for label, value in rows)
    verdict = "".join(f"<p>{html.escape(sentence)}</p>" for sentence in _sentences(summary))
    return (f"<div><b>icgt run {html.escape(run.name)}</b>{verdict}<table>{cells}</table>"
            "<p>run.explore(): the interactive view; run.to_xarray(): the arrays</p></div>")
