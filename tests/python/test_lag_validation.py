"""The energy-accuracy lag recovers planted lags through the whole pipeline.

Toy models (tests/python/lag_model.py) whose representations turn graph-shaped at one context length
and whose predictions start following the graph at another run like any model: walks, the probe on
the bundle, `icgt run`'s analysis, the verdict. The lag they report must be the planted one, within
half a doubling, in both directions, and the order must be left undecided where there is nothing to
time. (An energy of cumulative class means timed against accuracy per position gave -1.2 doublings
for a planted 0, with an interval that excluded 0: the estimator, not the model, decided the order.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import icgt
from icgt.report.verdict import judge, lag_summary
from icgt.study.aggregate import lag_interval
from icgt.study.run_folder import load_run
from lag_model import WORDS, write_lag_bundle

#: Planted (representations turn graph-shaped at, predictions follow the graph from): lags +2, 0, -2
#: doublings; and representations that never change within the context.
PLANTED = {"energy first": (16, 64), "together": (32, 32), "accuracy first": (64, 16), "no change": (10**6, 32)}
CONFIG = {"preset": "grid", "words": WORDS, "sequence_length": 600, "null_permutations": 20, "bootstrap": 100}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lag-runs")
    found = {}
    for name, (representation_at, prediction_at) in PLANTED.items():
        bundle = write_lag_bundle(folder / f"{name.replace(' ', '-')}.pt", representation_at, prediction_at)
        found[name] = load_run(icgt.run_experiment({**CONFIG, "model": str(bundle)}, output=folder / name,
                                                   progress=False, report=False))
    return found


@pytest.mark.parametrize("name", ["energy first", "together", "accuracy first"])
def test_the_planted_lag_is_recovered_within_half_a_doubling(runs, name):
    representation_at, prediction_at = PLANTED[name]
    planted = math.log2(prediction_at / representation_at)
    timing = lag_summary(runs[name])
    assert timing["lag_doublings"] == pytest.approx(planted, abs=0.5)
    low, high = timing["lag_ci95"]
    assert timing["lag_defined_share"] > 0.9 and planted - 0.5 < low <= high < planted + 0.5
    # Both curves are smoothed alike, so each change point is delayed alike (by the window's reach back
    # to t/2), never by more than half a doubling.
    for at, planted_at in ((timing["energy_change_point"], representation_at),
                           (timing["accuracy_change_point"], prediction_at)):
        assert 0 <= math.log2(at / planted_at) < 0.5
    expected = name if name != "together" else None
    if expected:
        assert timing["order"] == expected
        assert judge(runs[name]).sentences[2].count(
            {"energy first": "as the paper finds", "accuracy first": "against the paper's order"}[name]) == 1


def test_representations_that_never_change_leave_the_order_undecided(runs):
    run = runs["no change"]
    timing = lag_summary(run)
    assert timing["energy_change_point"] is None and timing["order"] == "undecided"
    assert timing["accuracy_change_point"] == pytest.approx(32 * 2 ** 0.25, rel=0.3)
    assert np.isnan(run.arrays["energy_change_points"][1:]).mean() > 0.5


def test_the_lag_over_seeds_decides_the_same_orders(runs):
    for name in ("energy first", "accuracy first"):
        lag = lag_interval([runs[name]])["full_vocabulary"]
        assert lag["order"] == name and lag["defined"] > 0.9
    assert lag_interval([runs["no change"]])["full_vocabulary"]["order"] == "undecided"
