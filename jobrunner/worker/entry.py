"""Running a worker as a process: build it from settings, wire signals, exit with a summary."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from prometheus_client import start_http_server

from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.metrics import WorkerMetrics
from jobrunner.preflight import warn_about_redis
from jobrunner.queue import ReliableQueue
from jobrunner.registry import load_handlers
from jobrunner.worker import Worker, make_runner, new_worker_id

T = TypeVar("T")


async def serve(settings: Settings, *, worker_id: str | None = None) -> dict[str, int]:
    """Run a worker until SIGINT/SIGTERM (a second signal forces a fast, lossless exit)."""
    worker_id = worker_id or new_worker_id()
    registry = load_handlers(settings.imports)
    redis = async_redis(settings.redis_url, max_connections=8)
    # its transitions (reserve, start, ack, ...) over one pipelining connection: a script call
    # there costs a third of redis-py's CPU (bench.models_io), which the thread model felt most
    queue = ReliableQueue(redis, prefix=settings.prefix, result_ttl=settings.result_ttl,
                          pipelined=True, wait_replicas=settings.wait_replicas,
                          wait_timeout=settings.wait_timeout,
                          history=settings.history)  # fmt: skip
    await warn_about_redis(redis, worker=worker_id)
    metrics = WorkerMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
    runner = make_runner(settings, worker_id)
    worker = Worker(queue, registry, runner, settings, worker_id=worker_id, metrics=metrics)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.request_stop)
    loop.add_signal_handler(signal.SIGUSR1, worker.dump_state)  # kill -USR1: what it awaits
    try:
        return await worker.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        await queue.aclose()
        await redis.aclose()


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop where it exists (not on Windows), else asyncio's default loop."""
    if sys.platform != "win32":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
