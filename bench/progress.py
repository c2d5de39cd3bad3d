"""The progress bar every benchmark script shows while a person waits on it.

Refreshed four times a second: a light touch on the two CPUs the workers and Redis share.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


def bench_progress(console: Console, *, transient: bool = False) -> Progress:
    """A spinner, the task's description, a bar, done/total and the time elapsed."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=4,
        transient=transient,
    )
