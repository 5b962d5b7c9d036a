"""icgt.study.intervals against scipy and numpy: the t factor at every degree of freedom, the t interval
of a mean, the interval clustered by sequence, and the spread of a control's draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from icgt.study import aggregate, intervals


@pytest.mark.parametrize("degrees", [1, 2, 5, 29, 30, 31, 47, 200])
def test_the_t_factor_is_scipys_quantile_at_every_degree_of_freedom(degrees):
    assert intervals.t_quantile(degrees) == pytest.approx(stats.t.ppf(0.975, degrees), rel=1e-12)
    assert intervals.t_quantile(degrees, level=0.9) == pytest.approx(stats.t.ppf(0.95, degrees), rel=1e-12)
    assert intervals.t_quantile(degrees) > stats.norm.ppf(0.975)  # never the normal's 1.96


@pytest.mark.parametrize("size", [2, 3, 20, 48])
def test_the_interval_of_a_mean_is_scipys_t_interval(size):
    values = np.random.default_rng(size).normal(0.4, 0.2, size)
    mean, half = intervals.mean_interval(values)
    low, high = stats.t.interval(0.95, size - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean(), abs=1e-6) and half == pytest.approx((high - low) / 2, abs=1e-6)


def test_two_draws_give_the_wide_interval_that_one_degree_of_freedom_means():
    _, half = intervals.mean_interval([0.132, 0.76])  # two draws of random heads: 0.446 on average
    assert half == pytest.approx(12.7062 * np.std([0.132, 0.76], ddof=1) / math.sqrt(2), rel=1e-5)
    assert half > 2  # 1.96 standard errors said 0.615


def test_aggregates_band_and_interval_use_the_same_exact_quantile():
    values = np.random.default_rng(1).normal(size=(40, 3))  # 39 degrees of freedom: above the old table
    mean, half = aggregate.t_band(values)
    np.testing.assert_allclose(half, stats.t.ppf(0.975, 39) * stats.sem(values, axis=0), rtol=1e-12)
    record = aggregate.interval(list(values[:, 0]))
    assert record["ci95"] == pytest.approx([mean[0] - half[0], mean[0] + half[0]], abs=1e-6)


def test_the_clustered_interval_averages_each_cluster_first():
    rng = np.random.default_rng(2)
    # 48 sequences x 3 targets; the targets of one sequence share its level.
    values = rng.normal(0, 1, (48, 1)) + rng.normal(0, 0.1, (48, 3))
    values[5, 1] = np.nan
    mean, half, clusters = intervals.clustered_interval(values)
    per_sequence = np.array([row[np.isfinite(row)].mean() for row in values])
    assert clusters == 48 and mean == pytest.approx(per_sequence.mean(), abs=1e-6)
    assert half == pytest.approx(stats.t.ppf(0.975, 47) * stats.sem(per_sequence), abs=1e-6)
    # Treating the 143 cases as independent would claim a far narrower interval.
    assert intervals.mean_interval(values)[1] < 0.7 * half
    assert intervals.clustered_interval(np.full((3, 2), np.nan))[2] == 0


def test_the_spread_of_draws_is_their_percentiles_not_an_interval_of_their_mean():
    draws = np.random.default_rng(3).normal(0.5, 0.1, 20)
    spread = intervals.spread(np.append(draws, np.nan))
    low, high = np.percentile(draws, [2.5, 97.5])
    assert spread == pytest.approx({"mean": draws.mean(), "low": low, "high": high, "draws": 20}, abs=1e-6)
    assert spread["high"] - spread["low"] > 2 * intervals.mean_interval(draws)[1]
    assert intervals.spread([np.nan])["draws"] == 0
