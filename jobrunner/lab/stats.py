"""Repeated measurements summarised honestly: the mean, the spread, and how many runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def with_range(mean: float, low: float, high: float, digits: int = 0) -> str:
    """``"mean (low-high)"``, or only the mean when the runs agree to ``digits`` places
    (``"-"`` when there is no value: a limit with no bound)."""
    if math.isnan(mean):
        return "-"
    text, lowest, highest = (f"{v:,.{digits}f}" for v in (mean, low, high))
    return text if lowest == highest else f"{text} ({lowest}-{highest})"


def table(frame: Any, by: str, digits: Mapping[str, int]) -> Any:
    """One row per value of ``by`` (in order of appearance), one column per key of ``digits``:
    the mean over the runs, with the lowest and highest run in brackets when they differ."""
    import pandas as pd

    index = pd.Index(list(frame[by].unique()), name=by)
    out = pd.DataFrame(index=index)
    for value, places in digits.items():
        summary = spread(frame, [by], value).set_index(by).reindex(index)
        out[value] = [with_range(r["mean"], r["min"], r["max"], places)
                      for _, r in summary.iterrows()]  # fmt: skip
    return out
