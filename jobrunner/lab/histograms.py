"""Prometheus histograms as a dashboard sees them: scraped from ``/metrics`` (or read from a
Prometheus server that scraped them), summed over workers and labels, read per bucket, and a
quantile estimated the way PromQL's ``histogram_quantile`` does (linear within the bucket that
holds the rank).

The point for a learner: a histogram keeps counts per bucket, not samples, so its quantiles
are only as fine as its buckets; the estimate can sit anywhere inside the bucket that holds the
rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def cumulative(texts: Iterable[str], metric: str) -> dict[float, float]:
    """``le`` -> cumulative count of ``metric`` (e.g. ``job_duration_seconds``), summed over
    every scrape and label set."""
    out: dict[float, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == f"{metric}_bucket":
                    le = float(sample.labels["le"])
                    out[le] = out.get(le, 0.0) + sample.value
    return dict(sorted(out.items()))


def from_prometheus(prometheus: Any, metric: str) -> dict[float, float]:
    """``cumulative`` as a Prometheus server stores it now: ``sum by (le) (metric_bucket)`` over
    every target it scraped (``prometheus``: a jobrunner.dev.prometheus.PrometheusServer)."""
    rows = prometheus.query(f"sum by (le) ({metric}_bucket)")
    return dict(sorted((float(labels["le"]), value) for labels, value in rows))


def per_bucket(counts: dict[float, float]) -> Any:
    """The cumulative counts as one row per bucket: its bounds and the observations in it."""
    import pandas as pd

    rows, lower, below = [], 0.0, 0.0
    for le, total in counts.items():
        rows.append({"from_s": lower, "to_s": le, "count": total - below})
        lower, below = le, total
    return pd.DataFrame(rows)


def quantile(q: float, counts: dict[float, float]) -> float:
    """PromQL's ``histogram_quantile(q, ...)`` over cumulative bucket counts: find the bucket
    holding rank q * total, interpolate linearly inside it (the first bucket from 0; a rank in
    the +Inf bucket answers the highest finite bound)."""
    bounds = list(counts)
    total = counts[math.inf] if math.inf in counts else (counts[bounds[-1]] if bounds else 0.0)
    if total == 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        if counts[le] >= rank:
            if math.isinf(le):
                return lower
            inside = counts[le] - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, counts[le]
    return lower
