"""Runs that differ only in their seed, summed up: every headline number with its 95% interval.

``icgt run --seeds 3`` writes one run per seed and then, beside them, ``<name>-seeds/`` holding
aggregate.json (each number per seed, its mean and a t interval over seeds; the energy-accuracy lag
with a bootstrap interval over seeds and sequences) and aggregate.npz (the curves per seed, for
figures with bands). Like icgt.study.run_folder it needs only numpy and json, and scipy for the t
quantiles (icgt.study.intervals, the one home of icgt's intervals).

Example:
    >>> from icgt.study.aggregate import aggregate_runs
    >>> folder = aggregate_runs([grid_run, grid_run_seed1, grid_run_seed2])
    >>> numbers = json.loads((folder / "aggregate.json").read_text())["numbers"]
    >>> sorted(numbers["accuracy_at_400"])
    ['ci95', 'mean', 'per_seed']
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..files import write_atomically, write_npz
from .curves import order_of
from .heldout import HELDOUT_CLASSES, decide, spread
from .intervals import t_band
from .run_folder import Run, load_run
from .two_graphs import subspace_reading, two_graph_numbers

#: Context lengths of the accuracy numbers in the tables: early, middle, late (the paper's figure).
ACCURACY_AT = (50, 400, 1400)
#: Significance level of the per-layer null test, and the share of positions around t that
#: accuracy at t averages (t / 1.1 to 1.1 t).
ALPHA = 0.01
AROUND = 1.1
#: Draws of the hierarchical bootstrap of the lag (seeds, then each seed's own resamples).
LAG_DRAWS = 2000


def interval(values: list[float]) -> dict[str, Any]:
    """Mean and 95% t interval over seeds of the finite values (None where undefined).

    >>> interval([0.68, 0.67, 0.69])["ci95"]
    [0.655159, 0.704841]
    """
    per_seed = [None if v is None or not math.isfinite(v) else round(float(v), 6) for v in values]
    mean, half = (float(x[0]) for x in t_band(np.array([[math.nan if v is None else v] for v in values], dtype=float)))
    if math.isnan(mean):
        return {"per_seed": per_seed, "mean": None, "ci95": [None, None]}
    if math.isnan(half):
        return {"per_seed": per_seed, "mean": round(mean, 6), "ci95": [None, None]}
    return {"per_seed": per_seed, "mean": round(mean, 6), "ci95": [round(mean - half, 6), round(mean + half, 6)]}


def run_numbers(run: Run) -> dict[str, float]:
    """The table numbers of one run (NaN where undefined): accuracy at ACCURACY_AT (both variants),
    the deep third's alignment and scale-invariant energy at the last snapshot, and how many
    captured layers have an energy below the relabelling null at level ALPHA there."""
    numbers: dict[str, float] = {}
    scored = run.arrays["scored"]
    positions = np.arange(scored.shape[1])
    for variant, name in (("accuracy", "accuracy_at"), ("accuracy_renormalized", "accuracy_renormalized_at")):
        values = np.where(scored, run.arrays[variant], np.nan)
        for t in ACCURACY_AT:
            near = (positions >= t / AROUND) & (positions <= t * AROUND)
            chosen = values[:, near]
            numbers[f"{name}_{t}"] = float(np.nanmean(chosen)) if np.isfinite(chosen).any() else math.nan
    deep = run.layer_groups().get("deep", np.arange(len(run.layers)))
    numbers["deep_alignment"] = _last_finite_mean(run.arrays["spectral_alignment"][deep])
    numbers["deep_energy_scale_invariant"] = _last_finite_mean(run.arrays["energy_scale_invariant"][deep])
    p_values = run.arrays["energy_p_value"]
    last = np.flatnonzero(np.isfinite(p_values).all(axis=0))
    numbers["layers_below_null"] = float((p_values[:, last[-1]] < ALPHA).sum()) if last.size else math.nan
    numbers["layers_captured"] = float(len(run.layers))
    return numbers


def lag_interval(runs: list[Run], seed: int = 0) -> dict[str, dict[str, Any]]:
    """The lag log2(accuracy's change / the energy's change), in doublings of context (positive: the
    energy changes first), for the change points of both accuracy variants ("full_vocabulary",
    "renormalized") and for the paper's statistic ("paper": the energy's minimum against accuracy's
    steepest rise, full vocabulary): the mean over seeds of each run's own estimate, a 95% interval from
    a hierarchical bootstrap (seeds drawn with replacement, then one of each drawn seed's resamples of
    its sequences; each draw the mean of the drawn resamples that time both changes), `defined`, the share
    of the seeds' resamples where both changes exist (the mean over seeds of each run's share: a draw that
    asked every drawn seed to time both would be defined ever more rarely as seeds are added, 0.66 per seed
    giving 0.29 for three), and the `order` they decide (icgt.study.curves.order_of)."""
    generator = np.random.default_rng(seed)
    result = {}
    timed = {"full_vocabulary": ("energy_change_points", "accuracy_change_points", 0),
             "renormalized": ("energy_change_points", "accuracy_change_points", 1),
             "paper": ("energy_minimum_points", "accuracy_rise_points", 0)}
    for name, (energy, accuracy, variant) in timed.items():
        lags = [np.log2(run.arrays[accuracy][:, variant] / run.arrays[energy]) for run in runs]
        points = [float(lag[0]) for lag in lags]
        draws = hierarchical_draws(lags, generator, skip_undefined=True)
        finite = draws[np.isfinite(draws)]
        finite_points = [p for p in points if math.isfinite(p)]
        ci95 = [round(float(v), 4) for v in np.percentile(finite, [2.5, 97.5])] if finite.size else [None, None]
        defined = round(float(np.mean([np.isfinite(lag[1:] if lag.size > 1 else lag).mean() for lag in lags])), 3)
        result[name] = {
            "per_seed": [round(p, 4) if math.isfinite(p) else None for p in points],
            "mean": round(float(np.mean(finite_points)), 4) if finite_points else None,
            "ci95": ci95, "defined": defined, "order": order_of(ci95, defined),
        }
    return result


def hierarchical_draws(replicates: list[np.ndarray], generator: np.random.Generator,
                       skip_undefined: bool = False) -> np.ndarray:
    """LAG_DRAWS draws [LAG_DRAWS, ...] of the mean over seeds, each from the runs' replicates [1 + R, ...] (the
    run, then its resamples of the sequences): seeds drawn with replacement, then one resample of each drawn
    seed (the run itself where it has none); with skip_undefined, the mean of the drawn resamples that are
    not NaN (NaN only where none is).

    >>> draws = hierarchical_draws([np.array([1.0, 1.0]), np.array([3.0, 3.0])], np.random.default_rng(0))
    >>> draws.shape, sorted(set(draws.tolist()))
    ((2000,), [1.0, 2.0, 3.0])
    """
    draws = []
    for _ in range(LAG_DRAWS):
        chosen = generator.integers(0, len(replicates), size=len(replicates))
        picks = [replicates[i][generator.integers(1, len(replicates[i]))] if len(replicates[i]) > 1
                 else replicates[i][0] for i in chosen]
        if skip_undefined:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a draw of undefined resamples only: NaN
                draws.append(np.nanmean(picks, axis=0))
        else:
            draws.append(np.mean(picks, axis=0))
    return np.array(draws)


def heldout_interval(runs: list[Run], seed: int = 0) -> dict[str, Any]:
    """The held-out reading over seeds (icgt.study.heldout.decide): the mean over seeds of each kind's
    probability, and the inference indices with 95% intervals from hierarchical_draws of the runs'
    heldout_final."""
    replicates = [run.arrays["heldout_final"] for run in runs]
    values = np.concatenate([np.mean([r[0] for r in replicates], axis=0)[None],
                             hierarchical_draws(replicates, np.random.default_rng(seed))])
    decision = decide(values)
    return {"probability": {kind: round(float(v), 8) for kind, v in zip(HELDOUT_CLASSES, values[0])},
            **{f"index_vs_{kind}": {"index": round(entry["index"], 4), "ci95": [round(v, 4) for v in entry["ci95"]]}
               for kind, entry in decision.items() if kind not in ("reading", "follows")},
            "follows_shown_graph": decision["follows"],
            "spread": spread(values), "per_seed": [decide(r)["reading"] for r in replicates],
            "reading": decision["reading"]}


def two_graph_interval(runs: list[Run]) -> dict[str, Any]:
    """The numbers of two-graph runs that differ only in their seed (icgt.study.two_graphs.two_graph_numbers),
    each with its mean and 95% t interval over seeds, beside the second graph's kind and the mixture, and the
    subspace_reading of each seed and of the means over seeds (the blocks above the null and the cosine
    averaged over seeds, read by the one rule)."""
    per_run = [two_graph_numbers(run) for run in runs]
    config = runs[0].info["config"]
    intervals = {key: interval([numbers[key] for numbers in per_run]) for key in per_run[0]}
    return {"second_graph": config["second_graph"], "mixture": config["mixture"], **intervals,
            "subspace_reading": {"per_seed": [subspace_reading(numbers) for numbers in per_run],
                                 "reading": subspace_reading({key: value["mean"] for key, value in intervals.items()})}}


def check_seed_group(runs: list[Run]) -> None:
    """Refuse runs that are not one setting over several seeds: ValueError where there are none, where two
    runs' configs differ in anything but the seed (naming the keys), or where a seed repeats.

    >>> from icgt.study.run_folder import load_run
    >>> check_seed_group([load_run(grid_run), load_run(grid_run_seed1)])
    >>> check_seed_group([load_run(grid_run), load_run(grid_run)])
    Traceback (most recent call last):
    ...
    ValueError: the seeds [0, 0] repeat; each run must have its own seed
    """
    if not runs:
        raise ValueError("no runs given; expected the runs of one setting with different seeds")
    base = {k: v for k, v in runs[0].info["config"].items() if k != "seed"}
    for run in runs[1:]:
        other = {k: v for k, v in run.info["config"].items() if k != "seed"}
        differing = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
        if differing:
            raise ValueError(f"{run.name} differs from {runs[0].name} in {differing}, not only in the seed")
    seeds = [run.info["config"]["seed"] for run in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds {seeds} repeat; each run must have its own seed")


def aggregate_runs(folders: list[str | os.PathLike], output: str | os.PathLike | None = None) -> Path:
    """Write aggregate.json and aggregate.npz for runs that differ only in their seed; returns the folder.

    The folder is ``output``, else ``<first run's name without its seed>-seeds`` beside the runs.
    Runs whose configs differ in anything but the seed are refused (ValueError naming the keys: check_seed_group).
    """
    runs = [load_run(folder) for folder in folders]
    check_seed_group(runs)
    base = {k: v for k, v in runs[0].info["config"].items() if k != "seed"}
    seeds = [run.info["config"]["seed"] for run in runs]
    name = runs[0].name.split("-seed")[0] + "-seeds"
    folder = Path(output) if output is not None else runs[0].folder.parent / name
    folder.mkdir(parents=True, exist_ok=True)
    per_run = [run_numbers(run) for run in runs]
    record = {
        "name": name, "runs": [run.name for run in runs], "seeds": seeds, "config": base,
        "model": runs[0].info["model"], "graph": runs[0].info["graph"],
        "numbers": {key: interval([numbers[key] for numbers in per_run]) for key in per_run[0]},
        "lag": lag_interval(runs),
        "lag_layer": int(runs[0].arrays["lag_layer"]),
    }
    if runs[0].has_held_out_edges:
        record["heldout"] = heldout_interval(runs)
    if runs[0].has_second_graph:
        record["two_graphs"] = two_graph_interval(runs)
    curves = {"seeds": np.array(seeds), "layers": runs[0].layers}
    for key in ("accuracy", "accuracy_renormalized"):
        curves[key] = np.stack([_mean_over_sequences(run, key) for run in runs])
    for key in ("energy", "energy_scale_invariant", "spectral_alignment", "timing_energy", "energy_null_mean"):
        curves[key] = np.stack([run.arrays[key] for run in runs])
    for key in ("energy_positions", "alignment_positions", "timing_positions"):
        curves[key] = runs[0].arrays[key]
    write_npz(folder / "aggregate.npz", curves)
    write_atomically(folder / "aggregate.json", lambda path: path.write_text(json.dumps(record, indent=2) + "\n"))
    return folder


def _mean_over_sequences(run: Run, key: str) -> np.ndarray:
    values = np.where(run.arrays["scored"], run.arrays[key], np.nan)
    counts = np.isfinite(values).sum(0)
    return np.where(counts > 0, np.nansum(values, 0) / np.maximum(counts, 1), np.nan)


def _last_finite_mean(values: np.ndarray) -> float:
    """The mean over the first axis at the last snapshot where every entry is finite."""
    finite = np.flatnonzero(np.isfinite(values).all(axis=0))
    return float(values[:, finite[-1]].mean()) if finite.size else math.nan
