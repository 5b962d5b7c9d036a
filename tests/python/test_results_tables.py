"""examples/results_tables.py: the tables of docs/results.md from a sweep's run folders."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from icgt.study.aggregate import run_numbers
from icgt.study.run_folder import load_run

from synthetic_run import write_synthetic_run

SCRIPT = Path(__file__).parents[2] / "examples" / "results_tables.py"


def tables(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True)


def test_tables_of_a_grid_and_a_days_run(tmp_path):
    grid = write_synthetic_run(tmp_path / "sweep" / "grid-run", "grid")
    write_synthetic_run(tmp_path / "sweep" / "days-run", "days")
    (tmp_path / "sweep" / "unfinished.partial").mkdir()
    result = tables(tmp_path / "sweep")
    assert result.returncode == 0, result.stderr
    for heading in ("Overview", "By depth (late context)", "Over context", "Days of the week (last snapshot)"):
        assert f"### {heading}" in result.stdout
    with np.load(grid / "results.npz") as arrays:
        deep = arrays["layers"] * 3 // 8 == 2  # the synthetic run: 8 blocks, all captured
        z = (arrays["energy"] - arrays["energy_null_mean"]) / arrays["energy_null_sd"]
        late = arrays["energy_positions"] >= 0.9 * arrays["energy_positions"].max()
        deep_late_z = np.nanmean(np.nanmean(z[deep][:, late], axis=0))  # early snapshots are all NaN
    grid_row = next(line for line in result.stdout.splitlines() if line.startswith("| synthetic-grid |"))
    assert f"| {deep_late_z:+.2f} |" in grid_row
    days_rows = [line for line in result.stdout.splitlines() if "PC1-2" in line or "PC3-4" in line]
    assert days_rows and all(line.startswith("| synthetic-days (") for line in days_rows)


def test_a_folder_without_runs_is_an_error(tmp_path):
    result = tables(tmp_path)
    assert result.returncode != 0 and "holds no complete icgt run folder" in result.stderr


def test_seeds_controls_days_ring_and_mechanism_tables(tmp_path):
    import json

    from synthetic_run import write_intervention_run
    from test_study_design import harmonic_overlaps

    from icgt.study.aggregate import aggregate_runs
    from icgt.study.presets import DAYS_RING_ORDER

    sweep = tmp_path / "sweep"
    seeded = [write_synthetic_run(sweep / f"grid-seed{seed}", "grid", seed=seed) for seed in range(3)]
    aggregate = json.loads((aggregate_runs(seeded, sweep / "grid-seeds") / "aggregate.json").read_text())
    control = write_synthetic_run(sweep / "grid-shuffled", "grid", effect=False)
    info = json.loads((control / "run.json").read_text())
    info.update(control="shuffled", name="synthetic-grid-shuffled")
    info["config"]["control"] = "shuffled"
    (control / "run.json").write_text(json.dumps(info))
    write_intervention_run(sweep / "grid-intervention")
    result = tables(sweep)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    seeds_row = next(line for line in lines if line.startswith("| synthetic-grid-seeds (3) |"))
    accuracy = aggregate["numbers"]["accuracy_at_400"]
    assert f"{accuracy['mean']:.3f} [{accuracy['ci95'][0]:.3f}, {accuracy['ci95'][1]:.3f}]" in seeds_row
    side_by_side = next(line for line in lines if line.startswith("| grid | toy-8-layers (3) |"))
    control_numbers = run_numbers(load_run(control))
    assert f"{accuracy['mean']:.3f} [{accuracy['ci95'][0]:.3f}, {accuracy['ci95'][1]:.3f}]" in side_by_side
    assert (f"| shuffled {control_numbers['deep_alignment']:.2f} / "
            f"{control_numbers['deep_energy_scale_invariant']:.2f} |") in side_by_side
    shuffled = [line for line in lines if "| shuffled |" in line and not line.startswith("| toy-8-layers |")]
    assert len(shuffled) == 1 and shuffled[0].startswith("| synthetic-grid-shuffled |")
    assert any("| none (the experiment) |" in line for line in lines)
    ring_row = next(line for line in lines if line.startswith(f"| {', '.join(DAYS_RING_ORDER)} |"))
    assert ring_row.endswith(" | ".join(f"{value:.2f}" for value in harmonic_overlaps(DAYS_RING_ORDER)) + " |")
    assert any(line.startswith("**synthetic-grid.** Moving the last token") for line in lines)


def test_the_change_across_a_window_edge_equals_numpy(tmp_path):
    spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = load_run(write_synthetic_run(tmp_path / "grid", "grid"))
    rows = module.window_edge(run, edge=200, global_every=4)

    at = run.arrays["energy_positions"]
    relative = run.arrays["energy"] / run.arrays["energy_null_mean"]
    deep = [i for i, layer in enumerate(run.layers) if layer * 3 // 8 == 2]  # blocks 6, 7 of 8
    full = [i for i in deep if (run.layers[i] + 1) % 4 == 0]  # block 7
    curve = relative[full].mean(0)
    expected = curve[(at >= 200) & (at < 290)].mean() - curve[(at >= 110) & (at < 200)].mean()
    name, change, share = rows[1]
    assert name.startswith("deep full-attention") and change == pytest.approx(expected)
    assert 0 <= share <= 1 and rows[2][0] == "accuracy"


def test_the_spectrum_table_puts_each_random_weight_control_after_its_trained_run(tmp_path):
    import json

    from icgt.report.spectrum import spectrum_summary

    sweep = tmp_path / "sweep"
    control = write_synthetic_run(sweep / "a-grid-random-init", "grid", effect=False)  # sorts first by name
    info = json.loads((control / "run.json").read_text())
    info.update(control="random_init", name="synthetic-grid-random-init")
    info["config"]["control"] = "random_init"
    (control / "run.json").write_text(json.dumps(info))
    trained = write_synthetic_run(sweep / "grid", "grid")
    old = write_synthetic_run(sweep / "old", "grid", seed=1)  # written before the profile: left out
    with np.load(old / "results.npz") as arrays:
        np.savez(old / "results.npz", **{name: arrays[name] for name in arrays.files
                                         if name != "debiased_spectral_profile"})
    result = tables(sweep)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("### The spectrum: low-frequency share (double convergence)")
    end = next(index for index in range(start + 1, len(lines)) if lines[index].startswith("###"))
    rows = [line for line in lines[start + 1:end] if line.startswith("| toy-8-layers |")]
    expected = []
    for folder in (trained, control):
        summary = spectrum_summary(load_run(folder))
        shares, at = summary["low_frequency_share"], summary["low_frequency_positions"]
        expected.append(f"| {shares['first']:.2f} ({at['first']}) | {shares['last']:.2f} ({at['last']}) | "
                        f"{shares['shallow']:.2f} / {shares['deep']:.2f} | 0.20 |")
    assert len(rows) == 2 and rows[0].startswith("| toy-8-layers | grid | none | 0 |") and expected[0] in rows[0]
    assert rows[1].startswith("| toy-8-layers | grid | random_init | 0 |") and expected[1] in rows[1]
