"""Writing an experiment's results: CSV rows, a JSON summary, and figures (matplotlib, from the
``lab`` extra, imported only when a figure is drawn and on the non-interactive Agg backend)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS = Path("results")


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


# Every summary says where it was measured: figures from a busy shared machine are not absolute.
MACHINE_NOTE = (
    "measured on a shared 2-core machine that other work was using at the same time: absolute "
    "rates and times vary from run to run; compare figures within one run, and use the repeats "
    "(where an experiment has them) for the spread"
)


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented JSON; a summary (a dict) gets ``machine`` and ``machine_note``
    unless it has them already."""
    if isinstance(data, dict):
        from jobrunner.lab.loadgen.result import machine

        data = {**data}
        if "machine" not in data:  # not setdefault: machine() runs git, wasted when present
            data["machine"] = machine()
        data.setdefault("machine_note", MACHINE_NOTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (11, 4)) -> tuple[Any, Any]:
    """A matplotlib figure and its axes, off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, squeeze=False)


def save_figure(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
