"""The study design: a days ring that is no harmonic of the week, change points and lags that
recover known ones, intervals over seeds as numpy and scipy compute them, and the controls."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from synthetic_run import ACCURACY_RISE_AT, EARLY_ENERGY_CHANGE, ENERGY_MINIMUM_AT, write_synthetic_run

import icgt
from icgt.study import aggregate
from icgt.study import curves as change_points
from icgt.models.words import DAY_NAMES
from icgt.study.presets import DAYS_RING_ORDER


def harmonic_overlaps(ring_order):
    """Mean squared principal-angle cosine between the ring's z2, z3 (in weekly coordinates) and the
    weekly harmonics 1, 2, 3: numpy, from the Laplacian of the ring."""
    n = len(ring_order)
    adjacency = np.zeros((n, n))
    for i in range(n):
        a, b = DAY_NAMES.index(ring_order[i]), DAY_NAMES.index(ring_order[(i + 1) % n])
        adjacency[a, b] = adjacency[b, a] = 1
    _, vectors = np.linalg.eigh(np.diag(adjacency.sum(1)) - adjacency)
    ring_plane = vectors[:, 1:3]
    overlaps = []
    for k in (1, 2, 3):
        week = np.arange(n)
        harmonic = np.stack([np.cos(2 * np.pi * k * week / n), np.sin(2 * np.pi * k * week / n)], 1)
        basis = np.linalg.qr(harmonic - harmonic.mean(0))[0]
        overlaps.append(float((np.linalg.svd(ring_plane.T @ basis, compute_uv=False) ** 2).mean()))
    return overlaps


def test_the_days_ring_contradicts_the_week_and_is_no_harmonic_of_it():
    assert sorted(DAYS_RING_ORDER) == sorted(DAY_NAMES)
    for i, day in enumerate(DAYS_RING_ORDER):
        gap = abs(DAY_NAMES.index(day) - DAY_NAMES.index(DAYS_RING_ORDER[(i + 1) % 7])) % 7
        assert gap not in (1, 6), (day, DAYS_RING_ORDER[(i + 1) % 7])
    overlaps = harmonic_overlaps(DAYS_RING_ORDER)
    assert max(overlaps) < 0.6, overlaps
    assert overlaps == pytest.approx([0.075, 0.545, 0.379], abs=1e-3)
    # The order this replaces (days three apart) is exactly the second harmonic: the test can fail.
    assert harmonic_overlaps([DAY_NAMES[(3 * i) % 7] for i in range(7)])[1] == pytest.approx(1.0)


@pytest.mark.parametrize("energy_at, accuracy_at", [(20, 80), (60, 60), (200, 50)])
def test_change_points_and_lags_recover_planted_ones_in_noise(energy_at, accuracy_at):
    positions = np.geomspace(1, 1400, 80)
    rng = np.random.default_rng(energy_at)
    energy = 1.0 - 0.4 / (1 + (energy_at / positions) ** 2.5) + rng.normal(0, 0.02, 80)
    accuracy = 0.1 + 0.7 / (1 + (accuracy_at / positions) ** 2) + rng.normal(0, 0.02, 80)
    assert change_points.change_point(positions, energy, -1) == pytest.approx(energy_at, rel=0.1)
    assert change_points.change_point(positions, accuracy, +1) == pytest.approx(accuracy_at, rel=0.1)
    assert change_points.lag(positions, energy, accuracy, (-1, +1)) == pytest.approx(math.log2(accuracy_at / energy_at),
                                                                                   abs=0.15)
    assert math.isnan(change_points.change_point(positions, rng.normal(0.5, 0.05, 80)))


def test_a_change_point_needs_the_direction_and_the_size_asked_for():
    positions = np.geomspace(1, 1400, 80)
    rng = np.random.default_rng(3)
    # Energy that rises (as Gemma 3's days energy does, 0.78 -> 1.45) is no fall, though a fit finds its change.
    rising = 0.78 + 0.67 / (1 + (100 / positions) ** 2) + rng.normal(0, 0.02, 80)
    assert change_points.change_point(positions, rising) == pytest.approx(100, rel=0.15)
    assert math.isnan(change_points.change_point(positions, rising, -1))
    assert change_points.change_point(positions, rising, +1) == pytest.approx(100, rel=0.15)
    # A drift of 0.04 with little noise fits a sigmoid well; it is a change only if 0.04 is enough.
    drift = 1.0 - 0.04 / (1 + (50 / positions) ** 2) + rng.normal(0, 0.002, 80)
    assert change_points.sigmoid_fit(positions, drift, -1)[4] > 0.9
    assert change_points.change_point(positions, drift, -1, min_amplitude=0.02) == pytest.approx(50, rel=0.15)
    assert math.isnan(change_points.change_point(positions, drift, -1, min_amplitude=0.05))


@pytest.mark.parametrize("interval, share, order", [([0.2, 1.5], 0.9, "energy first"), ([-1.5, -0.2], 0.9,
                         "accuracy first"), ([-0.2, 1.5], 0.9, "undecided"), ([0.2, 1.5], 0.4, "undecided"),
                         ([None, None], 1.0, "undecided")])
def test_the_order_is_decided_only_by_an_interval_that_excludes_zero(interval, share, order):
    assert change_points.order_of(interval, share) == order


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory):
    return [write_synthetic_run(tmp_path_factory.mktemp(f"seed{seed}"), "grid", seed=seed) for seed in range(3)]


def test_the_aggregate_over_seeds_equals_numpy_and_scipy(seeded_runs, tmp_path):
    folder = aggregate.aggregate_runs(seeded_runs, tmp_path / "seeds")
    record = json.loads((folder / "aggregate.json").read_text())
    per_seed = []
    for run in seeded_runs:
        with np.load(run / "results.npz") as arrays:
            accuracy = np.where(arrays["scored"], arrays["accuracy"], np.nan)
            columns = [t for t in range(accuracy.shape[1]) if 400 / 1.1 <= t <= 400 * 1.1]
            per_seed.append(np.nanmean(accuracy[:, columns]))
    mean, sem = np.mean(per_seed), stats.sem(per_seed)
    half = stats.t.ppf(0.975, df=len(per_seed) - 1) * sem
    number = record["numbers"]["accuracy_at_400"]
    assert number["per_seed"] == pytest.approx(per_seed, abs=1e-6)
    assert number["mean"] == pytest.approx(mean, abs=1e-6)
    assert number["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-5)
    # The lag interval covers the planted lag (energy at 15, accuracy at 60 and 66 tokens).
    lag = record["lag"]["full_vocabulary"]
    planted = math.log2(ACCURACY_RISE_AT / EARLY_ENERGY_CHANGE)
    assert lag["ci95"][0] < planted < lag["ci95"][1] and lag["defined"] == 1.0
    assert lag["mean"] == pytest.approx(planted, abs=0.2) and lag["order"] == "energy first"
    # The paper's statistic: the energy's minimum (at 40 tokens) against accuracy's steepest rise (at 60).
    paper = record["lag"]["paper"]
    assert paper["mean"] == pytest.approx(math.log2(ACCURACY_RISE_AT / ENERGY_MINIMUM_AT), abs=0.2)
    with np.load(folder / "aggregate.npz") as curves:
        assert curves["accuracy"].shape[0] == 3 and curves["seeds"].tolist() == [0, 1, 2]


def test_runs_of_different_configs_are_not_aggregated(seeded_runs, tmp_path):
    other = write_synthetic_run(tmp_path / "days", "days", seed=5)
    with pytest.raises(ValueError, match="differs from .* in \\['graph', 'preset'\\], not only in the seed"):
        aggregate.aggregate_runs([seeded_runs[0], other], tmp_path / "mixed")
    with pytest.raises(ValueError, match="the seeds \\[0, 0\\] repeat"):
        aggregate.aggregate_runs([seeded_runs[0], seeded_runs[0]], tmp_path / "twice")


def test_the_interval_of_one_seed_is_undefined_and_of_none_empty():
    assert aggregate.interval([0.5])["ci95"] == [None, None]
    assert aggregate.interval([float("nan"), None])["mean"] is None


SHORT = {"model": "smollm2-135m", "num_sequences": 2, "sequence_length": 100, "layers": [3, 24],
         "energy_window": 20, "pca_window": 40, "null_permutations": 50, "bootstrap": 20}


@pytest.fixture(scope="module")
def plain_run(smollm2_bundle, real_cache, tmp_path_factory):
    """The run without a control that each control is compared with (one for the three)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ICGT_CACHE_DIR", str(real_cache))
        return icgt.run_experiment({"preset": "grid", **SHORT}, output=tmp_path_factory.mktemp("plain"), progress=False,
                                   report=False)


@pytest.mark.parametrize("control", ["shuffled", "uniform", "random_init"])
def test_controls_run_end_to_end(control, plain_run, real_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(real_cache))
    plain = plain_run
    folder = icgt.run_experiment({"preset": "grid", **SHORT, "control": control}, output=tmp_path, progress=False)
    assert folder.name == f"smollm2-135m-grid-{control.replace('_', '-')}"
    record = json.loads((folder / "run.json").read_text())
    assert record["control"] == control
    with np.load(plain / "results.npz") as walk, np.load(folder / "results.npz") as arrays:
        grid = icgt.Graph.square_grid(4, 4)
        nodes = arrays["nodes"][:, 1:]
        steps = [(a, b) for row in nodes for a, b in zip(row[:-1], row[1:])]
        on_edges = np.mean([b in grid.neighbours(int(a)) for a, b in steps])
        if control == "shuffled":  # the walk's words, each as often, in another order
            assert all(sorted(row) == sorted(original) for row, original in zip(nodes, walk["nodes"][:, 1:]))
            assert on_edges < 0.5
        elif control == "uniform":
            assert on_edges < 0.5 and np.bincount(nodes.ravel(), minlength=16).min() > 0
        else:  # the walks themselves, through an untrained model of the same architecture
            assert np.array_equal(nodes, walk["nodes"][:, 1:]) and on_edges == 1.0
            assert record["model"]["bundle_sha256"] != json.loads((plain / "run.json").read_text())["model"]["bundle_sha256"]
            # an untrained model follows no graph: its full-vocabulary mass on the node words is tiny
            assert np.nanmean(arrays["accuracy"]) < 0.05


def test_the_seed_bands_equal_scipy_and_the_figure_draws_them(seeded_runs, tmp_path):
    from icgt.report.plots import seeds_figure
    from icgt.report import write_seeds_figure
    from icgt.study.run_folder import load_run

    values = np.array([[0.2, 0.5, np.nan], [0.3, 0.7, 1.0], [0.4, 0.6, np.nan]])
    mean, half = aggregate.t_band(values)
    assert mean[:2] == pytest.approx(values[:, :2].mean(0))
    assert half[:2] == pytest.approx(stats.t.ppf(0.975, df=2) * stats.sem(values[:, :2], axis=0), rel=1e-9)
    assert mean[2] == 1.0 and math.isnan(half[2])  # one finite seed: no interval

    runs = [load_run(folder) for folder in seeded_runs]
    figure = seeds_figure(runs)
    deep = np.stack([run.layer_group_means("spectral_alignment")["deep"] for run in runs])
    drawn = next(line for line in figure.axes[1].lines if line.get_label().startswith("alignment"))
    assert np.allclose(drawn.get_ydata(), deep.mean(0), equal_nan=True)
    path = write_seeds_figure(seeded_runs, tmp_path / "seeds.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
