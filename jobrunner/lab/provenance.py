"""Where a notebook's figures come from: the commit, the machine, and how quiet it was.

A notebook that measures rates prints this first, so a reader can tell which code and which
machine a figure belongs to. With ``quiet`` set (the full runs whose figures are committed) it
first waits for the load average to settle below ``max_load`` per core and refuses to measure
on a busy machine: a figure measured beside a test suite describes the suite as much as the
code. The small runs in CI pass ``quiet=False``: they check the claims' direction, not their
size.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import psutil

from jobrunner.errors import JobrunnerError

ROOT = Path(__file__).resolve().parents[2]


class BusyMachine(JobrunnerError):
    """The load average stayed too high to measure anything worth committing."""


# What the lab writes as it runs: a change there does not make the code under test differ.
OUTPUTS = (":!notebooks/*.ipynb", ":!results", ":!profiles")


def commit() -> str:
    """The checkout's commit (``+dirty`` when code or notebook sources differ from it, not the
    outputs the lab writes), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *OUTPUTS], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def wait_until_quiet(max_load: float, timeout: float) -> float:
    """Wait (printing progress) until the 1-minute load average per core is below
    ``max_load``; returns it, or raises BusyMachine after ``timeout`` seconds."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + timeout
    while (load := os.getloadavg()[0] / cores) >= max_load:
        if time.monotonic() > deadline:
            raise BusyMachine(
                f"load average {load * cores:.2f} on {cores} cores stayed above "
                f"{max_load:g} per core for {timeout:.0f}s: figures measured now would be the "
                "other work's as much as this code's. Stop it, or pass quiet=False to measure "
                "anyway (the figures are then not worth committing)."
            )
        print(f"\rwaiting for a quiet machine: load {load * cores:.2f} on {cores} cores", end="")
        time.sleep(5)
    return load * cores


def record(quiet: bool = True, max_load: float = 0.5, timeout: float = 300.0) -> dict[str, str]:
    """Print and return the commit, the machine and its load average now."""
    if quiet:
        wait_until_quiet(max_load, timeout)
    info = {
        "commit": commit(),
        "machine": f"{platform.node()} ({psutil.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()})",
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print("\n".join(f"{k:>13}: {v}" for k, v in info.items()))
    return info
