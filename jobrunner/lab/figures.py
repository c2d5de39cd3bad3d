"""Saving the lab's figures: one place decides the file names, size and resolution."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DPI = 110


def save(fig: Any, directory: Path | str, name: str) -> Path:
    """Write ``fig`` as ``<directory>/<name>.png`` (directories made as needed)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


@contextlib.contextmanager
def keeping_backend() -> Iterator[None]:
    """Around a call to an experiment's own plot (``jobrunner.lab.experiments``): those switch
    matplotlib to its off-screen backend (``matplotlib.use("Agg")``), after which a notebook's
    figures would no longer show; the backend in use before the block is put back."""
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    try:
        yield
    finally:
        if matplotlib.get_backend() != backend:
            plt.switch_backend(backend)


def headless() -> bool:
    """True unless a Jupyter kernel is drawing (papermill runs count as a kernel too)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    return shell is None or type(shell).__name__ != "ZMQInteractiveShell"
