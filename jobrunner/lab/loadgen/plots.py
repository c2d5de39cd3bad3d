"""Latency plots the lab and the benchmarks share (matplotlib, from the ``lab`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

# Percentiles on a log scale of 1/(1-p): the tail gets as much room as the median.
PERCENTILE_TICKS = (0.0, 90.0, 99.0, 99.9, 99.99)
_CURVE = [100 * (1 - 10 ** (-k / 20)) for k in range(0, 101)]  # 0 .. 99.999


def percentile_curve(hist: HdrHistogram) -> tuple[list[float], list[float]]:
    """(x = 1/(1-p), latency in ms) points of an HDR histogram's percentile distribution."""
    xs, ys = [], []
    for p in _CURVE:
        xs.append(1 / (1 - p / 100))
        ys.append(hist.get_value_at_percentile(p) / 1000)
    return xs, ys


def plot_percentiles(
    curves: Mapping[str, HdrHistogram], path: Path | None = None, title: str = "", ax: Any = None
) -> Any:
    """The classic HDR plot: latency against percentile, one line per histogram."""
    import matplotlib

    if path is not None and ax is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, hist in curves.items():
        if hist.get_total_count():
            ax.plot(*percentile_curve(hist), label=f"{label} (n={hist.get_total_count():,})")
    ax.set_xscale("log")
    ax.set_xticks([1 / (1 - p / 100) for p in PERCENTILE_TICKS])
    ax.set_xticklabels([f"p{p:g}" for p in PERCENTILE_TICKS])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title or "latency by percentile")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if fig is not None and path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return ax
