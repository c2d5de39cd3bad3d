"""Execution limits in the worker: a job over its limit is deferred (a queue transition that
refunds the attempt), every deferred job still completes, and the limit holds while they run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis

from jobrunner.config import Settings
from jobrunner.queue import ReliableQueue
from jobrunner.ratelimit.measure import max_in_window
from jobrunner.registry import Registry
from jobrunner.worker import Worker, make_runner
from tests.conftest import eventually
from tests.keyspace import snapshot
from tests.test_queue_transitions import Q, job_hash

# Handler start times are stamped after the limiter admitted the job; this much scheduling jitter
# between the two is allowed for when counting windows from them.
JITTER = 0.1


async def test_defer_schedules_the_job_and_refunds_its_attempt(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await queue.enqueue("noop", job_id="j1")
    [r] = await queue.reserve("default", 1, lease=30)
    assert await queue.defer("default", [(r.id, r.token, 7.0)]) == 1
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:scheduled": {"j1": 7},
        f"{Q}:fence": "1",
        f"{Q}:job:j1": job_hash(a="0", s="scheduled", t="1"),
        f"{Q}:stats": {"enqueued": "1", "deferred": "1"},
    }


async def test_defer_skips_a_job_whose_lease_was_taken_over(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await queue.enqueue("noop", job_id="j1")
    [r] = await queue.reserve("default", 1, lease=30)
    before = snapshot(sync_redis)
    assert await queue.defer("default", [(r.id, r.token + 1, 1.0)]) == 0
    assert await queue.defer("default", []) == 0
    assert snapshot(sync_redis) == before


def worker_settings(url: str, model: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_url": url, "model": model, "concurrency": 8, "lease": 5.0,
        "heartbeat_interval": 0.2, "maintenance_interval": 0.01, "idle_poll_max": 0.01,
        "grace": 2.0,
    }  # fmt: skip
    return Settings(**{**base, **overrides})


@asynccontextmanager
async def running(queue: ReliableQueue, registry: Registry, s: Settings) -> AsyncIterator[Worker]:
    worker = Worker(queue, registry, make_runner(s, "rl-worker"), s)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 30)


async def all_done(queue: ReliableQueue, ids: list[str]) -> bool:
    for job_id in ids:
        record = await queue.get_job(job_id)
        if record is None or record.state != "done":
            return False
    return True


@pytest.mark.parametrize("model", ["asyncio", "thread"])
async def test_a_rate_limited_type_is_deferred_and_all_its_jobs_complete_within_the_limit(
    queue: ReliableQueue, redis_url: str, model: str
) -> None:
    registry = Registry()
    queue.registry = registry  # the producer knows the worker's handlers
    started: list[float] = []

    @registry.handler("limited", limit="gcra:20/s")
    def limited(payload: Any) -> None:
        started.append(time.time())

    s = worker_settings(redis_url, model)
    ids = [await queue.enqueue("limited", {"i": i}) for i in range(35)]
    async with running(queue, registry, s) as worker:
        await eventually(lambda: all_done(queue, ids), 30, "every limited job to complete")
    assert len(started) == 35
    assert max_in_window(started, 1.0 - JITTER) <= 20
    assert worker.counts["deferred"] >= 35 - 20  # most had to wait their turn
    for job_id in ids:  # deferral cost no attempt: each ran on its first
        record = await queue.get_job(job_id)
        assert record is not None
        assert record.attempts == 1
    stats = await queue.stats("default")
    assert stats.counters.get("retried", 0) == 0
    assert stats.counters["deferred"] == worker.counts["deferred"]
    deferred = worker.metrics.registry.get_sample_value(
        "jobs_deferred_total", {"type": "limited", "queue": "default", "limit": "limited"}
    )
    assert deferred == worker.counts["deferred"]


async def test_a_concurrency_limit_caps_jobs_at_once_and_frees_slots(
    queue: ReliableQueue, redis_url: str
) -> None:
    registry = Registry()
    queue.registry = registry  # the producer knows the worker's handlers
    lock = threading.Lock()
    running_now = [0]
    peak = [0]

    @registry.handler("resize", limit="concurrency:3:key=images")
    async def resize(payload: Any) -> None:
        with lock:
            running_now[0] += 1
            peak[0] = max(peak[0], running_now[0])
        await asyncio.sleep(0.03)
        with lock:
            running_now[0] -= 1

    s = worker_settings(redis_url, "asyncio", concurrency=20)
    ids = [await queue.enqueue("resize") for _ in range(40)]
    async with running(queue, registry, s) as worker:
        await eventually(lambda: all_done(queue, ids), 30, "every resize job to complete")
    assert peak[0] == 3
    assert worker.counts["deferred"] > 0
    # Every slot was given back: nobody holds one of the shared "images" slots now.
    assert await queue.redis.zcard("jr:rl:concurrency:{images}:slots") == 0


async def test_a_limit_in_the_settings_overrides_the_handlers_own(
    queue: ReliableQueue, redis_url: str
) -> None:
    registry = Registry()
    queue.registry = registry  # the producer knows the worker's handlers
    lock = threading.Lock()
    running_now, peak = [0], [0]

    @registry.handler("unlimited")
    async def unlimited(payload: Any) -> None:
        with lock:
            running_now[0] += 1
            peak[0] = max(peak[0], running_now[0])
        await asyncio.sleep(0.02)
        with lock:
            running_now[0] -= 1

    s = worker_settings(redis_url, "asyncio", concurrency=10, limits="unlimited=concurrency:1")
    ids = [await queue.enqueue("unlimited") for _ in range(10)]
    async with running(queue, registry, s):
        await eventually(lambda: all_done(queue, ids), 30, "every job to complete")
    assert peak[0] == 1


def test_a_bad_limit_setting_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="cannot read limit"):
        Settings(limits="email=fast")
