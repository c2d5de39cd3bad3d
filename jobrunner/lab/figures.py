"""Saving the lab's figures: one place decides the file names, size and resolution."""

from __future__ import annotations

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


def headless() -> bool:
    """True unless a Jupyter kernel is drawing (papermill runs count as a kernel too)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    return shell is None or type(shell).__name__ != "ZMQInteractiveShell"
