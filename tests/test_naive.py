"""The naive LPUSH/BRPOP queue: it works while nothing goes wrong, and loses what a kill catches."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.backoff import Constant
from jobrunner.job import Job, encode_job, new_job_id
from jobrunner.keys import naive_key
from jobrunner.lab.naive import NaiveQueue, NaiveWorker
from jobrunner.registry import Registry, load_handlers
from tests.conftest import wait_until

POLL = 0.05  # BRPOP timeout: how quickly an idle worker notices request_stop()


@pytest.fixture
def nq(aredis: AsyncRedis) -> NaiveQueue:
    return NaiveQueue(aredis)


async def drain(worker: NaiveWorker, expected: int) -> dict[str, int]:
    """Run the worker until it has finished ``expected`` jobs, then stop it; return its counts."""
    task = asyncio.create_task(worker.run())
    deadline = asyncio.get_running_loop().time() + 10
    while worker.counts["completed"] + worker.counts["failed"] < expected:
        assert not task.done(), task.result()
        assert asyncio.get_running_loop().time() < deadline, f"stuck at {worker.counts}"
        await asyncio.sleep(0.01)  # poll interval, under the deadline above
    worker.request_stop()
    return await asyncio.wait_for(task, 5)


async def test_jobs_are_processed_and_counts_add_up(nq: NaiveQueue) -> None:
    jobs = [Job(id=new_job_id(), type="noop") for _ in range(20)]
    jobs += [Job(id=new_job_id(), type="email", payload={"latency": 0.001}) for _ in range(5)]
    jobs += [Job(id=new_job_id(), type="sleep", payload={"seconds": 0.01}) for _ in range(3)]
    await nq.enqueue_jobs(jobs)
    await nq.enqueue("noop", {"one": "more"})
    assert await nq.depth("default") == 29

    worker = NaiveWorker(
        nq, load_handlers(["jobrunner.lab.handlers.demo"]), concurrency=4, poll_timeout=POLL
    )
    counts = await drain(worker, 29)

    assert counts == {"completed": 29, "failed": 0, "retried": 0}
    assert await nq.depth("default") == 0
    assert await nq.failed("default") == []


async def test_queues_are_popped_in_priority_order(nq: NaiveQueue) -> None:
    seen: list[str] = []
    registry = Registry()

    @registry.handler("record")
    async def record(payload: Any) -> None:
        seen.append(payload)

    for i in range(3):
        await nq.enqueue("record", f"low{i}", queue="low")
        await nq.enqueue("record", f"high{i}", queue="high")

    worker = NaiveWorker(nq, registry, queues=["high", "low"], poll_timeout=POLL)
    await drain(worker, 6)

    assert seen == ["high0", "high1", "high2", "low0", "low1", "low2"]


async def test_failing_job_is_retried_in_process_then_lands_in_failed(nq: NaiveQueue) -> None:
    calls: list[int] = []
    registry = Registry()

    @registry.handler("broken", backoff=Constant(base=0.01))
    def broken(payload: Any) -> None:
        calls.append(1)
        raise RuntimeError("smtp is down")

    await nq.enqueue("broken", max_retries=2)
    worker = NaiveWorker(nq, registry, poll_timeout=POLL)
    counts = await drain(worker, 1)

    assert len(calls) == 3  # the first run and max_retries=2 retries, all in this process
    assert counts == {"completed": 0, "failed": 1, "retried": 2}
    [entry] = await nq.failed("default")
    assert entry.attempts == 3
    assert "RuntimeError: smtp is down" in entry.error
    assert '"type":"broken"' in entry.job


async def test_flaky_job_succeeds_on_a_retry(nq: NaiveQueue) -> None:
    registry = Registry()
    attempts: list[int] = []

    @registry.handler("flaky_once", backoff=Constant(base=0.01))
    async def flaky_once(payload: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first time unlucky")

    await nq.enqueue("flaky_once")
    counts = await drain(NaiveWorker(nq, registry, poll_timeout=POLL), 1)

    assert counts == {"completed": 1, "failed": 0, "retried": 1}
    assert await nq.failed("default") == []


async def test_unknown_type_and_garbage_go_to_failed_without_crashing(
    nq: NaiveQueue, aredis: AsyncRedis
) -> None:
    await nq.enqueue("no_such_type")
    await aredis.lpush(nq.key("default"), b"{not json")
    await nq.enqueue("noop")

    counts = await drain(
        NaiveWorker(nq, load_handlers(["jobrunner.lab.handlers.demo"]), poll_timeout=POLL), 3
    )

    assert counts == {"completed": 1, "failed": 2, "retried": 0}
    garbage, unknown = await nq.failed("default")  # most recent first
    assert "unknown job type 'no_such_type'" in unknown.error
    assert garbage.job == "{not json"
    assert "cannot decode job" in garbage.error


async def test_request_stop_finishes_the_current_job_and_leaves_the_rest(nq: NaiveQueue) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    registry = Registry()

    @registry.handler("gate")
    async def gate(payload: Any) -> None:
        started.set()
        await release.wait()

    await nq.enqueue("gate")
    await nq.enqueue("gate")
    worker = NaiveWorker(nq, registry, poll_timeout=POLL)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    worker.request_stop()
    release.set()

    assert await asyncio.wait_for(task, 5) == {"completed": 1, "failed": 0, "retried": 0}
    assert await nq.depth("default") == 1


# ---------------------------------------------------------------- THE BASELINE: it loses jobs


def test_baseline_sigkill_mid_job_loses_every_job_in_flight(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    concurrency = sent = 4
    key = naive_key("default")
    ids = [new_job_id() for _ in range(sent)]
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.lab.naive", "--redis-url", redis_url,
         "--concurrency", str(concurrency), "--queues", "default",
         "--import", "jobrunner.lab.handlers.demo"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for job_id in ids:  # 30 s jobs: still running when the worker is killed
            job = Job(id=job_id, type="sleep", payload={"seconds": 30}, timeout=60)
            sync_redis.lpush(key, encode_job(job))
        wait_until(
            lambda: sync_redis.llen(key) == 0 or worker.poll() is not None,
            timeout=15,
            what="the naive worker to pop every job",
        )
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        in_flight = sent - int(sync_redis.llen(key))  # popped: only in the worker's memory now
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()

    assert sync_redis.llen(key) == 0
    assert sync_redis.llen(key + ":failed") == 0
    lost = sent - len(_job_ids_left(sync_redis, ids))
    assert sync_redis.dbsize() == 0  # nothing anywhere: no trace the jobs ever existed
    assert in_flight == sent
    assert lost == in_flight
    with capsys.disabled():
        print(f"\nnaive: sent={sent} in_flight_at_kill={in_flight} lost={lost}")


def _job_ids_left(r: redis.Redis, ids: list[str]) -> set[str]:
    """The ids that still appear in any list in the database."""
    items = [item for key in r.scan_iter(_type="list") for item in r.lrange(key, 0, -1)]
    return {job_id for job_id in ids if any(job_id.encode() in item for item in items)}
