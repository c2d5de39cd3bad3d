"""Celery: the Redis broker, no result backend, ``apply_async`` on one producer, and one worker:
the ``solo`` pool, or the default ``prefork`` pool with 2 child processes."""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready

from bench.competitors import COUNTER_KEY, QUEUE, READY_MARK, console_script, redis_url, say_ready

DISTRIBUTION = "celery"
ENQUEUE_PATH = "task.apply_async(producer=...) per job on one producer (no bulk path)"
COMPLETION = f"INCR {COUNTER_KEY} in the task (no result backend by default)"
WORKER = {
    "solo": "celery worker --pool solo (default log level warning)",
    "prefork": "celery worker --pool prefork --concurrency 2 (the default pool; 2 children)",
}

app = Celery("bench_compare", broker=redis_url(), set_as_current=True)
app.conf.broker_connection_retry_on_startup = True  # silences a start-up deprecation warning
app.conf.task_default_queue = QUEUE
HELD_KEYS = (QUEUE,)  # kombu's list for the queue
_counter = redis.Redis.from_url(redis_url())


@app.task(name="noop")
def noop() -> None:
    """Nothing but the completion counter."""
    _counter.incr(COUNTER_KEY)


@worker_ready.connect
def _ready(**_: Any) -> None:
    # Celery logs its "ready." line only at log level info; the documented signal says it here.
    say_ready()


def enqueue(n: int) -> float:
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()
        started = time.perf_counter()
        for _ in range(n):
            noop.apply_async(producer=producer)
        return time.perf_counter() - started


def worker_command(variant: str) -> list[str]:
    pool = ["--pool", "solo"] if variant == "solo" else ["--pool", "prefork", "--concurrency", "2"]
    return [console_script("celery"), "--app", __name__, "worker", *pool, "--queues", QUEUE]


def ready(client: redis.Redis, output: str) -> bool:
    return READY_MARK in output


def done(client: redis.Redis, n: int) -> int:
    return int(client.get(COUNTER_KEY) or 0)
