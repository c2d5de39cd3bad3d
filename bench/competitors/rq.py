"""RQ: ``Queue.enqueue_many`` in pipelines, and ``rq worker`` with its default (forking) Worker."""

from __future__ import annotations

import time

import redis
from rq import Queue
from rq.registry import FinishedJobRegistry

from bench.competitors import IO_KEY, QUEUE, console_script, io_mode, redis_url

DISTRIBUTION = "rq"
CHUNK = 1000
ENQUEUE_PATH = f"Queue.enqueue_many(Queue.prepare_data(...)), one pipeline per {CHUNK} jobs"
COMPLETION = "ZCARD of RQ's own FinishedJobRegistry (rq:finished:default)"
WORKER = "rq worker (default Worker class: forks a work horse per job)"
HELD_KEYS = (f"rq:queue:{QUEUE}",)


def noop() -> None:
    """Nothing at all; with ``--handler io``, one INCR."""
    if io_mode():
        redis.Redis.from_url(redis_url()).incr(IO_KEY)  # RQ forks a work horse a job: no reuse


def enqueue(n: int) -> float:
    connection = redis.Redis.from_url(redis_url())
    queue = Queue(QUEUE, connection=connection)
    connection.ping()
    started = time.perf_counter()
    for first in range(0, n, CHUNK):
        queue.enqueue_many([Queue.prepare_data(noop) for _ in range(min(CHUNK, n - first))])
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def worker_command(variant: str) -> list[str]:
    return [console_script("rq"), "worker", "--url", redis_url(), QUEUE]


def ready(client: redis.Redis, output: str) -> bool:
    return "Listening on" in output


def done(client: redis.Redis, n: int) -> int:
    return int(client.zcard(FinishedJobRegistry(QUEUE, connection=client).key))
