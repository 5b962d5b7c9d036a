"""Shared timing for the benchmarks: best of several runs, since this machine is shared and noisy."""

import time


def best_time(function, repeats=5):
    """Smallest wall time of `repeats` calls of function(), in seconds, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result
