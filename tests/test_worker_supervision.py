"""A worker whose own loop fails on an error it did not expect stops and hands its jobs back,
rather than live on holding leases its heartbeat renews for jobs it will never run."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from jobrunner.errors import WorkerFailed
from jobrunner.job import make_job
from jobrunner.queue import ReliableQueue
from jobrunner.registry import load_handlers
from jobrunner.worker import Worker, make_runner
from tests.conftest import wait_until
from tests.test_worker_contract import runs, settings
from tests.test_worker_failures import enqueue
from tests.workers import WorkerProcess


async def test_a_worker_whose_start_marker_fails_unexpectedly_hands_its_jobs_back_and_stops(
    queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis, monkeypatch: Any
) -> None:
    jobs = [make_job("test.record", {"ledger": redis_url, "seconds": 0.05}) for _ in range(40)]
    await queue.enqueue_jobs(jobs)

    ack_and_start = queue.ack_and_start

    async def broken_start(*args: Any) -> Any:
        raise RuntimeError("a bug in the start marks")

    async def broken_ack_and_start(name: str, done: Any, starts: Any) -> Any:
        if starts:  # acks alone (queue.ack) still work
            raise RuntimeError("a bug in the start marks")
        return await ack_and_start(name, done, starts)

    # Jobs beyond the runner's room wait for a start mark from the marker (not from reserve):
    # the marker's calls fail with what no Redis error handler catches.
    monkeypatch.setattr(queue, "start", broken_start)
    monkeypatch.setattr(queue, "ack_and_start", broken_ack_and_start)
    s = settings(redis_url, "asyncio", concurrency=2, prefetch=8, lease=30.0)
    worker = Worker(queue, load_handlers(s.imports), make_runner(s, "w"), s)
    with pytest.raises(WorkerFailed, match="a bug in the start marks"):
        await asyncio.wait_for(worker.run(), 30)
    # No lease is left held (a lease of 30 s would keep them from every other worker), and
    # nothing is lost: each job ran once or waits to run.
    assert sync_redis.zcard("jr:{default}:reserved") == 0
    ran = runs(sync_redis)
    waiting = (await queue.stats("default")).ready
    assert set(ran.values()) <= {1}
    assert len(ran) + waiting == len(jobs)


def test_sigusr1_makes_a_worker_log_where_its_jobs_are_and_what_each_task_awaits(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    enqueue(redis_url, 1, "test.hang_async")
    worker = WorkerProcess(redis_url, tmp_path, "--model", "asyncio", "--concurrency", "2")
    try:
        worker.wait_ready()
        wait_until(lambda: runs(sync_redis), what="the job to start")
        worker.signal(signal.SIGUSR1)
        wait_until(lambda: '"worker state"' in worker.log_text(), what="the state line")
    finally:
        worker.signal(signal.SIGTERM)
        worker.wait()
    [state] = [json.loads(line) for line in worker.log_text().splitlines()
               if '"worker state"' in line]  # fmt: skip
    assert (state["in_flight"], state["running"], state["unacked"]) == (1, 1, 0)
    assert any("_fetch_loop" in chain for chain in state["tasks"].values())
    assert {"start-marker", "ack-flusher", "heartbeat"} <= set(state["tasks"])
