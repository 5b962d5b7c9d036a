"""Print the tables of docs/results.md (Markdown) from the run folders of a sweep.

    python -m icgt run --preset grid ring hexagon days pairs --model smollm2-135m gemma3-270m --output runs
    python examples/results_tables.py runs

Late-context numbers average the snapshots in the last tenth of the context (the energy's window of
20 tokens makes single snapshots noisy). "z" is the paper's normalised energy against its null
baseline, (energy - null mean) / null sd: negative means graph-like. The scale-invariant energy is
1 on average under random relabelling and cannot be lowered by shrinking the representations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from icgt.report import summarize
from icgt.run_folder import Run, load_run

CONTEXT_LENGTHS = (50, 100, 200, 400, 800, 1400)


def late(run: Run, array: str, positions: str) -> np.ndarray:
    """[layers]: the mean of an array (or "energy_z") over the snapshots in the last tenth of the context."""
    values = energy_z(run) if array == "energy_z" else run.arrays[array]
    where = run.arrays[positions] >= 0.9 * run.arrays[positions].max()
    return np.nanmean(values[:, where], axis=1)


def energy_z(run: Run) -> np.ndarray:
    """[layers, snapshots]: normalised energy against its null baseline."""
    return (run.arrays["energy"] - run.arrays["energy_null_mean"]) / run.arrays["energy_null_sd"]


def mean_near(values: np.ndarray, positions: np.ndarray, length: int, format: str) -> str:
    """The mean of the values at positions within 10% of a context length (else the nearest one),
    formatted; a dash for a length beyond the run."""
    if length > 1.1 * positions.max():
        return "–"
    close = np.flatnonzero(np.abs(positions - length) <= 0.1 * length)
    return f"{np.nanmean(values[close if close.size else np.argmin(np.abs(positions - length))]):{format}}"


def best_layer(run: Run) -> int:
    """Index on the layer axis of the most graph-like layer late in context (lowest late z)."""
    return int(np.nanargmin(late(run, "energy_z", "energy_positions")))


def overview(runs: list[Run]) -> str:
    rows = ["| run | accuracy (full vocab.) | renormalised (chance) | best layer | late z | late scale-inv. energy "
            "| late alignment | late distance corr. | energy min. before accuracy rise |",
            "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        summary = summarize(run)
        layer = best_layer(run)
        z = late(run, "energy_z", "energy_positions")[layer]
        rows.append(
            f"| {run.name} | {summary['final_accuracy']:.3f} | {summary['final_accuracy_renormalized']:.3f} "
            f"({summary['chance_accuracy_renormalized']:.3f}) | {run.layers[layer]} of {run.num_layers} | {z:+.2f} "
            f"| {late(run, 'energy_scale_invariant', 'energy_positions')[layer]:.3f} "
            f"| {late(run, 'spectral_alignment', 'alignment_positions')[layer]:.2f} "
            f"| {late(run, 'distance_correlation', 'alignment_positions')[layer]:.2f} "
            f"| {_yes_no(summary['energy_minimum_before_accuracy_rise'])} (min. t={summary['energy_minimum_position']}, "
            f"rise t={summary['accuracy_rise_position']}, layer {summary['layer']}) |")
    return "\n".join(rows)


def by_depth(runs: list[Run]) -> str:
    rows = ["| run | " + " | ".join(f"{group} z / alignment" for group in ("shallow", "middle", "deep")) + " |",
            "|---|---|---|---|"]
    for run in runs:
        z = late(run, "energy_z", "energy_positions")
        alignment = late(run, "spectral_alignment", "alignment_positions")
        cells = [f"{np.nanmean(z[indices]):+.2f} / {np.nanmean(alignment[indices]):.2f}"
                 for indices in run.layer_groups().values()]
        rows.append(f"| {run.name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def over_context(runs: list[Run]) -> str:
    header = " | ".join(f"t={length}" for length in CONTEXT_LENGTHS)
    rows = [f"| run (best layer) | quantity | {header} |", "|---|---|" + "---|" * len(CONTEXT_LENGTHS)]
    for run in runs:
        layer = best_layer(run)
        positions, accuracy, _ = run.accuracy_curve(renormalized=True)
        z = energy_z(run)[layer]
        alignment = run.arrays["spectral_alignment"][layer]
        name = f"{run.name} ({run.layers[layer]})"
        for quantity, values, at, format in (
                ("z", z, run.arrays["energy_positions"], "+.2f"),
                ("alignment", alignment, run.arrays["alignment_positions"], ".2f"),
                ("accuracy (renorm.)", accuracy, positions, ".2f")):
            cells = " | ".join(mean_near(values, at, t, format) for t in CONTEXT_LENGTHS)
            rows.append(f"| {name if quantity == 'z' else ''} | {quantity} | {cells} |")
    return "\n".join(rows)


def days(runs: list[Run]) -> str:
    rows = ["| run (layer) | PC pair | weekly circle | in-context ring |", "|---|---|---|---|"]
    for run in runs:
        if not run.is_days:
            continue
        for layer in sorted({best_layer(run), run.layer_index()}):
            weekly, ring = run.arrays["weekly_alignment"][layer, -1], run.arrays["ring_alignment"][layer, -1]
            for pair, (w, r) in enumerate(zip(weekly, ring)):
                rows.append(f"| {run.name} ({run.layers[layer]}) | PC{2 * pair + 1}-{2 * pair + 2} | {w:.2f} | {r:.2f} |")
    return "\n".join(rows)


def _yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the output folder of `icgt run` holding the run folders")
    args = parser.parse_args()
    runs = [load_run(folder) for folder in sorted(args.sweep.iterdir()) if (folder / "run.json").is_file()]
    if not runs:
        raise SystemExit(f"{args.sweep} holds no complete icgt run folder")
    for title, table in (("Overview", overview(runs)), ("By depth (late context)", by_depth(runs)),
                         ("Over context", over_context(runs)), ("Days of the week (last snapshot)", days(runs))):
        print(f"### {title}\n\n{table}\n")


if __name__ == "__main__":
    main()
