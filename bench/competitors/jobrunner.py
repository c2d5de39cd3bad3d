"""jobrunner: the reliable queue, one asyncio worker process, the demo ``noop`` handler (with
``--handler io``, ``redis_incr_async``: one INCR)."""

from __future__ import annotations

import asyncio
import sys
import time

import redis

from bench.competitors import IO_KEY, QUEUE, io_mode, redis_url
from jobrunner.connection import async_redis
from jobrunner.job import Job, new_job_id
from jobrunner.keys import QueueKeys, workers_key
from jobrunner.queue import ReliableQueue

DISTRIBUTION = "jobrunner"
CHUNK = 1000
KEYS = QueueKeys(QUEUE)
ENQUEUE_PATH = f"ReliableQueue.enqueue_jobs(), chunks of {CHUNK} (its bulk path)"
COMPLETION = "the queue's own `processed` counter (stats hash), as bench/throughput.py"
WORKER = "jobrunner worker --model asyncio (concurrency 100, batches of 100, log level info)"
HELD_KEYS = (KEYS.ready,)

# The task is jobrunner.lab.handlers.demo.noop, which every worker registers: `async def` doing
# nothing.


def enqueue(n: int) -> float:
    # with --handler io, the demo handler that does one INCR (an `async def`, redis-py asyncio)
    io = ("redis_incr_async", {"url": redis_url(), "key": IO_KEY})
    job_type, payload = io if io_mode() else ("noop", {})

    async def go() -> float:
        client = async_redis(redis_url())
        queue = ReliableQueue(client)
        try:
            await client.ping()
            started = time.perf_counter()
            for first in range(0, n, CHUNK):
                jobs = [
                    Job(id=new_job_id(), type=job_type, payload=payload)
                    for _ in range(min(CHUNK, n - first))
                ]
                await queue.enqueue_jobs(jobs)
            return time.perf_counter() - started
        finally:
            await client.aclose()

    return asyncio.run(go())


def worker_command(variant: str) -> list[str]:
    return [
        sys.executable, "-m", "jobrunner.cli", "worker",
        "--redis-url", redis_url(), "--model", "asyncio", "--import", "jobrunner.lab.handlers.demo",
    ]  # fmt: skip


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """No jobrunner settings from the caller's environment: the worker runs with the defaults."""
    return {k: v for k, v in env.items() if not k.startswith("JOBRUNNER_") and k != "REDIS_URL"}


def ready(client: redis.Redis, output: str) -> bool:
    """Its first heartbeat (the worker registry), as bench/throughput.py waits for."""
    return bool(client.zcard(workers_key()))


def done(client: redis.Redis, n: int) -> int:
    return int(client.hget(KEYS.stats, "processed") or 0)
