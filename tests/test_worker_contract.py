"""The worker contract, the same for every concurrency model (asyncio, thread, process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.config import Settings
from jobrunner.job import make_job
from jobrunner.queue import ReliableQueue
from jobrunner.registry import load_handlers
from jobrunner.worker import Worker, make_runner
from tests.conftest import BACKENDS, eventually, on_backend

MODELS = ["asyncio", "thread", "process"]

# every test here runs on one Redis and on Redis Cluster (3 masters, 3 replicas)
redis_url = pytest.fixture(params=BACKENDS)(on_backend)
# Per model: a handler that hangs and only stops the way that model can stop it.
HANG = {
    "asyncio": "test.hang_async",
    "thread": "test.hang_cooperative",
    "process": "test.hang_blocking",
}


def settings(url: str, model: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_url": url,
        "model": model,
        "imports": ["tests.jobs"],
        "concurrency": 4,
        "lease": 5.0,
        "heartbeat_interval": 0.5,
        "maintenance_interval": 0.05,
        "idle_poll_max": 0.01,
        "grace": 2.0,
    }
    return Settings(**{**base, **overrides})


@asynccontextmanager
async def running_worker(queue: ReliableQueue, s: Settings) -> AsyncIterator[Worker]:
    worker = Worker(queue, load_handlers(s.imports), make_runner(s, "test-worker"), s)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_stop()
        worker.summary = await asyncio.wait_for(task, 30)  # type: ignore[attr-defined]


def runs(sync_redis: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in sync_redis.hgetall("test:runs").items()}


def is_dead(queue: ReliableQueue, job_id: str) -> Callable[[], Any]:
    async def check() -> bool:
        record = await queue.get_job(job_id)
        return record is not None and record.state == "dead"

    return check


def processed(queue: ReliableQueue, name: str = "default") -> Callable[[], Any]:
    async def check() -> int:
        return (await queue.stats(name)).counters.get("processed", 0)

    return check


@pytest.mark.parametrize("model", MODELS)
async def test_every_job_runs_exactly_once_when_nothing_fails(
    model: str, queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    n = 300
    jobs = [
        make_job(
            "test.record" if i % 2 else "test.record_async",
            {"ledger": redis_url},
            queue="high" if i % 3 == 0 else "default",
        )
        for i in range(n)
    ]
    await queue.enqueue_jobs(jobs)
    s = settings(redis_url, model, queues=["high", "default"])
    async with running_worker(queue, s) as worker:

        async def all_done() -> bool:
            high, default = await queue.stats("high"), await queue.stats("default")
            return high.counters.get("processed", 0) + default.counters.get("processed", 0) == n

        await eventually(all_done, what=f"{n} jobs processed")
    assert runs(sync_redis) == {job.id: 1 for job in jobs}
    assert worker.summary["completed"] == n  # type: ignore[attr-defined]
    assert worker.summary.get("failed", 0) == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", MODELS)
async def test_a_job_past_its_timeout_is_stopped_and_retried_then_dead(
    model: str, queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    job_id = await queue.enqueue(HANG[model], {"ledger": redis_url}, timeout=0.3, max_retries=1)
    await queue.enqueue("test.record", {"ledger": redis_url}, job_id="after")
    async with running_worker(queue, settings(redis_url, model, concurrency=2)):
        await eventually(is_dead(queue, job_id), what="the hanging job to be dead")
        await eventually(processed(queue), what="the next job to run")
    record = await queue.get_job(job_id)
    assert record is not None
    assert record.attempts == 2
    assert record.last_error is not None
    assert "timeout" in record.last_error
    assert runs(sync_redis)[job_id] == 2


@pytest.mark.parametrize("model", MODELS)
async def test_handler_exceptions_are_retried_with_backoff(
    model: str, queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    job_id = await queue.enqueue(
        "test.fail_times", {"ledger": redis_url, "times": 2}, max_retries=5
    )
    async with running_worker(queue, settings(redis_url, model)) as worker:
        await eventually(processed(queue), what="the job to succeed")
    record = await queue.get_job(job_id)
    assert record is not None
    assert (record.state, record.attempts) == ("done", 3)
    assert record.last_error is not None
    assert "ValueError: failure 2 of 2" in record.last_error
    assert runs(sync_redis)[job_id] == 3
    assert worker.summary["retried"] == 2  # type: ignore[attr-defined]
    stats = await queue.stats("default")
    assert stats.counters["retried"] == 2


@pytest.mark.parametrize("model", MODELS)
async def test_unknown_types_and_undecodable_payloads_go_dead_and_the_worker_goes_on(
    model: str, queue: ReliableQueue, redis_url: str, aredis: AsyncRedis
) -> None:
    # a producer that knows no handlers cannot refuse the type; the worker dead-letters it
    unknown = make_job("no.such.type", {})
    await queue.enqueue_jobs([unknown])
    unknown_id = unknown.id
    garbled = await queue.enqueue("noop", {})
    await aredis.hset(queue.keys("default").job(garbled), "d", b"\xff{not json")
    fine = await queue.enqueue("noop", {})
    async with running_worker(queue, settings(redis_url, model)):
        await eventually(processed(queue), what="the valid job")

        async def two_dead() -> bool:
            return (await queue.stats("default")).dead == 2

        await eventually(two_dead, what="two dead jobs")
    errors = {r.job.id: r.last_error or "" for r in await queue.dead_jobs("default")}
    assert "unknown job type 'no.such.type'" in errors[unknown_id]
    assert "cannot decode job" in errors[garbled]
    fine_record = await queue.get_job(fine)
    assert fine_record is not None
    assert fine_record.state == "done"


async def test_queues_are_served_in_priority_order(
    queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    low = [await queue.enqueue("test.record", {"ledger": redis_url}, queue="low") for _ in range(5)]
    high = [
        await queue.enqueue("test.record", {"ledger": redis_url}, queue="high") for _ in range(5)
    ]
    s = settings(redis_url, "asyncio", queues=["high", "low"], concurrency=1, prefetch=0)
    async with running_worker(queue, s):
        await eventually(processed(queue, "low"), what="low jobs")

        async def all_done() -> bool:
            return (await queue.stats("low")).counters.get("processed", 0) == 5

        await eventually(all_done)
    finished = {}
    for job_id in high + low:
        record = await queue.get_job(job_id)
        assert record is not None
        finished[job_id] = record.finished_at
    assert max(finished[j] or 0 for j in high) <= min(finished[j] or 0 for j in low)


async def test_a_job_that_kills_its_process_is_retried_then_dead(
    queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    job_id = await queue.enqueue("test.exit_process", {"ledger": redis_url}, max_retries=2)
    follower = await queue.enqueue("test.record", {"ledger": redis_url})
    async with running_worker(queue, settings(redis_url, "process", concurrency=1)) as worker:
        await eventually(is_dead(queue, job_id), what="the poison job to be dead")
        await eventually(processed(queue), what="the job after it")
    record = await queue.get_job(job_id)
    assert record is not None
    assert record.attempts == 3
    assert "worker process died (exit code 13)" in (record.last_error or "")
    counts = runs(sync_redis)
    assert counts[job_id] == 3
    # The follower may have finished in the same child, unreported, before the crash: it then
    # runs again (at-least-once) but is never charged an attempt for another job's crash.
    assert counts[follower] >= 1
    follower_record = await queue.get_job(follower)
    assert follower_record is not None
    assert (follower_record.state, follower_record.attempts) == ("done", 1)
    assert worker.runner.replaced >= 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", MODELS)
async def test_per_type_options_apply_to_jobs_enqueued_without_their_own(
    model: str, queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    load_handlers(["tests.jobs"])  # the producer knows the type: max_retries comes from it
    job_id = await queue.enqueue("test.short_leash", {"ledger": redis_url})
    assert sync_redis.hget(queue.keys("default").job(job_id), "mr") == b"1"
    s = settings(redis_url, model)
    async with running_worker(queue, s):
        await eventually(
            is_dead(queue, job_id), what="the job to use its type's timeout and retries"
        )
    record = await queue.get_job(job_id)
    assert record is not None
    assert record.attempts == 2
    assert "0.3s" in (record.last_error or "")


@pytest.mark.parametrize("model", MODELS)
async def test_a_job_longer_than_its_lease_keeps_it_by_renewal(
    model: str, queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    job_id = await queue.enqueue("test.record", {"ledger": redis_url, "seconds": 2.0})
    s = settings(redis_url, model, lease=0.6, heartbeat_interval=0.1)
    async with running_worker(queue, s) as worker:
        await eventually(processed(queue), what="the long job")
    assert runs(sync_redis) == {job_id: 1}
    counters = (await queue.stats("default")).counters
    assert "reaped" not in counters
    assert "stale" not in counters
    assert worker.summary.get("leases_lost", 0) == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", MODELS)
async def test_handlers_see_the_asyncio_world_they_expect(
    model: str, queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    """A sync handler may call asyncio.run; an async one may use asyncio.timeout and tasks."""
    ids = [
        await queue.enqueue("test.sync_calls_asyncio_run", {"ledger": redis_url}),
        await queue.enqueue("test.async_uses_timeout_and_tasks", {"ledger": redis_url}),
    ]
    async with running_worker(queue, settings(redis_url, model)):

        async def both_done() -> bool:
            return (await queue.stats("default")).counters.get("processed", 0) == 2

        await eventually(both_done, what="both handlers to succeed")
    assert runs(sync_redis) == dict.fromkeys(ids, 1)
