"""Calling a handler from synchronous code (a pool thread or a child process).

An async handler gets an event loop of its own per thread, created once and reused, so running
async handlers on threads costs one ``run_until_complete`` rather than a new loop per job.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.outcome import OK, Outcome, outcome_from_exception

_local = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None:
        loop = _local.loop = asyncio.new_event_loop()
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
