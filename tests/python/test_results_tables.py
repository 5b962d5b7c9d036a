"""examples/results_tables.py: the tables of docs/results.md from a sweep's run folders, their numbers
against the same numbers computed here from the runs' arrays."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from icgt.study.aggregate import run_numbers
from icgt.study.run_folder import Run, load_run
from icgt.study.tables import load_sweep

from synthetic_run import write_synthetic_run

SCRIPT = Path(__file__).parents[2] / "examples" / "results_tables.py"


def tables(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True)


#: The synthetic runs' thirds of their 8 blocks, all captured.
THIRDS = {"shallow": [0, 1, 2], "middle": [3, 4, 5], "deep": [6, 7]}
#: The columns of the table over context.
CONTEXT_LENGTHS = (10, 50, 100, 200, 400, 1000, 1400)


def curves_by_hand(run: Run) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The curves of the per-run tables from the arrays: (context lengths, values) of the paper's z, the
    scale-invariant energy, the alignment and the distance correlation (each third's mean over its blocks),
    and of both accuracies (the mean over the sequences that score a position)."""
    arrays = run.arrays
    z = (arrays["energy"] - arrays["energy_null_mean"]) / arrays["energy_null_sd"]
    curves = {}
    for name, values, at in (("z", z, "energy_positions"),
                             ("energy", arrays["energy_scale_invariant"], "energy_positions"),
                             ("alignment", arrays["spectral_alignment"], "alignment_positions"),
                             ("distance", arrays["distance_correlation"], "alignment_positions")):
        for group, blocks in THIRDS.items():
            curves[f"{group} {name}"] = arrays[at], values[blocks].mean(0)  # a NaN snapshot is NaN in every block
    for name in ("accuracy", "accuracy_renormalized"):
        positions = np.flatnonzero(arrays["scored"].any(0))
        scored = np.where(arrays["scored"], arrays[name], np.nan)[:, positions]
        curves[name] = positions, np.nansum(scored, 0) / np.isfinite(scored).sum(0)
    return curves


def late_by_hand(curve: tuple[np.ndarray, np.ndarray]) -> float:
    positions, values = curve
    return float(values[positions >= 0.9 * positions.max()].mean())  # the late snapshots are all finite


def near_by_hand(curve: tuple[np.ndarray, np.ndarray], length: int, format: str) -> str:
    positions, values = curve
    if length > 1.1 * positions.max():
        return "–"
    close = np.abs(positions - length) <= 0.1 * length
    return f"{values[close].mean() if close.any() else values[np.argmin(np.abs(positions - length))]:{format}}"



def results_tables_module():
    """examples/results_tables.py loaded as a module, to call its table functions on synthetic runs."""
    spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def test_the_per_run_tables_hold_the_numbers_of_the_arrays(tmp_path):
    runs = [load_run(write_synthetic_run(tmp_path / "sweep" / kind, kind)) for kind in ("grid", "days")]
    (tmp_path / "sweep" / "unfinished.partial").mkdir()
    result = tables(tmp_path / "sweep")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for run in runs:
        curves = curves_by_hand(run)
        overview = (f"| {run.name} | {late_by_hand(curves['accuracy']):.3f} | "
                    f"{late_by_hand(curves['accuracy_renormalized']):.3f} ({run.chance_accuracy_renormalized():.3f}) | "
                    f"{late_by_hand(curves['deep z']):+.2f} | " + " | ".join(
                        f"{late_by_hand(curves[f'deep {name}']):.2f}" for name in ("energy", "alignment", "distance"))
                    + " | ")
        assert sum(line.startswith(overview) for line in lines) == 1, overview
        by_depth = f"| {run.name} | " + " | ".join(
            f"{late_by_hand(curves[f'{group} z']):+.2f} / {late_by_hand(curves[f'{group} alignment']):.2f}"
            for group in THIRDS) + " |"
        assert by_depth in lines
        start = lines.index(f"| {run.name} | deep z | " + " | ".join(
            near_by_hand(curves["deep z"], t, "+.2f") for t in CONTEXT_LENGTHS) + " |")
        for line, name in zip(lines[start + 1:start + 5], ("deep energy", "deep alignment", "accuracy",
                                                           "accuracy_renormalized")):
            assert line.endswith(" | ".join(near_by_hand(curves[name], t, ".2f")
                                            for t in CONTEXT_LENGTHS) + " |"), name
    days = runs[1]
    weekly, ring = days.arrays["weekly_alignment"][:, -1], days.arrays["ring_alignment"][:, -1]
    blocks = sorted({days.default_layer(), int(np.nanargmax(np.nanmax(ring, axis=-1)))})
    expected = [f"| synthetic-days ({block}) | PC{2 * pair + 1}-{2 * pair + 2} | {weekly[block, pair]:.2f} | "
                f"{ring[block, pair]:.2f} |" for block in blocks for pair in range(weekly.shape[1])]
    assert [line for line in lines if line.startswith("| synthetic-days (")] == expected


def test_a_folder_without_runs_is_an_error(tmp_path):
    result = tables(tmp_path)
    assert result.returncode != 0 and "holds no complete icgt run" in result.stderr


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
    for run, control_name in ((load_run(seeded[0]), "none (the experiment)"), (load_run(control), "shuffled")):
        numbers = run_numbers(run)
        assert (f"| {run.name} | {control_name} | {numbers['accuracy_at_400']:.3f} | "
                f"{numbers['accuracy_at_1400']:.3f} | "
                f"{numbers['deep_alignment']:.2f} | {numbers['deep_energy_scale_invariant']:.2f} | "
                f"{numbers['layers_below_null']:.0f} of 8 |") in lines
    ring_row = next(line for line in lines if line.startswith(f"| {', '.join(DAYS_RING_ORDER)} |"))
    assert ring_row.endswith(" | ".join(f"{value:.2f}" for value in harmonic_overlaps(DAYS_RING_ORDER)) + " |")
    assert any(line.startswith("**synthetic-grid.** Moving the last token") for line in lines)


def test_the_change_across_a_window_edge_equals_numpy(tmp_path):
    module = results_tables_module()
    run = load_run(write_synthetic_run(tmp_path / "grid", "grid"))
    rows = module.window_edge(run, load_sweep(run.folder).to_frame(), edge=200, global_every=4)

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


def test_the_heads_over_seeds_row_equals_numbers_computed_from_the_arrays(tmp_path):
    import json

    from synthetic_run import write_heads_run

    from icgt.report.mechanism import late_accuracy

    sweep = tmp_path / "sweep"
    for seed, suffix in enumerate(["", "-seed1", "-seed2"]):
        folder = write_heads_run(sweep / f"heads{suffix}")
        info = json.loads((folder / "run.json").read_text())
        info.update(name=f"synthetic-grid-heads{suffix}", seed=seed)
        info["config"]["seed"] = seed
        (folder / "run.json").write_text(json.dumps(info))
        with np.load(folder / "results.npz") as stored:  # each seed a little lower, so that the interval is one
            arrays = {name: stored[name] for name in stored.files}
        arrays["head_accuracy"] = arrays["head_accuracy"] - 0.01 * seed
        np.savez(folder / "results.npz", **arrays)
    result = tables(sweep)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| synthetic-grid-heads (3) |"))

    arrays = [load_run(sweep / f"heads{suffix}").arrays for suffix in ["", "-seed1", "-seed2"]]
    k = [1, 2, 4, 6].index(2)  # the k random heads were drawn at
    induction = np.array([late_accuracy(a["head_accuracy"])[0, 0, 1, k] for a in arrays])
    half = scipy.stats.t.ppf(0.975, 2) * induction.std(ddof=1) / np.sqrt(3)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "2"
    assert cells[3] == f"{induction.mean():.3f} [{induction.mean() - half:.3f}, {induction.mean() + half:.3f}]"
    random = [late_accuracy(a["head_random_accuracy"])[0, :, 0] for a in arrays]
    below = sum(int((r < i).sum()) for r, i in zip(random, induction))
    assert cells[6].startswith(f"{below} / ") and cells[6].endswith("of 15")
    alignment = np.array([a["head_alignment"][0, 0, 0, k] for a in arrays])
    assert cells[9].startswith(f"{alignment.mean():.3f}")


def test_the_intervention_over_seeds_row_equals_numbers_computed_from_the_arrays(tmp_path):
    module = results_tables_module()
    rng = np.random.default_rng(1)
    runs = []
    for seed, suffix in enumerate(["", "-seed1", "-seed2"]):
        mass = rng.uniform(0, 0.3, (5, 8, 3))
        mass[1] = mass[4] + 0.05 * seed - 0.02 + rng.normal(0, 0.01, (8, 3))  # seed 0 below, seeds 1, 2 above
        arrays = {"intervention_mass": mass}
        info = {"name": f"toy-grid-intervention{suffix}", "config": {"experiment": "intervention"}}
        runs.append(Run(folder=tmp_path, info=info, arrays=arrays))
    cells = [cell.strip() for cell in module.intervention_over_seeds(runs).splitlines()[2].strip("|").split("|")]
    assert cells[0] == "toy-grid-intervention (3)"
    moved = np.array([run.arrays["intervention_mass"][1].mean() for run in runs])
    half = scipy.stats.t.ppf(0.975, 2) * moved.std(ddof=1) / np.sqrt(3)
    assert cells[2] == f"{moved.mean():.3f} [{moved.mean() - half:.3f}, {moved.mean() + half:.3f}]"
    excess = np.array([(run.arrays["intervention_mass"][1] - run.arrays["intervention_mass"][4]).mean() for run in runs])
    assert cells[5].startswith(f"{excess.mean():+.3f} [")
    above = 0
    for run in runs:  # each walk's targets averaged, then a t interval over the walks
        per_walk = (run.arrays["intervention_mass"][1] - run.arrays["intervention_mass"][4]).mean(1)
        above += int(per_walk.mean() - scipy.stats.t.ppf(0.975, 7) * scipy.stats.sem(per_walk) > 0)
    assert cells[6] == f"{above} of 3" and above == 2
    assert cells[7] == "–"  # no run has the authors' option
    for run in runs:
        run.arrays["intervention_unembedding_mass"] = run.arrays["intervention_mass"][1] - 0.001
    cells = [cell.strip() for cell in module.intervention_over_seeds(runs).splitlines()[2].strip("|").split("|")]
    assert cells[7].startswith("-0.0010 [")


def test_the_subspace_over_seeds_row_equals_numbers_computed_from_the_arrays(tmp_path):
    module = results_tables_module()
    rng = np.random.default_rng(0)
    runs = []
    for seed, suffix in enumerate(["", "-seed1", "-seed2"]):
        accuracy = rng.uniform(0.3, 0.7, (1, 6, 1)) * np.ones((1, 6, 50))  # the PC plane, then 5 random planes
        accuracy[0, 0] = 0.45 + 0.01 * seed
        arrays = {"subspace_accuracy": accuracy, "subspace_plain_accuracy": np.full(50, 0.7),
                  "subspace_removed_variance": rng.uniform(0, 0.3, (1, 6, 3))}
        info = {"name": f"toy-grid-subspace{suffix}", "config": {"experiment": "subspace"}}
        runs.append(Run(folder=tmp_path, info=info, arrays=arrays))
    cells = [cell.strip() for cell in module.subspace_over_seeds(runs).splitlines()[2].strip("|").split("|")]

    pc = np.array([0.45, 0.46, 0.47])
    half = scipy.stats.t.ppf(0.975, 2) * pc.std(ddof=1) / np.sqrt(3)
    assert cells[0] == "toy-grid-subspace (3)"
    assert cells[2] == f"{pc.mean():.3f} [{pc.mean() - half:.3f}, {pc.mean() + half:.3f}]"
    random = np.array([run.arrays["subspace_accuracy"][0, 1:, 0].mean() for run in runs])
    assert cells[3].startswith(f"{random.mean():.3f} [")
    above = sum(int((run.arrays["subspace_accuracy"][0, 1:, 0] >= run.arrays["subspace_accuracy"][0, 0, 0]).sum())
                for run in runs)
    assert cells[4] == f"{above} of 15"
    assert cells[5] == cells[6] == cells[9] == "–"  # runs without the variance-matched planes
    variance = np.array([run.arrays["subspace_removed_variance"][0, 0].mean() for run in runs])
    assert cells[7].startswith(f"{variance.mean():.4f} [")

    for run in runs:  # now with 4 variance-matched planes each
        run.arrays["subspace_matched_accuracy"] = rng.uniform(0.3, 0.7, (1, 4, 1)) * np.ones((1, 4, 50))
        run.arrays["subspace_matched_removed_variance"] = rng.uniform(0.1, 0.4, (1, 4, 3))
    cells = [cell.strip() for cell in module.subspace_over_seeds(runs).splitlines()[2].strip("|").split("|")]
    matched = np.array([run.arrays["subspace_matched_accuracy"][0, :, 0].mean() for run in runs])
    half = scipy.stats.t.ppf(0.975, 2) * matched.std(ddof=1) / np.sqrt(3)
    assert cells[5] == f"{matched.mean():.3f} [{matched.mean() - half:.3f}, {matched.mean() + half:.3f}]"
    above = sum(int((run.arrays["subspace_matched_accuracy"][0, :, 0] >= run.arrays["subspace_accuracy"][0, 0, 0]).sum())
                for run in runs)
    assert cells[6] == f"{above} of 12"
    variance = np.array([run.arrays["subspace_matched_removed_variance"][0].mean() for run in runs])
    assert cells[9].startswith(f"{variance.mean():.4f} [")
