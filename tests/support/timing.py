"""Checks on recorded timestamps."""

from __future__ import annotations


def max_in_window(times: list[float], window: float) -> int:
    """The most timestamps that fall in any half-open window (t - window, t]."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best
