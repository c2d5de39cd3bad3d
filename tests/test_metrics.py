"""Prometheus metrics add up to the work done: per model in process, and scraped over HTTP."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis as AsyncRedis

from jobrunner.config import Settings
from jobrunner.dev.redis_server import free_port
from jobrunner.job import Job, new_job_id
from jobrunner.metrics import WorkerMetrics
from jobrunner.queue import ReliableQueue
from jobrunner.registry import load_handlers
from jobrunner.scheduler.schedule import Schedule
from jobrunner.scheduler.service import Scheduler
from jobrunner.worker import Worker, make_runner
from tests.api_server import running_api
from tests.conftest import eventually, wait_until
from tests.test_worker_contract import MODELS, settings
from tests.test_worker_failures import enqueue as enqueue_sync
from tests.workers import WorkerProcess

WORKER_ONLY = ("worker_last_heartbeat_timestamp_seconds", "jobs_in_flight", "jobs_processed_total",
               "job_duration_seconds_bucket", "jobs_stale_completions_total")  # fmt: skip


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_worker_exports_its_series_at_zero_before_its_first_job(
    queue: ReliableQueue, redis_url: str
) -> None:
    """A dashboard reads 0, not "no data", and rate() sees the first jobs of each type."""
    s = settings(redis_url, "asyncio", queues=["default", "later"])
    metrics = WorkerMetrics()
    Worker(queue, load_handlers(s.imports), make_runner(s, "m"), s, metrics=metrics)
    for q in ("default", "later"):
        assert metrics.registry.get_sample_value("jobs_stale_completions_total", {"queue": q}) == 0
        for name in ("jobs_processed_total", "jobs_failed_total", "jobs_retried_total",
                     "jobs_dead_total", "jobs_cancelled_total", "job_duration_seconds_count",
                     "job_wait_seconds_count"):  # fmt: skip
            labels = {"type": "test.record", "queue": q}
            assert metrics.registry.get_sample_value(name, labels) == 0, (name, q)
    names = {family.name for family in metrics.registry.collect()}
    assert not names & {"queue_depth", "jobs_enqueued"}  # the API's


async def test_a_scheduler_exports_each_schedule_at_zero_before_it_fires(
    aredis: AsyncRedis,
) -> None:
    scheduler = Scheduler(aredis, [Schedule(name="nightly", type="noop", cron="0 3 * * *")])
    registry = scheduler.metrics.registry
    assert registry.get_sample_value("schedules_fired_total",
                                     {"schedule": "nightly", "queue": "default"}) == 0  # fmt: skip
    assert registry.get_sample_value("schedules_skipped_total", {"schedule": "nightly"}) == 0


@pytest.mark.parametrize("model", MODELS)
async def test_worker_metrics_count_every_outcome(
    model: str, queue: ReliableQueue, redis_url: str
) -> None:
    ledger = {"ledger": redis_url}
    jobs = [Job(id=new_job_id(), type="test.record", payload=ledger) for _ in range(20)]
    jobs.append(Job(id=new_job_id(), type="test.fail_times", payload={**ledger, "times": 1}))
    jobs.append(Job(id=new_job_id(), type="no.such.type"))
    await queue.enqueue_jobs(jobs)
    s = settings(redis_url, model)
    metrics = WorkerMetrics()
    worker = Worker(queue, load_handlers(s.imports), make_runner(s, "m"), s, metrics=metrics)
    task = asyncio.create_task(worker.run())
    try:

        async def settled() -> bool:
            stats = await queue.stats("default")
            return stats.counters.get("processed", 0) == 21 and stats.dead == 1

        await eventually(settled, what="21 jobs done and one dead")
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 30)
    q = "default"
    assert sample(metrics, "jobs_processed_total", type="test.record", queue=q) == 20
    assert sample(metrics, "jobs_processed_total", type="test.fail_times", queue=q) == 1
    assert sample(metrics, "jobs_failed_total", type="test.fail_times", queue=q) == 1
    assert sample(metrics, "jobs_retried_total", type="test.fail_times", queue=q) == 1
    assert sample(metrics, "jobs_dead_total", type="<unknown>", queue=q) == 1  # one label for all
    assert sample(metrics, "job_duration_seconds_count", type="test.record", queue=q) == 20
    assert sample(metrics, "job_wait_seconds_count", type="test.record", queue=q) == 20
    assert sample(metrics, "job_duration_seconds_count", type="test.fail_times", queue=q) == 2


def scrape(
    url: str, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, timeout=5, headers=headers)
    response.raise_for_status()
    text = response.text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.slow
def test_a_process_model_worker_reports_the_sum_of_its_children(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    n = 200
    enqueue_sync(redis_url, n, "test.record")
    port = free_port()
    worker = WorkerProcess(
        redis_url, tmp_path, "--model", "process", "--concurrency", "2",
        "--metrics-port", str(port),
    )  # fmt: skip
    try:
        worker.wait_ready()
        wait_until(
            lambda: int(sync_redis.hget("jr:{default}:stats", "processed") or 0) == n,
            what="every job processed",
        )
        key = ("jobs_processed_total", (("queue", "default"), ("type", "test.record")))
        wait_until(lambda: scrape(f"http://127.0.0.1:{port}/metrics").get(key) == n,
                   what="the scraped count to reach the jobs processed")  # fmt: skip
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0


def test_the_api_exports_enqueues_and_queue_depths_and_no_worker_series(redis_url: str) -> None:
    """A worker gauge the API never sets would read 0 there: a heartbeat 56 years old."""
    with running_api(Settings(redis_url=redis_url, queues=["default", "later"])) as base:
        before = scrape(f"{base}/metrics", base.headers)
        with httpx.Client(base_url=base, headers=base.headers) as client:
            client.post("/jobs", json={"jobs": [{"type": "noop"}] * 3 + [{"type": "email"}]})
            client.post("/jobs", json={"type": "noop", "delay": 60, "queue": "later"})
        samples = scrape(f"{base}/metrics", base.headers)
    assert samples[("jobs_enqueued_total", (("queue", "default"), ("type", "noop")))] == 3
    assert samples[("jobs_enqueued_total", (("queue", "default"), ("type", "email")))] == 1
    assert samples[("queue_depth", (("queue", "default"), ("state", "ready")))] == 4
    assert samples[("queue_depth", (("queue", "later"), ("state", "scheduled")))] == 1
    assert samples[("queue_depth", (("queue", "later"), ("state", "ready")))] == 0
    # Every registered type's enqueue counter was there, at zero, before the first enqueue.
    assert before[("jobs_enqueued_total", (("queue", "later"), ("type", "test.record")))] == 0
    assert samples[("jobs_enqueued_total", (("queue", "later"), ("type", "test.record")))] == 0
    assert not {name for name, _ in samples} & set(WORKER_ONLY)
