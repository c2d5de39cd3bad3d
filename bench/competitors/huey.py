"""Huey: ``RedisHuey``, one call per job, and ``huey_consumer`` with its defaults (1 thread)."""

from __future__ import annotations

import time

import redis
from huey import RedisHuey

from bench.competitors import COUNTER_KEY, QUEUE, console_script, redis_url

DISTRIBUTION = "huey"
ENQUEUE_PATH = "calling the task, one LPUSH per job (Huey has no bulk enqueue)"
COMPLETION = f"INCR {COUNTER_KEY} in the task (Huey keeps no state for a task returning None)"
WORKER = "huey_consumer (defaults: 1 worker thread, log level info)"

huey = RedisHuey(QUEUE, url=redis_url())
HELD_KEYS = (huey.storage.queue_key,)
_counter = redis.Redis.from_url(redis_url())


@huey.task()
def noop() -> None:
    """Nothing but the completion counter."""
    _counter.incr(COUNTER_KEY)


def enqueue(n: int) -> float:
    huey.storage.conn.ping()
    started = time.perf_counter()
    for _ in range(n):
        noop()
    return time.perf_counter() - started


def worker_command(variant: str) -> list[str]:
    return [console_script("huey_consumer"), f"{__name__}.huey"]


def ready(client: redis.Redis, output: str) -> bool:
    return "Huey consumer started" in output


def done(client: redis.Redis, n: int) -> int:
    return int(client.get(COUNTER_KEY) or 0)
