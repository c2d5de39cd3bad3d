"""Handlers for the tests; importable by worker processes (``--import tests.jobs``).

Importing it registers the lab's demo handlers too (``noop``, ``email``, ...), which many
tests enqueue. Each test handler records what it ran in Redis (the URL travels in the
payload), so a test can count executions across threads, child processes and worker processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import cache
from typing import Any

import msgspec
import redis

import jobrunner.lab.handlers.demo  # noqa: F401  (the tests enqueue the demo's noop, email...)
from jobrunner.backoff import Constant
from jobrunner.connection import sync_redis
from jobrunner.registry import JobContext, handler

FAST_RETRY = Constant(base=0.05, cap=0.05)


@cache
def _ledger(url: str) -> redis.Redis:
    return sync_redis(url)  # a cluster client where the URL names a cluster


def record(payload: dict[str, Any], ctx: JobContext) -> None:
    _ledger(payload["ledger"]).hincrby("test:runs", ctx.job_id, 1)


@handler("test.record", backoff=FAST_RETRY)
def record_run(payload: dict[str, Any], ctx: JobContext) -> None:
    """Counts one run; sleeps ``seconds`` first when given."""
    if payload.get("seconds"):
        time.sleep(payload["seconds"])
    record(payload, ctx)


@handler("test.record_async", backoff=FAST_RETRY)
async def record_run_async(payload: dict[str, Any], ctx: JobContext) -> None:
    if payload.get("seconds"):
        await asyncio.sleep(payload["seconds"])
    record(payload, ctx)


@handler("test.fail_times", backoff=FAST_RETRY, max_retries=5)
def fail_times(payload: dict[str, Any], ctx: JobContext) -> None:
    """Raises on the first ``times`` attempts, then succeeds."""
    record(payload, ctx)
    if ctx.attempt <= payload["times"]:
        raise ValueError(f"failure {ctx.attempt} of {payload['times']}")


@handler("test.hang_async", backoff=FAST_RETRY)
async def hang_async(payload: dict[str, Any], ctx: JobContext) -> None:
    record(payload, ctx)
    await asyncio.sleep(3600)


@handler("test.hang_cooperative", backoff=FAST_RETRY)
def hang_cooperative(payload: dict[str, Any], ctx: JobContext) -> None:
    """Blocks its thread, but notices cancellation (the thread model's contract)."""
    record(payload, ctx)
    ctx.cancelled.wait(3600)
    ctx.check()


@handler("test.hang_blocking", backoff=FAST_RETRY)
def hang_blocking(payload: dict[str, Any], ctx: JobContext) -> None:
    """Ignores cancellation entirely: only killing its process stops it."""
    record(payload, ctx)
    time.sleep(3600)


@handler("test.long_first_time", backoff=FAST_RETRY)
def long_first_time(payload: dict[str, Any], ctx: JobContext) -> None:
    """Takes ``seconds`` on its first attempt (cancellable), then finishes at once."""
    if ctx.attempt == 1:
        ctx.cancelled.wait(payload["seconds"])
        ctx.check()
    record(payload, ctx)


@handler("test.exit_process", backoff=FAST_RETRY, max_retries=2)
def exit_process(payload: dict[str, Any], ctx: JobContext) -> None:
    """Kills the process running it: a poison job."""
    record(payload, ctx)
    os._exit(13)


@handler("test.short_leash", timeout=0.3, max_retries=1, backoff=FAST_RETRY)
async def short_leash(payload: dict[str, Any], ctx: JobContext) -> None:
    """Per-type options: its jobs get 0.3 s and one retry unless they bring their own."""
    record(payload, ctx)
    await asyncio.sleep(3600)


@handler("test.sync_calls_asyncio_run", backoff=FAST_RETRY)
def sync_calls_asyncio_run(payload: dict[str, Any], ctx: JobContext) -> None:
    """A sync handler wrapping async code itself, as sync code often does."""

    async def inner() -> int:
        await asyncio.sleep(0.01)
        return 42

    if asyncio.run(inner()) == 42:
        record(payload, ctx)


@handler("test.async_uses_timeout_and_tasks", backoff=FAST_RETRY)
async def async_uses_timeout_and_tasks(payload: dict[str, Any], ctx: JobContext) -> None:
    """Needs a running loop *and* a current task: asyncio.timeout and a TaskGroup."""
    async with asyncio.timeout(5):
        async with asyncio.TaskGroup() as group:
            first = group.create_task(asyncio.sleep(0.01, result=1))
            second = group.create_task(asyncio.sleep(0.02, result=2))
    if first.result() + second.result() == 3:
        record(payload, ctx)


@handler("test.echo", backoff=FAST_RETRY)
def echo(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Returns a result: the payload, and the attempt it ran on."""
    return {"echo": payload, "attempt": ctx.attempt}


@handler("test.echo_async", backoff=FAST_RETRY)
async def echo_async(payload: dict[str, Any]) -> dict[str, Any]:
    return {"echo": payload}


@handler("test.returns_a_set", backoff=FAST_RETRY)
def returns_a_set(payload: Any) -> set[int]:
    return {1, 2}


@handler("test.stoppable", backoff=FAST_RETRY, timeout=600)
def stoppable(payload: dict[str, Any], ctx: JobContext) -> None:
    """Runs until cancelled, looking at its context as a long thread-model job should."""
    record(payload, ctx)
    while True:
        ctx.check()  # raises JobCancelled once its cancellation was asked for
        time.sleep(0.01)


@handler("test.stoppable_async", backoff=FAST_RETRY, timeout=600)
async def stoppable_async(payload: dict[str, Any], ctx: JobContext) -> None:
    record(payload, ctx)
    await asyncio.sleep(3600)


class Invoice(msgspec.Struct):
    order: int
    total: float


@handler("test.invoice", backoff=FAST_RETRY)
def invoice(payload: Invoice) -> str:
    """A typed payload: the handler receives an Invoice, not a dict."""
    assert isinstance(payload, Invoice)
    return f"order {payload.order}: {payload.total:.2f}"


@handler("test.traced_async", backoff=FAST_RETRY)
async def traced_async(payload: Any) -> None:
    """Makes a span of its own with the process's tracer (tests/test_tracing.py)."""
    from opentelemetry import trace

    with trace.get_tracer("tests.jobs").start_as_current_span("handler work"):
        await asyncio.sleep(0)


@handler("test.traced", backoff=FAST_RETRY)
def traced(payload: Any) -> None:
    """``test.traced_async``'s blocking twin, for the thread model."""
    from opentelemetry import trace

    with trace.get_tracer("tests.jobs").start_as_current_span("handler work"):
        pass
