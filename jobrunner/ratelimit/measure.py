"""Measuring a limit from what happened: most events in any window, most holders at once.

Used by the tests (a limit is checked from recorded timestamps, not trusted) and by the limiter
accuracy experiment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most events inside any half-open window ``[t, t + window)``, over every start ``t``."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals ``[start, end)`` open at the same instant."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        events += [(start, 1), (end, -1)]
    events.sort()  # at a tie an end (-1) sorts before a start: touching intervals do not overlap
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def rate_series(times: Sequence[float], bucket: float, start: float | None = None) -> list[int]:
    """Events per ``bucket`` seconds, from ``start`` (default: the first event) to the last."""
    if not times:
        return []
    origin = min(times) if start is None else start
    counts = [0] * (int((max(times) - origin) // bucket) + 1)
    for t in times:
        if t >= origin:
            counts[int((t - origin) // bucket)] += 1
    return counts
