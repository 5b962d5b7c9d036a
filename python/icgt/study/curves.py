"""The maths of curves over context length, used by the analysis, the run accessor and the verdict: binning
in log context (``log_bins``, ``log_binned``), NaN-aware means, onsets and spans above a
threshold, minima, the steepest rise, and change points.

When does a curve change? Sigmoid fits in log context length, and the lag between two curves.

The paper's claim is about order: the class means' energy falls *before* accuracy rises. A curve's
change point here is the midpoint of the sigmoid a + b / (1 + exp(-(log t - c) / s)) that fits it
best in log context length t (least squares; (a, b) in closed form for each (c, s) of a grid, so
the fit is deterministic and needs nothing beyond numpy), with the change in the direction asked for
(a fall for the energy, a rise for accuracy: b's sign). A fit that explains too little of the curve's
variance, a change smaller than the amplitude asked for, or a change at the very edge of the range has
no change point (NaN). The lag between two curves is log2(t_second / t_first): positive when the first
changes first, in doublings of context.

Example:
    >>> t = np.geomspace(1, 1400, 80)
    >>> rise = 0.1 + 0.8 / (1 + (120 / t) ** 3)
    >>> fall = 1.0 - 0.6 / (1 + (30 / t) ** 3)
    >>> round(change_point(t, rise, +1)), round(change_point(t, fall, -1)), round(lag(t, fall, rise, (-1, +1)), 1)
    (120, 30, 2.0)
"""

from __future__ import annotations

import math

import numpy as np

#: Bins of context for accuracy curves and the fastest rise: half a doubling wide, so that the few
#: early positions weigh as much as the many late ones and a bin still averages enough positions.
ACCURACY_BINS_PER_DOUBLING = 2

#: A fit must explain at least this share of the curve's variance to have a change point: below it
#: the curve is flat or noise, and any midpoint would be an artefact of the fit.
MIN_EXPLAINED = 0.5
#: A change point needs a change (the fitted sigmoid's amplitude) of at least this many standard
#: deviations of its curve over resamples of the sequences (the median over positions): a smaller one
#: could be resampling noise (a drift of 0.04 fitted with R^2 0.98 had been timed as a change).
MIN_AMPLITUDE_SPREADS = 4.0
#: Grid of sigmoid widths, in units of log context length (e: one step scales t by 2.7).
WIDTHS = np.geomspace(0.05, 2.0, 24)


def sigmoid_fit(positions: np.ndarray, values: np.ndarray, direction: int = 0
                ) -> tuple[float, float, float, float, float]:
    """(a, b, c, s, explained) of the best sigmoid a + b * sigmoid((log t - c) / s) through the finite
    values; c ranges over the log positions, explained is the share of variance the fit accounts for.
    ``direction`` +1 keeps rises only (b > 0), -1 falls only (b < 0), 0 either: a curve that only moves
    the other way has no fit better than its mean (explained 0).

    >>> t = np.geomspace(1, 1000, 50)
    >>> a, b, c, s, explained = sigmoid_fit(t, 2 - 1 / (1 + np.exp(-(np.log(t) - 3))))
    >>> round(a, 1), round(b, 1), round(c, 1), explained > 0.99
    (2.0, -1.0, 3.0, True)
    """
    positions, values = np.asarray(positions, dtype=float), np.asarray(values, dtype=float)
    usable = np.isfinite(values) & (positions > 0)
    u, y = np.log(positions[usable]), values[usable]
    if y.size < 5:
        return (np.nan,) * 5
    total = ((y - y.mean()) ** 2).sum()
    # A coarse grid over (centre, width), then a finer one around its best point.
    centres, widths = np.linspace(u.min(), u.max(), 120), WIDTHS
    for _ in range(2):
        a, b, residual = _least_squares(u, y, centres, widths)
        if direction:
            residual = np.where(np.sign(b) == np.sign(direction), residual, np.inf)
        if not np.isfinite(residual).any():
            return float(y.mean()), 0.0, float(np.median(u)), float(widths[0]), 0.0
        best = int(np.argmin(residual))
        centre, width = centres[best // widths.size], widths[best % widths.size]
        step = centres[1] - centres[0]
        centres, widths = np.linspace(centre - step, centre + step, 41), width * np.geomspace(0.8, 1.25, 15)
    explained = 1.0 - residual[best] / total if total > 0 else 0.0
    return float(a[best]), float(b[best]), float(centre), float(width), float(explained)


def _least_squares(u: np.ndarray, y: np.ndarray, centres: np.ndarray,
                   widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every (centre, width), flattened centre-major: a, b and the residual sum of squares."""
    basis = 1.0 / (1.0 + np.exp(-(u[None, None, :] - centres[:, None, None]) / widths[None, :, None]))
    basis = basis.reshape(-1, u.size)
    mean_basis, mean_y = basis.mean(-1), y.mean()
    centred = basis - mean_basis[:, None]
    variance = (centred**2).sum(-1)
    b = np.where(variance > 0, (centred @ (y - mean_y)) / np.where(variance > 0, variance, 1), 0.0)
    a = mean_y - b * mean_basis
    return a, b, ((y[None, :] - a[:, None] - b[:, None] * basis) ** 2).sum(-1)


def change_point(positions: np.ndarray, values: np.ndarray, direction: int = 0, min_amplitude: float = 0.0) -> float:
    """The context length at the midpoint of the best sigmoid fit in ``direction`` (sigmoid_fit), or NaN
    when there is none: a fit that explains less than MIN_EXPLAINED of the variance, a change (|b|) below
    ``min_amplitude``, or a midpoint at the first or last position.

    >>> t = np.geomspace(1, 1000, 50)
    >>> fall = 1.0 - 0.6 / (1 + (30 / t) ** 3)
    >>> round(change_point(t, fall, direction=-1)), change_point(t, fall, direction=+1)
    (30, nan)
    >>> change_point(t, fall, direction=-1, min_amplitude=1.0)   # a fall of 0.6 is not one of 1.0
    nan
    >>> change_point(t, np.full(50, 0.3))
    nan
    """
    a, b, centre, width, explained = sigmoid_fit(positions, values, direction)
    usable = np.log(np.asarray(positions, dtype=float)[np.isfinite(values)])
    if (not np.isfinite(explained) or explained < MIN_EXPLAINED or abs(b) < min_amplitude
            or not usable.min() < centre < usable.max()):
        return float("nan")
    return float(np.exp(centre))


def first_change_point(positions: np.ndarray, values: np.ndarray, direction: int, min_amplitude: float = 0.0) -> float:
    """change_point of the curve up to its extreme in ``direction`` (its highest value for a rise, lowest
    for a fall): a curve that changes and turns back, as Gemma 3's energy falls and rises again, is
    timed by its first change, which one sigmoid over the whole curve cannot follow.

    >>> t = np.geomspace(1, 1400, 80)
    >>> fall_and_rise = 1.0 - 0.5 / (1 + (10 / t) ** 3) + 0.4 / (1 + (300 / t) ** 3)
    >>> round(change_point(t, fall_and_rise, -1)), round(first_change_point(t, fall_and_rise, -1))   # planted: 10
    (8, 10)
    """
    values = np.asarray(values, dtype=float)
    finite = np.flatnonzero(np.isfinite(values))
    if finite.size == 0:
        return float("nan")
    extreme = finite[np.argmax(values[finite] * direction)]
    return change_point(np.asarray(positions)[:extreme + 1], values[:extreme + 1], direction, min_amplitude)


def lag(positions: np.ndarray, first: np.ndarray, second: np.ndarray, directions: tuple[int, int] = (0, 0)) -> float:
    """log2(change point of second / change point of first): doublings of context from the first
    curve's change to the second's (positive: the first changes first); NaN if either has none.
    ``directions``: of the first curve's change and the second's (change_point)."""
    return float(np.log2(change_point(positions, second, directions[1])
                         / change_point(positions, first, directions[0])))


#: The order of two changes is decided only where the lag's 95% interval excludes zero and at least
#: this share of the resamples has both change points; elsewhere it is "undecided".
DECIDED_SHARE = 0.5


def order_of(lag_ci95: list[float | None], defined_share: float) -> str:
    """"energy first", "accuracy first" or "undecided" from a lag's 95% interval (doublings, positive: the
    energy first) and the share of draws where it is defined.

    >>> order_of([0.4, 1.9], 0.9), order_of([-0.3, 1.2], 0.9), order_of([0.4, 1.9], 0.3)
    ('energy first', 'undecided', 'undecided')
    """
    low, high = lag_ci95
    if low is None or defined_share < DECIDED_SHARE:
        return "undecided"
    return "energy first" if low > 0 else "accuracy first" if high < 0 else "undecided"


def log_bins(positions: np.ndarray, bins_per_doubling: int) -> tuple[np.ndarray, int]:
    """(bin of each position, number of bins): bins of equal width in log2(position), from the first position.

    Positions must be positive.

    >>> bins, count = log_bins(np.array([1, 2, 3, 4, 8]), 1)
    >>> bins.tolist(), count
    ([0, 1, 1, 2, 2], 3)
    """
    log_positions = np.log2(positions)
    if log_positions.size == 0:
        return np.zeros(0, dtype=np.int64), 1
    num_bins = max(1, math.ceil((log_positions.max() - log_positions.min()) * bins_per_doubling))
    bin_of = np.minimum(((log_positions - log_positions.min()) * bins_per_doubling).astype(int), num_bins - 1)
    return bin_of, num_bins


def log_binned(positions: np.ndarray, values: np.ndarray, bins_per_doubling: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A curve averaged in log bins of context (log_bins; finite values at positive positions only):
    for each bin that holds any, (its first position, the mean log2 of its positions, the mean value).

    >>> firsts, centres, means = log_binned(np.array([1, 2, 3, 4, 8]), np.array([0.0, 1, 3, np.nan, 5]), 1)
    >>> firsts.tolist(), means.tolist()
    ([1, 2, 8], [0.0, 2.0, 5.0])
    """
    positions, values = np.asarray(positions), np.asarray(values, dtype=float)
    usable = np.isfinite(values) & (positions > 0)
    if not usable.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    kept_positions, kept = positions[usable], values[usable]
    bin_of, num_bins = log_bins(kept_positions, bins_per_doubling)
    counts = np.bincount(bin_of, minlength=num_bins)
    occupied = counts > 0
    firsts = np.array([kept_positions[bin_of == index][0] for index in np.flatnonzero(occupied)])
    centres = np.bincount(bin_of, np.log2(kept_positions), num_bins)[occupied] / counts[occupied]
    means = np.bincount(bin_of, kept, num_bins)[occupied] / counts[occupied]
    return firsts, centres, means


def steepest_rise(positions: np.ndarray, values: np.ndarray, bins_per_doubling: int = ACCURACY_BINS_PER_DOUBLING
                  ) -> tuple[int, float] | None:
    """(position, slope per doubling of context) where a curve rises fastest against log context length.

    The curve is averaged in bins of equal width in log2(position), so that the many late positions
    do not drown the few early ones, and differentiated by central differences over neighbouring bins.
    None when fewer than three bins hold a finite value.

    >>> t = np.arange(1, 1001)
    >>> position, slope = steepest_rise(t, 1 / (1 + (100 / t) ** 2))
    >>> 80 < position < 125, round(slope, 2)
    (True, 0.33)
    """
    _, centres, means = log_binned(positions, values, bins_per_doubling)
    if centres.size < 3:
        return None
    slopes = (means[2:] - means[:-2]) / (centres[2:] - centres[:-2])
    best = int(np.argmax(slopes)) + 1
    return int(round(2 ** centres[best])), float(slopes[best - 1])


def energy_minimum(positions: np.ndarray, energy: np.ndarray) -> tuple[int, float] | None:
    """(position, value) of a curve's minimum, or None when it has none to mark.

    The first finite snapshot is an edge, not a minimum: a curve that is lowest there has not come
    down to anything (it only rises, or its first value is all there is). So the minimum is the lowest
    finite snapshot after the first, and counts only when it is below that first value.

    >>> energy_minimum(np.array([10, 20, 30, 40]), np.array([np.nan, 0.3, 0.2, 0.25]))
    (30, 0.2)
    >>> energy_minimum(np.array([10, 20, 30]), np.array([0.1, 0.2, 0.3])) is None   # lowest at the start
    True
    """
    finite = np.flatnonzero(np.isfinite(energy))
    if finite.size < 2:
        return None
    rest = finite[1:]
    best = rest[np.argmin(energy[rest])]
    if not energy[best] < energy[finite[0]]:
        return None
    return int(positions[best]), float(energy[best])


def onset(positions: np.ndarray, values: np.ndarray, threshold: float) -> int | None:
    """The first position from which ``values`` stay at or above ``threshold`` to the end; None if the last
    value is below it.

    >>> onset(np.array([10, 20, 30, 40]), np.array([0.6, 0.2, 0.7, 0.8]), 0.5)
    30
    """
    finite = np.isfinite(values)
    positions, values = positions[finite], values[finite]
    if values.size == 0 or values[-1] < threshold:
        return None
    below = np.flatnonzero(values < threshold)
    return int(positions[below[-1] + 1] if below.size else positions[0])


def spans(positions: np.ndarray, values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(first, last) positions of each run of consecutive values at or above ``threshold``.

    >>> spans(np.array([10, 20, 30, 40]), np.array([0.6, 0.2, 0.7, 0.8]), 0.5)
    [(10, 10), (30, 40)]
    """
    spans: list[tuple[int, int]] = []
    for position, value, previous in zip(positions, values, np.r_[-np.inf, values[:-1]]):
        if value >= threshold:
            if previous >= threshold and spans:
                spans[-1] = (spans[-1][0], int(position))
            else:
                spans.append((int(position), int(position)))
    return spans


def nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the first axis of the finite values, NaN (without a warning) where there are none.

    >>> nanmean(np.array([[1.0, np.nan], [3.0, np.nan]])).tolist()
    [2.0, nan]
    """
    counts = np.isfinite(values).sum(axis=0)
    return np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)


def nanstd(values: np.ndarray) -> np.ndarray:
    """Population standard deviation over the first axis, NaN (without a warning) where every value is NaN."""
    return np.sqrt(nanmean((values - nanmean(values)) ** 2))
