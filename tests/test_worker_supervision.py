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
from tests.conftest import eventually, wait_until
from tests.test_worker_contract import running_worker, runs, settings
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


async def test_a_job_taken_over_while_it_waited_for_its_start_mark_frees_its_slot_for_the_next(
    queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis, monkeypatch: Any
) -> None:
    """Mid-failover, a start mark can find its lease taken over; the jobs queued behind it in
    the worker must still get the slot (they once waited there forever, leases renewed)."""
    jobs = [make_job("test.record", {"ledger": redis_url, "seconds": 0.1}) for _ in range(6)]
    await queue.enqueue_jobs(jobs)
    start, ack_and_start = queue.start, queue.ack_and_start
    taken: list[str] = []

    def take_over_once(pairs: Any) -> list[str]:
        """The first job marked through the marker finds its lease gone, as after a takeover."""
        if taken or not pairs:
            return []
        taken.append(pairs[0][0])
        return [pairs[0][0]]

    async def start_once_lost(name: str, pairs: Any) -> list[str]:
        gone = take_over_once(pairs)
        return gone + await start(name, [p for p in pairs if p[0] not in gone])

    async def ack_and_start_once_lost(name: str, done: Any, pairs: Any) -> Any:
        gone = take_over_once(pairs)
        stale, lost = await ack_and_start(name, done, [p for p in pairs if p[0] not in gone])
        return stale, gone + lost

    monkeypatch.setattr(queue, "start", start_once_lost)
    monkeypatch.setattr(queue, "ack_and_start", ack_and_start_once_lost)
    # one slot, the rest of the jobs prefetched: each waits in the worker for its start mark
    s = settings(redis_url, "asyncio", concurrency=1, prefetch=5, lease=30.0)
    async with running_worker(queue, s):

        async def the_others_ran() -> bool:
            return len(runs(sync_redis)) == len(jobs) - 1

        await eventually(the_others_ran, timeout=10, what="every job but the taken one to run")
    assert len(taken) == 1
    assert taken[0] not in runs(sync_redis)  # never started here: its new holder runs it
