"""Print the tables of docs/results.md (Markdown) from the run folders of a sweep.

    python -m icgt run --preset grid ring hexagon days pairs --model smollm2-135m gemma3-270m --seeds 3 --output runs
    python -m icgt run --preset grid --model smollm2-135m gemma3-270m --control shuffled random_init --output runs
    python examples/results_tables.py runs

Tables: seeds (every `<run>-seeds/aggregate.json`: mean and 95% interval over seeds), the models side
by side per graph (the same aggregates, smallest model first, with each control's geometry), controls (each
control run beside the run of the same model, graph and seed), the per-run overview, by depth and
over context, the days of the week and the days preset's ring against the week, Gemma 3's sliding window,
held-out edges (icgt.study.heldout), two graphs over the same words, coverage, the spectral profile (the
share of the class means' variance on the graph's lowest Laplacian eigenvalues, each trained run beside its
random-weight control), and the mechanism experiments' sentences.

Blocks (0-based) are taken in thirds of the model's depth (shallow, middle, deep), each number the mean over
the third's blocks. "Late" numbers average the snapshots in the last tenth of the context (the
energy's window of 20 tokens makes single snapshots noisy). z is the paper's normalised energy
against its null baseline, (energy - null mean) / null sd: negative is graph-like. The
scale-invariant energy is 1 on average under random relabelling of the nodes, and shrinking the
representations cannot lower it.

The numbers of single runs come from the sweep's tidy table, ``icgt.load_sweep(folder).to_frame()``
(icgt.study.tables: a row per run, metric, block and context length): the overview, by depth, over context,
the days of the week, Gemma 3's sliding window, and the controls, with the controls beside the models (the
seed tables' numbers, which the table holds for each run). The other numbers keep their own readers, as they
are not values of that table: the seeds and the models side by side are means and intervals over seeds
(aggregate.json); the overview's lag has an interval over a run's resampled change points, of which the
table holds the run's own (icgt.report.verdict.lag_summary), and its chance accuracy comes from the graph's
degrees; held-out edges, two graphs and coverage are the summaries of icgt.study.heldout, two_graphs and
coverage, made from arrays the table leaves out (resampled probabilities, PCA projections, alignment per PC
pair and graph, the walks' nodes); the spectrum is one value per Laplacian eigenvalue (icgt.report.spectrum;
the table leaves the profile to to_xarray); the mechanism runs, which the table leaves out, give their
sentences (icgt.report.mechanism).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas

import icgt
from icgt.study.aggregate import ACCURACY_AT, ALPHA, interval
from icgt.study.intervals import clustered_interval
from icgt.models.catalog import BUILTIN_MODELS
from icgt.models.words import DAY_NAMES
from icgt.study.presets import DAYS_RING_ORDER
from icgt.report.mechanism import compared_count, experiment_of, late_accuracy, mechanism_summary
from icgt.report import summarize
from icgt.report.verdict import lag_summary
from icgt.study.run_folder import Run
from icgt.study.tables import RUN_COLUMNS, Sweep, load_sweep

CONTEXT_LENGTHS = (10, 50, 100, 200, 400, 1000, 1400)
GROUPS = ("shallow", "middle", "deep")
#: The deep third's geometry in the overview: its name there -> its metric in the tidy table, its format.
GEOMETRY = {"z": ("energy_z", "+.2f"), "scale-inv. energy": ("energy_scale_invariant", ".2f"),
            "alignment": ("spectral_alignment", ".2f"), "distance corr.": ("distance_correlation", ".2f")}


def tabled_runs(sweep: Sweep) -> list[tuple[Run, pandas.DataFrame]]:
    """Each run of the graph experiment with its rows of the sweep's tidy table (to_frame writes a run's rows
    together, in the order of graph_runs; RUN_COLUMNS tell the runs apart)."""
    frames = [frame for _, frame in sweep.to_frame().groupby(list(RUN_COLUMNS), sort=False)]
    if len(frames) != len(sweep.graph_runs):
        raise SystemExit(f"{sweep.folder} holds runs that share {', '.join(RUN_COLUMNS)}: their numbers cannot be "
                         "told apart")
    return list(zip(sweep.graph_runs, frames))


def thirds(run: Run) -> dict[str, np.ndarray]:
    """The captured blocks of each third of the model's depth, as in GROUPS (a third without one is left out)."""
    return {group: run.layers[indices] for group, indices in run.layer_groups().items()}


def per_block(frame: pandas.DataFrame, metric: str) -> pandas.DataFrame:
    """A run's metric from its rows of the tidy table: a row per block, a column per context length. The mean
    over some blocks, ``.loc[blocks].mean()``, is NaN only where each of them is."""
    return frame[frame["metric"] == metric].pivot(index="layer", columns="context_length", values="value")


def curve(frame: pandas.DataFrame, metric: str) -> pandas.Series:
    """A run's metric that has no blocks (accuracy), by context length."""
    return frame[frame["metric"] == metric].set_index("context_length")["value"]


def late(values: pandas.Series) -> float:
    """The mean of a curve over the snapshots in the last tenth of the context."""
    return float(values[values.index >= 0.9 * values.index.max()].mean())


def mean_near(values: pandas.Series, length: int, format: str) -> str:
    """The mean of a curve at the context lengths within 10% of a length (else at the nearest one),
    formatted; a dash for a length the run does not reach."""
    if length > 1.1 * values.index.max():
        return "–"
    distance = np.abs(values.index.to_numpy() - length)
    close = distance <= 0.1 * length
    return f"{values[close].mean() if close.any() else values.iloc[np.argmin(distance)]:{format}}"


def _lag(run: Run) -> str:
    lag = lag_summary(run)
    if lag["lag_doublings"] is None:
        return "no change point"
    low, high = lag["lag_ci95"]
    interval = f" [{low:+.1f}, {high:+.1f}]" if low is not None else ""
    return f"{lag['lag_doublings']:+.1f}{interval} (block {lag['block']})"


def overview(runs: list[tuple[Run, pandas.DataFrame]]) -> str:
    rows = ["| run | accuracy (full vocab.) | renormalised (chance) | deep, late: z | scale-inv. energy | alignment "
            "| distance corr. | lag, energy to accuracy (doublings, 95% interval) |",
            "|---|---|---|---|---|---|---|---|"]
    for run, frame in runs:
        deep = thirds(run)["deep"]
        geometry = [f"{late(per_block(frame, metric).loc[deep].mean()):{format}}"
                    for metric, format in GEOMETRY.values()]
        rows.append(
            f"| {run.name} | {late(curve(frame, 'accuracy')):.3f} | {late(curve(frame, 'accuracy_renormalized')):.3f} "
            f"({run.chance_accuracy_renormalized():.3f}) | " + " | ".join(geometry) + f" | {_lag(run)} |")
    return "\n".join(rows)


def by_depth(runs: list[tuple[Run, pandas.DataFrame]]) -> str:
    rows = ["| run | " + " | ".join(f"{group}: z / alignment" for group in GROUPS) + " |", "|---|---|---|---|"]
    for run, frame in runs:
        z, alignment, blocks = per_block(frame, "energy_z"), per_block(frame, "spectral_alignment"), thirds(run)
        cells = [f"{late(z.loc[blocks[group]].mean()):+.2f} / {late(alignment.loc[blocks[group]].mean()):.2f}"
                 if group in blocks else "–" for group in GROUPS]
        rows.append(f"| {run.name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def over_context(runs: list[tuple[Run, pandas.DataFrame]]) -> str:
    header = " | ".join(f"t={length}" for length in CONTEXT_LENGTHS)
    rows = [f"| run | quantity | {header} |", "|---|---|" + "---|" * len(CONTEXT_LENGTHS)]
    for run, frame in runs:
        deep = thirds(run)["deep"]
        curves = [(f"deep {name}", per_block(frame, metric).loc[deep].mean(), format)
                  for name, (metric, format) in GEOMETRY.items() if name != "distance corr."]
        curves += [("accuracy", curve(frame, "accuracy"), ".2f"),
                   ("accuracy (renorm.)", curve(frame, "accuracy_renormalized"), ".2f")]
        for row, (name, values, format) in enumerate(curves):
            cells = " | ".join(mean_near(values, t, format) for t in CONTEXT_LENGTHS)
            rows.append(f"| {run.name if row == 0 else ''} | {name} | {cells} |")
    return "\n".join(rows)


def at_last_snapshot(frame: pandas.DataFrame, array: str) -> pandas.DataFrame:
    """An array [L, snapshots, entries] of a run at its last snapshot, from its metrics in the tidy table
    (``weekly_alignment_pc_pair0``, ...): a row per block, a column per entry in order."""
    entries = frame[frame["metric"].str.startswith(f"{array}_")]
    last = entries[entries["context_length"] == entries["context_length"].max()]
    return last.pivot(index="layer", columns="metric", values="value")[last["metric"].unique()]


def days(runs: list[tuple[Run, pandas.DataFrame]]) -> str:
    rows = ["| run (block) | PC pair | weekly circle | in-context ring |", "|---|---|---|---|"]
    for run, frame in runs:
        if not run.is_days:
            continue
        weekly, ring = at_last_snapshot(frame, "weekly_alignment"), at_last_snapshot(frame, "ring_alignment")
        # the default block, and the block whose PC pairs carry the in-context ring best
        for block in sorted({run.default_layer(), ring.max(axis=1).idxmax()}):
            for pair, (w, r) in enumerate(zip(weekly.loc[block], ring.loc[block])):
                rows.append(f"| {run.name} ({block}) | PC{2 * pair + 1}-{2 * pair + 2} | {w:.2f} | {r:.2f} |")
    return "\n".join(rows)


def _with_interval(number: dict, format: str = ".3f") -> str:
    if number["mean"] is None:
        return "–"
    low, high = number["ci95"]
    return f"{number['mean']:{format}}" + (f" [{low:{format}}, {high:{format}}]" if low is not None else "")


def seeds(aggregates: list[dict]) -> str:
    """One row per group of seeds: accuracy at ACCURACY_AT, deep geometry, layers below the null, the lag."""
    accuracy = " | ".join(f"acc. t={t}" for t in ACCURACY_AT)
    rows = [f"| runs (seeds) | {accuracy} | renorm. t={ACCURACY_AT[-1]} | deep alignment | deep scale-inv. energy "
            f"| blocks below null (p < {ALPHA}) | lag, full vocab. (doublings) | lag, renorm. |",
            "|---|" + "---|" * (len(ACCURACY_AT) + 6)]
    for record in aggregates:
        numbers, lag = record["numbers"], record["lag"]
        below = numbers["layers_below_null"]
        rows.append(
            f"| {record['name']} ({len(record['seeds'])}) | "
            + " | ".join(_with_interval(numbers[f"accuracy_at_{t}"]) for t in ACCURACY_AT)
            + f" | {_with_interval(numbers[f'accuracy_renormalized_at_{ACCURACY_AT[-1]}'])}"
            f" | {_with_interval(numbers['deep_alignment'], '.2f')}"
            f" | {_with_interval(numbers['deep_energy_scale_invariant'], '.2f')}"
            f" | {_with_interval(below, '.1f')} of {numbers['layers_captured']['mean']:.0f}"
            + "".join(f" | {_lag_cell(lag[variant])}" for variant in ("full_vocabulary", "renormalized")) + " |")
    return "\n".join(rows)


def scaling(aggregates: list[dict], runs: list[tuple[Run, pandas.DataFrame]]) -> str:
    """The models side by side, smallest first, per graph: accuracy over context and the deep geometry
    over seeds, the same geometry under each control (over its seeds where they were aggregated, else
    seed 0), and the lag."""
    control_cells: dict[tuple[str, str], list[str]] = {}
    aggregated = set()
    for record in aggregates:
        control = record["config"].get("control", "none")
        if control != "none":
            numbers = record["numbers"]
            key = (record["model"]["name"], record["config"]["preset"])
            aggregated.add((*key, control))
            control_cells.setdefault(key, []).append(
                f"{control} ({len(record['seeds'])} seeds) {_with_interval(numbers['deep_alignment'], '.2f')} / "
                f"{_with_interval(numbers['deep_energy_scale_invariant'], '.2f')}")
    for run, frame in runs:
        control = run.info.get("control", "none")
        key = (run.model_name, run.info["config"]["preset"])
        if control != "none" and (*key, control) not in aggregated and run.info["config"]["seed"] == 0:
            numbers = summaries(frame)
            control_cells.setdefault(key, []).append(
                f"{control} {numbers['deep_alignment']:.2f} / {numbers['deep_energy_scale_invariant']:.2f}")
    accuracy = " | ".join(f"acc. t={t}" for t in ACCURACY_AT)
    rows = [f"| graph | model (seeds) | {accuracy} | deep alignment | deep scale-inv. energy "
            "| controls: deep alignment / energy | lag, full vocab. (doublings) |",
            "|---|---|" + "---|" * (len(ACCURACY_AT) + 4)]
    size_order = {name: i for i, name in enumerate(BUILTIN_MODELS)}
    plain = [record for record in aggregates if record["config"].get("control", "none") == "none"]
    for record in sorted(plain, key=lambda r: (r["config"]["preset"], size_order.get(r["model"]["name"], 99),
                                               r["model"]["name"])):
        numbers, model, preset = record["numbers"], record["model"]["name"], record["config"]["preset"]
        rows.append(
            f"| {preset} | {model} ({len(record['seeds'])}) | "
            + " | ".join(_with_interval(numbers[f"accuracy_at_{t}"]) for t in ACCURACY_AT)
            + f" | {_with_interval(numbers['deep_alignment'], '.2f')}"
            f" | {_with_interval(numbers['deep_energy_scale_invariant'], '.2f')}"
            f" | {'; '.join(control_cells.get((model, preset), [])) or '–'}"
            f" | {_lag_cell(record['lag']['full_vocabulary'])} |")
    return "\n".join(rows)


def _lag_cell(lag: dict) -> str:
    """The lag with its interval, or a dash where most resamples have no change point to time."""
    if lag["defined"] < 0.5:
        return f"– (defined in {lag['defined']:.0%} of resamples)"
    return f"{_with_interval(lag, '+.1f')} ({lag['defined']:.0%} defined)"


def summaries(frame: pandas.DataFrame) -> pandas.Series:
    """A run's numbers without a context length in the tidy table, by metric: those of the seed tables
    (icgt.study.aggregate.run_numbers) and its change points."""
    return frame[frame["context_length"].isna()].set_index("metric")["value"]


def controls(runs: list[tuple[Run, pandas.DataFrame]]) -> str:
    """Each control run beside the run of the same model, graph and seed without the control."""
    plain = {(run.model_name, run.info["config"]["preset"], run.info["config"]["seed"]): (run, frame)
             for run, frame in runs if run.info.get("control", "none") == "none"}
    keys = ("accuracy_at_400", f"accuracy_at_{ACCURACY_AT[-1]}", "deep_alignment", "deep_energy_scale_invariant",
            "layers_below_null")
    rows = ["| run | control | acc. t=400 | acc. t=1400 | deep alignment | deep scale-inv. energy | blocks below null |",
            "|---|---|---|---|---|---|---|"]
    for run, frame in runs:
        control = run.info.get("control", "none")
        partner = plain.get((run.model_name, run.info["config"]["preset"], run.info["config"]["seed"]))
        if control == "none" or partner is None:
            continue
        for (shown, shown_frame), name in ((partner, "none (the experiment)"), ((run, frame), control)):
            numbers = summaries(shown_frame)
            cells = [f"{numbers[key]:.3f}" if key.startswith("acc") else f"{numbers[key]:.2f}" for key in keys[:-1]]
            rows.append(f"| {shown.name} | {name} | " + " | ".join(cells)
                        + f" | {numbers['layers_below_null']:.0f} of {numbers['layers_captured']:.0f} |")
    return "\n".join(rows)


def days_ring_order() -> str:
    """How far the days preset's ring is from every harmonic of the weekly circle (1: the same plane)."""
    plane = np.asarray(icgt.Graph.ring(7).spectral_embedding(2).eigenvectors)  # z2, z3 of ring node i
    week = np.array([DAY_NAMES.index(day) for day in DAYS_RING_ORDER])  # weekly position of ring node i
    cells = []
    for k in (1, 2, 3):
        harmonic = np.stack([np.cos(2 * np.pi * k * week / 7), np.sin(2 * np.pi * k * week / 7)], 1)
        basis = np.linalg.qr(harmonic - harmonic.mean(0))[0]
        cells.append(f"{(np.linalg.svd(np.linalg.qr(plane)[0].T @ basis, compute_uv=False) ** 2).mean():.2f}")
    return ("| ring order | weekly harmonic 1 | harmonic 2 | harmonic 3 |\n|---|---|---|---|\n"
            f"| {', '.join(DAYS_RING_ORDER)} | " + " | ".join(cells) + " |")


#: Gemma 3's attention: blocks 5, 11, 17, ... attend to the whole context, the others to the last 512 tokens.
SLIDING_WINDOW = {"gemma3": (512, 6)}
EDGE_SPAN = 90


def edge_change(values: pandas.Series, edge: int) -> float:
    """The mean of a curve over [edge, edge + EDGE_SPAN) minus its mean over [edge - EDGE_SPAN, edge)."""
    after = (values.index >= edge) & (values.index < edge + EDGE_SPAN)
    before = (values.index >= edge - EDGE_SPAN) & (values.index < edge)
    return float(values[after].mean() - values[before].mean())


def window_edge(run: Run, frame: pandas.DataFrame, edge: int, global_every: int) -> list[tuple[str, float, float]]:
    """For the deep third's sliding-window blocks, its full-attention blocks and accuracy: the change
    across the window's edge, and the share of other edges (every 10 tokens, at least EDGE_SPAN from
    this one) whose change is at least as large: the edge's effect against the curve's own drift and noise."""
    # 1: as graph-like as relabelled nodes
    relative = per_block(frame, "energy") / per_block(frame, "energy_null_mean")
    deep = thirds(run)["deep"]
    full = (deep + 1) % global_every == 0
    curves = [("deep sliding-window blocks: energy / null", relative.loc[deep[~full]].mean()),
              ("deep full-attention blocks: energy / null", relative.loc[deep[full]].mean()),
              ("accuracy", curve(frame, "accuracy"))]
    rows = []
    for name, values in curves:
        at = edge_change(values, edge)
        others = [edge_change(values, other) for other in range(2 * EDGE_SPAN, int(values.index.max()) - EDGE_SPAN, 10)
                  if abs(other - edge) > EDGE_SPAN]
        rows.append((name, at, float(np.mean(np.abs(others) >= abs(at)))))
    return rows


def window_edges(runs: list[tuple[Run, pandas.DataFrame]]) -> str:
    rows = ["| run | curve | change across the window's edge | other edges changing as much |", "|---|---|---|---|"]
    for run, frame in runs:
        if run.info["model"]["architecture"] not in SLIDING_WINDOW or run.arrays["energy_positions"].max() < 1000:
            continue
        edge, every = SLIDING_WINDOW[run.info["model"]["architecture"]]
        rows += [f"| {run.name} | {name} | {change:+.3f} | {share:.0%} |"
                 for name, change, share in window_edge(run, frame, edge, every)]
    return "\n".join(rows)


def heldout(aggregates: list[dict], runs: list[Run]) -> str:
    """Held-out edges: per group of seeds (aggregate.json's heldout: probabilities per word after a word whose
    neighbour was held out, the inference index against each reference with its 95% interval over seeds and
    sequences, the reading), then each run with its own index and the deep class means' distances (full space,
    the PCA figure's plane) beside where the spectral layouts of the shown and of the full graph put a held-out
    pair."""
    kinds = ("held_out", "shown_neighbour", "distance_two", "same_shown_distance")
    index = lambda entry: (f"{entry['index']:+.3f} [{entry['ci95'][0]:+.3f}, {entry['ci95'][1]:+.3f}]"  # noqa: E731
                           if entry["index"] is not None and None not in entry["ci95"] else "–")
    rows = ["| runs (seeds) | p(held-out) | p(shown nb.) | p(2 steps) | p(as far shown) | index vs 2 steps "
            "| index vs as far shown | reading (per seed) | 2-step spread |", "|---|---|---|---|---|---|---|---|---|"]
    for record in aggregates:
        if "heldout" not in record:
            continue
        found = record["heldout"]
        rows.append(f"| {record['name']} ({len(record['seeds'])}) | "
                    + " | ".join(f"{found['probability'][kind]:.2e}" for kind in kinds)
                    + f" | {index(found['index_vs_distance_two'])} | {index(found['index_vs_same_shown_distance'])}"
                    f" | **{found['reading']}** ({', '.join(found['per_seed'])}) | {index(found['spread']) if 'spread' in found else '–'} |")
    rows += ["", "| run | index vs 2 steps | index vs as far shown | reading | deep class means, held-out / shown nb. "
             "/ 2 steps / as far shown (1 = mean pair): full space | in the PCA plane | held-out pairs in the "
             "layout of the shown / full graph |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        if not run.has_held_out_edges:
            continue
        found = summarize(run)["heldout"]
        distances = {space: " / ".join("–" if found[space][kind] is None else f"{found[space][kind]:.2f}"
                                       for kind in kinds) for space in ("geometry_distance", "plane_distance")}
        rows.append(f"| {run.name} | {index(found['index_vs_distance_two'])} | "
                    f"{index(found['index_vs_same_shown_distance'])} | {found['reading']} | "
                    f"{distances['geometry_distance']} | {distances['plane_distance']} | "
                    f"{found['shown_layout_distance']['held_out']:.2f} / {found['full_layout_distance']['held_out']:.2f} |")
    return "\n".join(rows)


def spectrum(runs: list[Run]) -> str:
    """The low-frequency bias's "double convergence" (arXiv 2507.13540): per run with a spectral profile,
    the share of the class means' variance on the graph's two lowest non-zero Laplacian eigenvalues
    (icgt.report.spectrum, the sampling noise taken out) in the deep block at the first and last snapshot
    with every node, the shallowest captured block against the deep one at the last, and the share of
    means unrelated to the graph; each model, graph and seed's control runs (random_init: the same
    architecture, random weights) right after its trained run. The prediction holds where the share
    grows from first to last and from shallow to deep, above the random-weight control's."""
    from icgt.report.spectrum import has_spectrum, spectrum_summary

    rows = ["| model | graph | control | seed | deep, first (t) | deep, last (t) | shallow / deep at last | "
            "unrelated means |", "|---|---|---|---|---|---|---|---|"]
    order = lambda run: (run.model_name, run.info["config"]["preset"], run.info["config"]["seed"],  # noqa: E731
                         run.info.get("control", "none") != "none", run.info.get("control", "none"))
    share = lambda value: "–" if value is None else f"{value:.2f}"  # noqa: E731
    for run in sorted((run for run in runs if has_spectrum(run)), key=order):
        summary = spectrum_summary(run)
        shares, at = summary["low_frequency_share"], summary["low_frequency_positions"]
        rows.append(f"| {run.model_name} | {run.info['config']['preset']} | {run.info.get('control', 'none')} | "
                    f"{run.info['config']['seed']} | {share(shares['first'])} ({at['first']}) | "
                    f"{share(shares['last'])} ({at['last']}) | {share(shares['shallow'])} / {share(shares['deep'])} | "
                    f"{shares['random']:.2f} |")
    return "\n".join(rows)


def two_graphs(aggregates: list[dict], runs: list[Run]) -> str:
    """Two graphs over the same words (icgt.study.two_graphs): per group of seeds (aggregate.json's two_graphs:
    mean [95% interval] over seeds), then per run, ordered by model, second graph, control and p: late accuracy
    against each graph, the deep blocks' alignment of PCs 1-2 and 3-4 with each graph's z2, z3, each graph's
    variance share with its mean over relabelled nodes and the share of the deep blocks above that null, the
    mean squared principal-angle cosine between the two graphs' subspaces with its null, and what they read
    (subspace_reading: of the means over seeds for a group)."""
    from icgt.study.two_graphs import SIGNIFICANCE, subspace_reading, two_graph_numbers

    keys = ("accuracy_first", "accuracy_second", "alignment_pc12_first", "alignment_pc12_second",
            "alignment_pc34_first", "alignment_pc34_second", "variance_share_first", "null_share_first",
            "blocks_above_null_first", "variance_share_second", "null_share_second", "blocks_above_null_second",
            "subspace_cosine_squared", "null_cosine_squared")
    header = ("| second graph | p | control | acc. vs graph | acc. vs second | PCs 1-2 vs graph | PCs 1-2 vs second "
              "| PCs 3-4 vs graph | PCs 3-4 vs second | variance on graph | its null | blocks above null "
              f"(p < {SIGNIFICANCE:g}) | variance on second | its null | blocks above null | subspaces' cos² | its null "
              "| subspaces |")
    rule = "|---|" + "---|" * (len(keys) + 4)
    formats = lambda key: ".3f" if key.startswith("acc") else ".0%" if key.startswith("blocks") else ".2f"  # noqa: E731
    rows = ["| runs (seeds) " + header, rule]
    found = [record for record in aggregates if "two_graphs" in record]
    order = lambda config, model: (model, config["second_graph"], config.get("control", "none"), config["mixture"])  # noqa: E731
    for record in sorted(found, key=lambda r: order(r["config"], r["model"]["name"])):
        numbers = record["two_graphs"]
        rows.append(f"| {record['name']} ({len(record['seeds'])}) | {numbers['second_graph']} | {numbers['mixture']:g} | "
                    f"{record['config'].get('control', 'none')} | "
                    + " | ".join(_with_interval(numbers[key], formats(key)) for key in keys)
                    + f" | {numbers['subspace_reading']['reading'] or '–'} |")
    rows += ["", "| run " + header, rule]
    for run in sorted((run for run in runs if run.has_second_graph), key=lambda r: order(r.info["config"], r.model_name)):
        numbers, config = two_graph_numbers(run), run.info["config"]
        rows.append(f"| {run.name} | {config['second_graph']} | {config['mixture']:g} | {config.get('control', 'none')} | "
                    + " | ".join("–" if not np.isfinite(numbers[key]) else f"{numbers[key]:{formats(key)}}"
                                 for key in keys) + f" | {subspace_reading(numbers) or '–'} |")
    return "\n".join(rows)


def coverage(runs: list[Run]) -> str:
    """Coverage (icgt.study.coverage): per family of runs that differ only in the graph's size, how far the
    curves of the sizes lie from one another (relative spread: 0 one curve, about 1 none) against context
    length and against edge coverage, for accuracy's skill and the deep energy over its null, with 95% t
    intervals over seeds and the reading; then the context length at which the walks (median) have
    traversed half and all of each size's edges."""
    from icgt.study.coverage import coverage_study

    try:
        study = coverage_study(runs)
    except ValueError as error:
        return f"– ({error})"
    rows = ["| model | graph (sizes) | control | seeds | quantity | relative spread vs context | vs edge coverage "
            "| context - coverage | reading |", "|---|---|---|---|---|---|---|---|---|"]
    for family in study:
        for quantity in ("skill", "energy"):
            entry = family[quantity]
            rows.append(f"| {family['model']} | {family['graph']} ({', '.join(family['sizes'])}) | {family['control']} "
                        f"| {len(family['seeds'])} | {quantity} | {_with_interval(entry['context'], '.2f')} | "
                        f"{_with_interval(entry['coverage'], '.2f')} | {_with_interval(entry['difference'], '+.2f')} | "
                        f"{entry['reading']} |")
    rows += ["", "| model | graph | control | " + "size: half / all edges traversed at (median context length) |",
             "|---|---|---|---|"]
    for family in study:
        cells = "; ".join(f"{size}: {reached[0.5]:.0f} / " + ("never" if not np.isfinite(reached[1.0]) else f"{reached[1.0]:.0f}")
                          for size, reached in family["edge_coverage_reached"].items())
        rows.append(f"| {family['model']} | {family['graph']} | {family['control']} | {cells} |")
    return "\n".join(rows)


def seed_groups(runs: list[Run], experiment: str) -> dict[str, list[Run]]:
    """The runs of one experiment, by their name without the seed."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if experiment_of(run) == experiment:
            groups.setdefault(run.name.split("-seed")[0], []).append(run)
    return groups


def heads_over_seeds(runs: list[Run]) -> str:
    """The heads experiment over seeds, first ablation kind and BOS variant, at the k compared with random
    heads: late accuracy and alignment (mean [95% t interval] over seeds) clean, with the top induction and
    previous-token heads ablated and with random heads (the mean of each seed's draws), and how many of
    all seeds' random draws fall below each top set's accuracy."""
    groups = seed_groups(runs, "heads")
    rows = ["| runs (seeds) | k | accuracy clean | induction | previous-token | random | random draws below induction / "
            "previous-token | alignment clean | induction | previous-token | random |", "|---" * 11 + "|"]
    for name, group in sorted(groups.items()):
        numbers: dict[str, list[float]] = {}
        below, draws = [0, 0], 0
        for run in group:
            a = run.arrays
            counts, random_counts = [int(k) for k in a["head_counts"]], [int(k) for k in a["head_random_counts"]]
            k, r = compared_count(counts, random_counts, a["head_previous_token"].size)
            accuracy, random_accuracy = late_accuracy(a["head_accuracy"]), late_accuracy(a["head_random_accuracy"])[0, :, r]
            values = {"clean": late_accuracy(a["head_clean_accuracy"]), "induction": accuracy[0, 0, 1, k],
                      "previous": accuracy[0, 0, 0, k], "random": random_accuracy.mean(),
                      "alignment_clean": a["head_clean_alignment"], "alignment_induction": a["head_alignment"][0, 0, 1, k],
                      "alignment_previous": a["head_alignment"][0, 0, 0, k],
                      "alignment_random": a["head_random_alignment"][0, :, r].mean()}
            for key, value in values.items():
                numbers.setdefault(key, []).append(float(value))
            below = [below[0] + int((random_accuracy < accuracy[0, 0, 1, k]).sum()),
                     below[1] + int((random_accuracy < accuracy[0, 0, 0, k]).sum())]
            draws += random_accuracy.size
        cells = [_with_interval(interval(numbers[key]), ".3f") for key in ("clean", "induction", "previous", "random")]
        cells.append(f"{below[0]} / {below[1]} of {draws}")
        cells += [_with_interval(interval(numbers[key]), ".3f") for key in
                  ("alignment_clean", "alignment_induction", "alignment_previous", "alignment_random")]
        rows.append(f"| {name} ({len(group)}) | {counts[k]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def intervention_over_seeds(runs: list[Run]) -> str:
    """The intervention over seeds: the mass on the target's neighbours (mean [95% t interval] over seeds of
    each seed's mean over its cases) clean, moved to the target, moved in a random direction and to a
    random place in the plane; the move's paired excess over the random place in the plane, and how many
    seeds put its interval over walks above zero (the reports' verdict); and, where the runs have the
    authors' option, its paired difference from the plain move ("–" where they have not)."""
    groups = seed_groups(runs, "intervention")
    rows = ["| runs (seeds) | clean | moved to the target | random direction | random place in the plane | moved - "
            "random place (paired) | seeds with it above zero | authors' option - moved (paired) |", "|---" * 8 + "|"]
    for name, group in sorted(groups.items()):
        numbers: dict[str, list[float]] = {}
        above = 0
        for run in group:
            mass = run.arrays["intervention_mass"].astype(float)  # [conditions, B, K]
            excess = mass[1] - mass[4]
            values = {"clean": mass[0].mean(), "moved": mass[1].mean(), "random": mass[2].mean(),
                      "in_plane": mass[4].mean(), "excess": excess.mean()}
            if "intervention_unembedding_mass" in run.arrays:
                values["option"] = (run.arrays["intervention_unembedding_mass"] - mass[1]).mean()
            for key, value in values.items():
                numbers.setdefault(key, []).append(float(value))
            mean, half, _ = clustered_interval(excess)
            above += int(mean - half > 0)
        cells = [_with_interval(interval(numbers[key]), ".3f") for key in ("clean", "moved", "random", "in_plane")]
        cells += [_with_interval(interval(numbers["excess"]), "+.3f"), f"{above} of {len(group)}",
                  _with_interval(interval(numbers["option"]), "+.4f")
                  if len(numbers.get("option", [])) == len(group) else "–"]
        rows.append(f"| {name} ({len(group)}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def subspace_over_seeds(runs: list[Run]) -> str:
    """The subspace ablation over seeds, first BOS variant: late accuracy (mean [95% t interval] over seeds)
    plain, without the PC plane and without a random and a variance-matched plane (the mean of each seed's
    draws; "–" for runs written before the matched planes), how many of all seeds' planes of each control
    leave accuracy at or above the PC plane's, and the share of the residual stream's variance each
    removes (mean over the blocks)."""
    groups = seed_groups(runs, "subspace")
    rows = ["| runs (seeds) | accuracy plain | PC plane removed | random plane removed | random planes at or above "
            "the PC plane | variance-matched plane removed | matched planes at or above the PC plane | variance "
            "share, PC plane | random plane | matched plane |", "|---" * 10 + "|"]
    for name, group in sorted(groups.items()):
        numbers: dict[str, list[float]] = {}
        counts = {"random": [0, 0], "matched": [0, 0]}  # at or above the PC plane, draws
        for run in group:
            a = run.arrays
            accuracy, removed = late_accuracy(a["subspace_accuracy"])[0], a["subspace_removed_variance"][0].mean(-1)
            controls = {"random": (accuracy[1:], removed[1:])}
            if "subspace_matched_accuracy" in a:
                controls["matched"] = (late_accuracy(a["subspace_matched_accuracy"])[0],
                                       a["subspace_matched_removed_variance"][0].mean(-1))
            values = {"plain": late_accuracy(a["subspace_plain_accuracy"]), "pc": accuracy[0], "variance_pc": removed[0]}
            for control, (control_accuracy, control_removed) in controls.items():
                values[control], values[f"variance_{control}"] = control_accuracy.mean(), control_removed.mean()
                counts[control][0] += int((control_accuracy >= accuracy[0]).sum())
                counts[control][1] += control_accuracy.size
            for key, value in values.items():
                numbers.setdefault(key, []).append(float(value))

        def cell(key: str, format: str = ".3f") -> str:
            return _with_interval(interval(numbers[key]), format) if len(numbers.get(key, [])) == len(group) else "–"

        def count(control: str) -> str:
            above, draws = counts[control]
            return f"{above} of {draws}" if draws and len(numbers.get(control, [])) == len(group) else "–"

        cells = [cell("plain"), cell("pc"), cell("random"), count("random"), cell("matched"), count("matched")]
        cells += [cell(key, ".4f") for key in ("variance_pc", "variance_random", "variance_matched")]
        rows.append(f"| {name} ({len(group)}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def mechanisms(runs: list[Run]) -> str:
    return "\n\n".join(f"**{run.name}.** " + " ".join(mechanism_summary(run)["sentences"]) for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the output folder of `icgt run` holding the run folders")
    args = parser.parse_args()
    try:
        sweep = load_sweep(args.sweep)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    tabled, runs = tabled_runs(sweep), list(sweep.graph_runs)
    aggregates = [json.loads((folder / "aggregate.json").read_text()) for folder in sorted(sweep.folder.iterdir())
                  if (folder / "aggregate.json").is_file()]
    for title, table in (("Seeds (mean [95% interval])", seeds(aggregates)),
                         ("Models side by side", scaling(aggregates, tabled)), ("Controls", controls(tabled)),
                         ("Overview", overview(tabled)), ("By depth (late context)", by_depth(tabled)),
                         ("Over context", over_context(tabled)), ("Days of the week (last snapshot)", days(tabled)),
                         ("The days ring against the week", days_ring_order()),
                         ("Around t = 512, Gemma 3's sliding window", window_edges(tabled)),
                         ("Held-out edges", heldout(aggregates, runs)),
                         ("Two graphs over the same words", two_graphs(aggregates, runs)),
                         ("Coverage: accuracy against context length and against edge coverage", coverage(runs)),
                         ("The spectrum: low-frequency share (double convergence)", spectrum(runs)),
                         ("Heads over seeds (the first ablation kind and BOS variant: by default mean, the BOS spared)",
                          heads_over_seeds(sweep.runs)),
                         ("Intervention over seeds", intervention_over_seeds(sweep.runs)),
                         ("Subspace ablation over seeds (the first BOS variant)", subspace_over_seeds(sweep.runs)),
                         ("Mechanisms", mechanisms([run for run in sweep.runs if experiment_of(run) != "graph"]))):
        print(f"### {title}\n\n{table}\n")


if __name__ == "__main__":
    main()
