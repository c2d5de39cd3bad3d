"""Running a scheduler as a process: Redis client, metrics server, signals, the loop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

from prometheus_client import start_http_server

from jobrunner.connection import async_redis
from jobrunner.registry import Registry
from jobrunner.scheduler.metrics import SchedulerMetrics
from jobrunner.scheduler.schedule import Schedule
from jobrunner.scheduler.service import Scheduler


async def serve_scheduler(
    redis_url: str | None,
    schedules: Sequence[Schedule],
    *,
    prefix: str,
    ttl: float,
    poll_interval: float,
    registry: Registry,
    scheduler_id: str | None = None,
    metrics_port: int = 0,
) -> dict[str, int]:
    """Run until SIGINT/SIGTERM, then give the leader lock up and return the counts."""
    redis = async_redis(redis_url, max_connections=4)
    metrics = SchedulerMetrics()
    if metrics_port:
        start_http_server(metrics_port, registry=metrics.registry)
    scheduler = Scheduler(
        redis, schedules, prefix=prefix, ttl=ttl, poll_interval=poll_interval,
        scheduler_id=scheduler_id, registry=registry, metrics=metrics,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, scheduler.request_stop)
    try:
        return await scheduler.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await redis.aclose()
