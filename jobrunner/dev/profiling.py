"""Flamegraphs of running processes with py-spy: attach by pid, or start a worker under it.

py-spy samples a process from outside (no code change, no restart), so it works on a worker in
production as well as in the lab. ``--format speedscope`` writes a profile for speedscope.app.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from jobrunner.errors import JobrunnerError

Format = Literal["flamegraph", "speedscope", "raw"]


def py_spy() -> str:
    """The py-spy program of this environment (its wheel installs a program, not a module)."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise JobrunnerError("py-spy is not installed: pip install py-spy")
    return found


def record_command(
    out: Path,
    *,
    pid: int | None = None,
    seconds: float | None = None,
    fmt: Format = "flamegraph",
    rate: int = 250,
    gil: bool = False,
    command: list[str] | None = None,
) -> list[str]:
    """The py-spy command line: attach to ``pid`` for ``seconds``, or run ``command`` under it."""
    if (pid is None) == (command is None):
        raise ValueError("give either a pid or a command")
    args = [py_spy(), "record", "--output", str(out), "--format", fmt, "--rate", str(rate),
            "--subprocesses", "--threads"]  # fmt: skip
    if gil:
        args.append("--gil")
    if seconds is not None:
        args += ["--duration", str(max(1, round(seconds)))]
    if pid is not None:
        return [*args, "--pid", str(pid)]
    assert command is not None
    return [*args, "--", *command]


def record(out: Path, *, quiet: bool = False, **options: object) -> int:
    """Run py-spy to completion (it stops after ``seconds`` or when the command exits).

    ``quiet`` keeps py-spy's own output (sampling notes, "behind in sampling" warnings) off the
    terminal; the exit code still says whether it worked.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    command = record_command(out, **options)  # type: ignore[arg-type]
    sink = subprocess.DEVNULL if quiet else None
    return subprocess.run(command, check=False, stdout=sink, stderr=sink).returncode
