"""Plot helpers the notebooks share: means over repeats, drawn with their run-to-run range."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobrunner.lab.stats import spread

MODEL_COLOURS = {"asyncio": "tab:blue", "thread": "tab:orange", "process": "tab:green"}


def whiskers(summary: Any) -> list[Any]:
    """Error bar lengths below and above the mean, from ``stats.spread``'s min and max (never
    negative: the mean of equal runs can differ from them in the last bit)."""
    return [(summary["mean"] - summary["min"]).clip(lower=0),
            (summary["max"] - summary["mean"]).clip(lower=0)]  # fmt: skip


def mean_with_range(
    ax: Any, frame: Any, x: str, y: str, line_by: str, colours: dict[str, str] | None = None
) -> None:
    """One line per value of ``line_by``: the mean of ``y`` over repeats at each ``x``, with
    a bar from the lowest to the highest run (the machine's noise, shown rather than hidden)."""
    summary = spread(frame, [line_by, x], y)
    for name, group in summary.groupby(line_by, sort=False):
        group = group.sort_values(x)
        ax.errorbar(
            group[x], group["mean"],
            yerr=whiskers(group),
            marker="o", markersize=4, capsize=3, label=str(name),
            color=(colours or {}).get(str(name)),
        )  # fmt: skip


def grid(n: int, columns: int = 4, size: tuple[float, float] = (3.6, 3.2)) -> tuple[Any, Any]:
    """A figure with ``n`` axes in rows of ``columns``; unused axes hidden."""
    import matplotlib.pyplot as plt

    rows = -(-n // columns)
    cols = min(n, columns)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    flat: Any = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def bars_with_range(
    ax: Any, frame: Any, x: str, y: str, group_by: str, order: Sequence[Any] | None = None,
    colours: Mapping[str, str] | None = None,
) -> None:  # fmt: skip
    """Grouped bars: at each value of ``x`` (in ``order``), one bar per value of ``group_by``,
    the mean of ``y`` over repeats, with whiskers from the lowest to the highest run."""
    order = list(order if order is not None else frame[x].unique())
    groups = list(frame[group_by].unique())
    width = 0.8 / len(groups)
    for i, group in enumerate(groups):
        rows = frame[frame[group_by] == group]
        summary = spread(rows, [x], y).set_index(x).reindex(order)
        xs = [k - 0.4 + width * (i + 0.5) for k in range(len(order))]
        ax.bar(xs, summary["mean"], width, label=str(group),
               color=(colours or {}).get(str(group)),
               yerr=whiskers(summary),
               capsize=3)  # fmt: skip
    ax.set_xticks(range(len(order)), [str(v) for v in order])
