"""Calling a handler from synchronous code (a pool thread or a child process).

An async handler runs on an event loop of this thread's own, created once and reused. A plain
loop polls its selector on every turn, even with work ready (a zero-timeout ``epoll_wait``), and
that system call releases the GIL: with a busy event loop on the worker's main thread, every
async job run on a thread then queued twice for the GIL. This loop skips most zero-timeout polls
(never more than ``_SKIP`` in a row, so I/O readiness is still seen while callbacks keep coming),
which made async no-op jobs on the thread model about 1.4x faster (py-spy showed the GIL
hand-offs; `make bench` measures it).
"""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from typing import Any

from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.outcome import OK, Outcome, outcome_from_exception

_local = threading.local()
_SKIP = 64


class _QuietSelector(selectors.DefaultSelector):
    """A selector that answers most zero-timeout polls without a system call."""

    def __init__(self) -> None:
        super().__init__()
        self._skipped = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0 and self._skipped < _SKIP:
            self._skipped += 1
            return []
        self._skipped = 0
        return super().select(timeout)


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None:
        loop = _local.loop = asyncio.SelectorEventLoop(_QuietSelector())
    return loop


def call_sync(spec: HandlerSpec, payload: Any, ctx: JobContext) -> Outcome:
    """Run the handler to completion on this thread and classify the result."""
    ctx.deadline = time.monotonic() + ctx.timeout
    args = (payload, ctx) if spec.takes_context else (payload,)
    try:
        if spec.is_async:
            _thread_loop().run_until_complete(spec.fn(*args))
        else:
            spec.fn(*args)
    except Exception as exc:
        return outcome_from_exception(exc)
    if ctx.is_cancelled():
        return outcome_from_exception(TimeoutError(f"overran its {ctx.timeout}s timeout"))
    return OK


def close_thread_loop() -> None:
    """Close this thread's handler loop, if it made one (call as the thread exits)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is not None:
        loop.close()
        _local.loop = None
