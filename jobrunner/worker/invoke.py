"""Calling a handler from a thread of its own: a pool thread, or a child process's main thread.

Such a thread serves jobs from one long-lived coroutine on an event loop of its own
(``serve_on_own_loop``), and ``call_handler`` awaits an async handler right there: no new loop
turn, task or selector poll per job, and a handler that never suspends costs nothing extra
(``run_until_complete`` per job cost a selector poll each time, which released the GIL and so
handed it to the worker's busy event loop on every job: async no-op jobs on the thread model ran
about 1.2x faster without it). The handler still sees a running loop and a current task, so
``asyncio.timeout``, task groups and anyio-based clients work in it.

Sync handlers run with *no* running loop visible, as on any plain thread, so one that calls
``asyncio.run`` itself still works.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.outcome import Kind, Outcome, outcome_from_exception, succeeded


def serve_on_own_loop(serve: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run this thread's serving coroutine on a new event loop, then close the loop."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()


def typed_payload(spec: HandlerSpec, payload: Any) -> Any:
    """The payload as the handler declared it: an instance of its payload type, if it has one
    (a ValidationError when the stored payload does not fit it)."""
    return payload if spec.payload_type is None else msgspec.convert(payload, spec.payload_type)


async def call_handler(spec: HandlerSpec, payload: Any, ctx: JobContext) -> Outcome:
    """Run one handler to completion from a serving coroutine and classify the result."""
    ctx.deadline = time.monotonic() + ctx.timeout
    try:
        payload = typed_payload(spec, payload)
    except msgspec.ValidationError as exc:
        return Outcome(Kind.DEAD, f"the payload does not fit {spec.payload_type}: {exc}")
    args = (payload, ctx) if spec.takes_context else (payload,)
    try:
        if spec.is_async:
            value = await spec.fn(*args)
        else:
            with _no_running_loop():
                value = spec.fn(*args)
    except Exception as exc:
        return outcome_from_exception(exc)
    return _overran(ctx) or succeeded(value)


def call_sync(spec: HandlerSpec, payload: Any, ctx: JobContext) -> Outcome:
    """Run a *sync* handler on this (loop-less) thread and classify the result."""
    ctx.deadline = time.monotonic() + ctx.timeout
    try:
        payload = typed_payload(spec, payload)
    except msgspec.ValidationError as exc:
        return Outcome(Kind.DEAD, f"the payload does not fit {spec.payload_type}: {exc}")
    args = (payload, ctx) if spec.takes_context else (payload,)
    try:
        value = spec.fn(*args)
    except Exception as exc:
        return outcome_from_exception(exc)
    return _overran(ctx) or succeeded(value)


def _overran(ctx: JobContext) -> Outcome | None:
    if ctx.is_cancelled():
        return outcome_from_exception(TimeoutError(f"overran its {ctx.timeout}s timeout"))
    return None


@contextmanager
def _no_running_loop() -> Iterator[None]:
    """Hide this thread's serving loop from a sync handler for the length of its call."""
    loop = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(loop)
