"""SAQ: ``Queue.enqueue`` (no bulk path), run 100 at a time with ``asyncio.gather``, and one
``saq`` worker with its defaults (concurrency 10)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis
from saq import Queue

from bench.competitors import (
    IO_KEY,
    QUEUE,
    READY_MARK,
    console_script,
    io_client,
    io_mode,
    redis_url,
    say_ready,
)

DISTRIBUTION = "saq"
BATCH = 100
ENQUEUE_PATH = f"Queue.enqueue(), {BATCH} at a time with asyncio.gather (no bulk path)"
COMPLETION = (
    f"N - ZCARD saq:{QUEUE}:incomplete (SAQ's own set of unfinished jobs); "
    "job records with status complete counted at the end"
)
WORKER = "saq settings (defaults: concurrency 10)"
HELD_KEYS = (f"saq:{QUEUE}:queued",)  # the list the worker pops; the incomplete set stays


async def noop(ctx: dict[str, Any]) -> None:
    """Nothing at all; with ``--handler io``, one INCR."""
    if io_mode():
        await io_client().incr(IO_KEY)


async def _ready(ctx: dict[str, Any]) -> None:
    say_ready()


settings = {
    "queue": Queue.from_url(redis_url(), name=QUEUE),
    "functions": [noop],
    "startup": _ready,
}


def enqueue(n: int) -> float:
    async def go() -> float:
        queue = Queue.from_url(redis_url(), name=QUEUE)
        await queue.connect()
        try:
            started = time.perf_counter()
            for first in range(0, n, BATCH):
                count = min(BATCH, n - first)
                await asyncio.gather(*(queue.enqueue("noop") for _ in range(count)))
            return time.perf_counter() - started
        finally:
            await queue.disconnect()

    return asyncio.run(go())


def worker_command(variant: str) -> list[str]:
    return [console_script("saq"), f"{__name__}.settings"]


def ready(client: redis.Redis, output: str) -> bool:
    return READY_MARK in output


def done(client: redis.Redis, n: int) -> int:
    return n - int(client.zcard(f"saq:{QUEUE}:incomplete"))


def counted(client: redis.Redis) -> int:
    """Job records whose status is complete (SAQ keeps them for its ttl, 600 s by default)."""
    total = 0
    keys = list(client.scan_iter(match=f"saq:job:{QUEUE}:*", count=1000))
    for first in range(0, len(keys), 1000):
        for raw in client.mget(keys[first : first + 1000]):
            if raw and json.loads(raw).get("status") == "complete":
                total += 1
    return total
