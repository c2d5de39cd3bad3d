"""Repeated measurements summarised honestly: the mean, the spread, and how many runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def spread(frame: Any, by: Sequence[str], value: str) -> Any:
    """Per group of ``by``: n, mean, std, min, max of ``value`` and the relative spread
    ``(max - min) / mean`` (how much one run can differ from another on this machine)."""
    grouped = frame.groupby(list(by), sort=False)[value]
    out = grouped.agg(["count", "mean", "std", "min", "max"]).reset_index()
    out = out.rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    mean = out["mean"].where(out["mean"] != 0)
    out["spread"] = ((out["max"] - out["min"]) / mean).fillna(0.0)
    return out


def ratio_with_spread(before: Sequence[float], after: Sequence[float]) -> dict[str, float]:
    """``after / before`` by their means, with the lowest and highest ratio any pair of runs
    gives: if that range includes 1.0 the change is within the machine's noise."""
    if not before or not after:
        raise ValueError("need at least one run on each side")
    mean_b = sum(before) / len(before)
    mean_a = sum(after) / len(after)
    if min(before) <= 0 or mean_b <= 0:
        raise ValueError("before must be positive")
    return {
        "ratio": mean_a / mean_b,
        "low": min(after) / max(before),
        "high": max(after) / min(before),
        "runs": float(min(len(before), len(after))),
    }
