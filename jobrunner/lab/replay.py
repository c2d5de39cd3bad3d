"""A live drain replayed as an animated GIF: the notebook's moving view, where no kernel runs
(the README, a slide, an interview).

Each frame is ``live.plot`` of the samples up to one instant, drawn on axes fixed to the whole
run's limits so that only the data moves. Small on purpose: a few dozen frames at low
resolution stay well under a megabyte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobrunner.lab.live import plot


def replay_gif(
    samples: Any, added_at: float | None, path: str | Path, *, frames: int = 36, fps: int = 6,
    title: str = "", dpi: int = 70,
) -> Path:  # fmt: skip
    """Write ``samples`` (``live.drain``'s frame) as an animated GIF of ``frames`` steps."""
    import numpy as np
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6), dpi=dpi)
    plot(samples, added_at, fig, title)  # the whole run once: its limits hold every frame
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes]
    ends = np.linspace(samples["t"].iloc[0], samples["t"].iloc[-1], frames)

    def draw(i: int) -> list[Any]:
        end = ends[i]
        seen = samples[samples["t"] <= end]
        plot(seen, added_at if added_at is not None and added_at <= end else None, fig, title)
        for ax, (x, y) in zip(fig.axes, limits, strict=True):
            ax.set_xlim(*x)
            ax.set_ylim(*y)
        return list(fig.axes)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FuncAnimation(fig, draw, frames=frames).save(out, writer=PillowWriter(fps=fps))
    return out
