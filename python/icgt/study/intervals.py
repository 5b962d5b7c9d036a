"""Intervals, one home for them: Student's t quantiles (exact, from scipy), the t interval of a mean, the
same clustered (each cluster averaged first), and the spread of a control distribution (percentiles of
its draws, not an interval of their mean).

numpy only at import; scipy.stats is imported on first use, so that the report stays light.

Example:
    >>> from icgt.study.intervals import mean_interval, t_quantile
    >>> round(t_quantile(1), 3), round(t_quantile(30), 3)   # 95%, two-sided; the normal 1.96 only in the limit
    (12.706, 2.042)
    >>> mean_interval([0.2, 0.7])   # two draws: one degree of freedom
    (0.45, 3.176551)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: The confidence level of every interval icgt reports.
LEVEL = 0.95


def t_quantile(degrees: Any, level: float = LEVEL) -> Any:
    """The factor that turns a standard error into the half-width of a two-sided ``level`` interval:
    the (1 + level) / 2 quantile of Student's t with ``degrees`` degrees of freedom (a number or an
    array; NaN where degrees < 1).

    >>> round(float(t_quantile(4)), 4), t_quantile(np.array([1, 2])).round(3).tolist()
    (2.7764, [12.706, 4.303])
    >>> bool(np.isnan(t_quantile(0)))
    True
    """
    from scipy.stats import t

    degrees = np.asarray(degrees, dtype=float)
    quantile = np.where(degrees >= 1, t.ppf(0.5 + level / 2, np.maximum(degrees, 1)), np.nan)
    return float(quantile) if quantile.ndim == 0 else quantile


def t_band(values: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis and the half-width of its t interval, per column, over the finite
    values of each column; the half-width is NaN where fewer than two are finite.

    >>> mean, half = t_band(np.array([[0.68, 1.0], [0.67, np.nan], [0.69, 1.0]]))
    >>> mean.round(3).tolist(), round(float(half[0]), 4), float(half[1])
    ([0.68, 1.0], 0.0248, 0.0)
    """
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    filled = np.where(finite, values, 0.0)
    mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), np.nan)
    squares = np.where(finite, (values - mean) ** 2, 0.0).sum(axis=0)
    sd = np.sqrt(squares / np.maximum(count - 1, 1))
    half = np.where(count >= 2, t_quantile(np.maximum(count - 1, 1), level) * sd / np.sqrt(np.maximum(count, 1)),
                    np.nan)
    return mean, half


def mean_interval(values: Any, level: float = LEVEL, digits: int = 6) -> tuple[float, float]:
    """Mean and the half-width of its t interval over the finite values, both rounded to ``digits``;
    the half-width is NaN with fewer than two finite values, the mean too with none.

    >>> mean_interval(np.array([1.0, 2.0, 3.0]))
    (2.0, 2.484138)
    >>> mean_interval([0.5, float("nan")])
    (0.5, nan)
    """
    mean, half = (float(x[0]) for x in t_band(np.asarray(values, dtype=float).reshape(-1, 1), level))
    return _rounded(mean, digits), _rounded(half, digits)


def clustered_interval(values: Any, level: float = LEVEL, digits: int = 6) -> tuple[float, float, int]:
    """Mean and t interval of values [clusters, per cluster] whose cases are not independent within a
    cluster (say the targets of one sequence): each cluster's finite values are averaged first, then
    the interval is taken over the clusters. Returns (mean, half-width, clusters with a value).

    >>> clustered_interval([[0.1, 0.3], [0.5, 0.7], [0.2, np.nan]])   # cluster means 0.2, 0.6, 0.2
    (0.333333, 0.573687, 3)
    """
    values = np.asarray(values, dtype=float)
    values = values.reshape(values.shape[0], -1)
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    means = np.where(count > 0, np.where(finite, values, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
    mean, half = mean_interval(means, level, digits)
    return mean, half, int((count > 0).sum())


def spread(values: Any, level: float = LEVEL, digits: int = 6) -> dict[str, Any]:
    """The distribution of a control's draws (random heads, random planes): their mean and the central
    ``level`` range of the draws themselves (the 2.5 and 97.5 percentiles at 95%, numpy's linear
    interpolation), over the finite draws. This, not an interval of the mean, is what a single
    observed value is compared against.

    >>> spread(np.arange(1.0, 22.0))   # 21 draws 1 .. 21
    {'mean': 11.0, 'low': 1.5, 'high': 20.5, 'draws': 21}
    """
    finite = np.asarray(values, dtype=float).ravel()
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "draws": 0}
    low, high = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return {"mean": _rounded(finite.mean(), digits), "low": _rounded(low, digits), "high": _rounded(high, digits),
            "draws": int(finite.size)}


def _rounded(value: float, digits: int) -> float:
    return round(float(value), digits) if math.isfinite(value) else math.nan
