"""arq: ``enqueue_job`` (no bulk path), run 100 at a time with ``asyncio.gather``, and one
``arq`` worker with its defaults (max_jobs 10, poll_delay 0.5 s)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import default_queue_name, result_key_prefix

from bench.competitors import (
    IO_KEY,
    READY_MARK,
    console_script,
    io_client,
    io_mode,
    redis_url,
    say_ready,
)

DISTRIBUTION = "arq"
BATCH = 100
ENQUEUE_PATH = f"ArqRedis.enqueue_job(), {BATCH} at a time with asyncio.gather (no bulk path)"
COMPLETION = f"N - ZCARD {default_queue_name} (arq removes a job when it finishes); results counted"
WORKER = "arq WorkerSettings (defaults: max_jobs 10, poll_delay 0.5 s, keep_result 1 h)"
HELD_KEYS = (default_queue_name,)


async def noop(ctx: dict[str, Any]) -> None:
    """Nothing at all; with ``--handler io``, one INCR."""
    if io_mode():
        await io_client().incr(IO_KEY)


async def _ready(ctx: dict[str, Any]) -> None:
    say_ready()


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(redis_url())
    on_startup = _ready


def enqueue(n: int) -> float:
    async def go() -> float:
        pool = await create_pool(RedisSettings.from_dsn(redis_url()))
        try:
            started = time.perf_counter()
            for first in range(0, n, BATCH):
                count = min(BATCH, n - first)
                await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(count)))
            return time.perf_counter() - started
        finally:
            await pool.aclose()

    return asyncio.run(go())


def worker_command(variant: str) -> list[str]:
    return [console_script("arq"), f"{__name__}.WorkerSettings"]


def ready(client: redis.Redis, output: str) -> bool:
    return READY_MARK in output


def done(client: redis.Redis, n: int) -> int:
    return n - int(client.zcard(default_queue_name))


def counted(client: redis.Redis) -> int:
    """Result records (arq keeps one per finished job for keep_result, an hour by default)."""
    return sum(1 for _ in client.scan_iter(match=f"{result_key_prefix}*", count=1000))
