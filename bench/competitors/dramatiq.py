"""Dramatiq: the Redis broker, ``actor.send()`` per job, and one worker process (8 threads)."""

from __future__ import annotations

import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from bench.competitors import COUNTER_KEY, QUEUE, console_script, redis_url

DISTRIBUTION = "dramatiq"
ENQUEUE_PATH = "actor.send(), one script call per job (Dramatiq has no bulk enqueue)"
COMPLETION = f"INCR {COUNTER_KEY} in the actor (no result backend by default)"
WORKER = "dramatiq --processes 1 (default 8 threads per process)"
HELD_KEYS = (f"dramatiq:{QUEUE}",)  # the list of message ids; the .msgs hash stays

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)
_counter = redis.Redis.from_url(redis_url())


@dramatiq.actor(queue_name=QUEUE)
def noop() -> None:
    """Nothing but the completion counter."""
    _counter.incr(COUNTER_KEY)


def enqueue(n: int) -> float:
    broker.client.ping()
    started = time.perf_counter()
    for _ in range(n):
        noop.send()
    return time.perf_counter() - started


def worker_command(variant: str) -> list[str]:
    return [console_script("dramatiq"), "--processes", "1", __name__]


def ready(client: redis.Redis, output: str) -> bool:
    return "Worker process is ready for action" in output


def done(client: redis.Redis, n: int) -> int:
    return int(client.get(COUNTER_KEY) or 0)
