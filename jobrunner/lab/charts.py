"""Plot helpers the notebooks share: a mean line with its run-to-run range, one per group."""

from __future__ import annotations

from typing import Any

from jobrunner.lab.stats import spread

MODEL_COLOURS = {"asyncio": "tab:blue", "thread": "tab:orange", "process": "tab:green"}


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
            yerr=[group["mean"] - group["min"], group["max"] - group["mean"]],
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
