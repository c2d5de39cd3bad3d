"""Stacks for the notebooks: started in a ``with`` block, and proven gone when it ends.

A notebook must leave no process behind even when a cell fails. ``lab_stack`` wraps
``jobrunner.dev.stack.Stack``: on exit (error or not) it stops the stack, then checks that every
process the stack ran is gone; ``check_no_strays`` repeats that check for every stack a kernel
started, for the notebook's last cell. ``watching`` does the same for code that starts and stops
its own stacks (the experiments, the chaos runner). A pid is identified with its start time, so
a recycled pid is not mistaken for a survivor.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil

from jobrunner.dev.stack import Stack
from jobrunner.errors import JobrunnerError

# Every (pid, create_time) a lab stack ran in this interpreter.
_SEEN: set[tuple[int, float]] = set()
# Stacks started with start_stack and not stopped yet.
_OPEN: list[Stack] = []


class StrayProcessError(JobrunnerError):
    """A process the lab started outlived its stack."""


def _identity(pid: int) -> tuple[int, float] | None:
    try:
        return pid, psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def remember(pids: set[int]) -> None:
    """Note ``pids`` (live now) as the lab's, to be checked later."""
    for pid in pids:
        if (ident := _identity(pid)) is not None:
            _SEEN.add(ident)


def survivors(idents: set[tuple[int, float]] | None = None) -> list[psutil.Process]:
    """Those of ``idents`` (default: all the lab ran) still alive, zombies excluded."""
    out = []
    for pid, created in idents if idents is not None else set(_SEEN):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def check_no_strays(timeout: float = 10.0) -> int:
    """Raise StrayProcessError if a process a lab stack ran is still alive after ``timeout``;
    returns how many processes were checked."""
    deadline = time.monotonic() + timeout
    while left := survivors():
        if time.monotonic() > deadline:
            names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:4])}" for p in left)
            raise StrayProcessError(f"processes outlived their stack: {names}")
        time.sleep(0.05)  # processes we signalled are exiting; poll until they are gone
    return len(_SEEN)


@contextlib.contextmanager
def lab_stack(**options: Any) -> Iterator[Stack]:
    """``Stack(**options)``, started; stopped and checked for survivors when the block ends."""
    stack = Stack(**options)
    try:
        stack.start()
        remember(stack.all_pids())
        yield stack
    finally:
        with contextlib.suppress(Exception):
            remember(stack.all_pids())  # workers added meanwhile
        stack.stop()
    check_no_strays()


@contextlib.contextmanager
def watching(interval: float = 0.05, timeout: float = 10.0) -> Iterator[None]:
    """For experiments that start stacks of their own (``jobrunner.lab.experiments``, ``jobrunner
    chaos``): while the block runs, remember every process this one starts, with their
    descendants (Redis, workers, the API, servers), every ``interval`` seconds; when it ends,
    ``check_no_strays(timeout)``. A process that lives less than ``interval`` may go unseen."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    done = threading.Event()

    def poll() -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                remember({p.pid for p in me.children(recursive=True)} - before)
            if done.wait(interval):
                return

    thread = threading.Thread(target=poll, name="lab-watching", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    check_no_strays(timeout)


def track(stack: Stack) -> None:
    """Remember the processes of ``stack`` now (call after adding workers)."""
    remember(stack.all_pids())


def start_stack(**options: Any) -> Stack:
    """A stack that outlives one cell: stop it with ``stop_all()`` in a later cell. If a cell
    fails first, the kernel's exit stops it (papermill shuts the kernel down cleanly)."""
    stack = Stack(**options).start()
    remember(stack.all_pids())
    _OPEN.append(stack)
    return stack


def stop_all() -> int:
    """Stop every stack ``start_stack`` started, then ``check_no_strays``."""
    while _OPEN:
        stack = _OPEN.pop()
        with contextlib.suppress(Exception):
            remember(stack.all_pids())
        stack.stop()
    return check_no_strays()


atexit.register(stop_all)
