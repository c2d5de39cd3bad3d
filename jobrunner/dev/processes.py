"""Ending a child process the same way everywhere: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from typing import Any


def end_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM ``proc`` (resumed first: a stopped process cannot act on it), wait up to
    ``timeout`` seconds for it to exit, then SIGKILL it; returns once it is reaped."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
