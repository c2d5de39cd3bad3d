"""Real worker processes, real signals: SIGKILL loses nothing, SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.job import Job, new_job_id
from jobrunner.queue import ReliableQueue
from tests.conftest import wait_until
from tests.workers import WorkerProcess, child_pids, kill_quietly

MODELS = ["asyncio", "thread", "process"]


def enqueue(redis_url: str, n: int, job_type: str, **payload: object) -> list[str]:
    """Enqueue through the library's own API (run on a private event loop)."""
    jobs = [
        Job(id=new_job_id(), type=job_type, payload={"ledger": redis_url, **payload})
        for _ in range(n)
    ]

    async def go() -> None:
        aclient = AsyncRedis.from_url(redis_url)
        try:
            await ReliableQueue(aclient).enqueue_jobs(jobs)
        finally:
            await aclient.aclose()

    asyncio.run(go())
    return [j.id for j in jobs]


def processed(client: redis.Redis) -> int:
    return int(client.hget("jr:{default}:stats", "processed") or 0)


def runs(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall("test:runs").items()}


def worker_args(model: str) -> tuple[str, ...]:
    return ("--model", model, "--concurrency", "4", "--lease", "1.5", "--grace", "5")


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_sigkilled_worker_loses_nothing(
    model: str, redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    n = 300
    ids = enqueue(redis_url, n, "test.record", seconds=0.01)
    env = {"JOBRUNNER_PREFETCH": "4"}
    first = WorkerProcess(redis_url, tmp_path, *worker_args(model), name="first", env=env)
    try:
        first.wait_ready()
        wait_until(lambda: processed(sync_redis) >= 60, what="some jobs processed")
        children = child_pids(first.pid)
        first.kill()  # SIGKILL: no chance to release anything
        for pid in children:  # orphaned children would finish their batch; end them too
            kill_quietly(pid)
        in_flight = sync_redis.zcard("jr:{default}:reserved")
        done_at_kill = processed(sync_redis)
    finally:
        first.kill()
    second = WorkerProcess(redis_url, tmp_path, *worker_args(model), name="second", env=env)
    try:
        second.wait_ready()
        wait_until(lambda: processed(sync_redis) == n, timeout=60, what="every job processed")
    finally:
        second.signal(signal.SIGTERM)
        assert second.wait() == 0
    counts = runs(sync_redis)
    lost = [i for i in ids if counts.get(i, 0) == 0]
    duplicates = sum(counts.values()) - len(counts)
    window = 4 + 4  # concurrency + prefetch: the most one worker can hold
    print(
        f"sigkill[{model}]: sent={n} done_before_kill={done_at_kill} "
        f"in_flight_at_kill={in_flight} completed={len(counts)} lost={len(lost)} "
        f"duplicates={duplicates}"
    )
    assert lost == []
    assert 0 < in_flight <= window
    assert duplicates <= window
    assert sync_redis.zcard("jr:{default}:reserved") == 0
    assert sync_redis.llen("jr:{default}:ready") == 0


@pytest.mark.slow
def test_killed_process_model_child_is_replaced_and_its_jobs_finish(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    n = 200
    ids = enqueue(redis_url, n, "test.record", seconds=0.01)
    worker = WorkerProcess(redis_url, tmp_path, *worker_args("process"), "--concurrency", "2")
    try:
        worker.wait_ready()
        wait_until(lambda: processed(sync_redis) >= 20, what="some jobs processed")
        victims = child_pids(worker.pid)
        assert len(victims) == 2
        kill_quietly(victims[0])
        wait_until(lambda: processed(sync_redis) == n, timeout=60, what="every job processed")
        assert worker.proc.poll() is None, "the worker must survive a child's death"
        assert len(child_pids(worker.pid)) == 2
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    counts = runs(sync_redis)
    assert [i for i in ids if i not in counts] == []


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_sigterm_finishes_short_jobs_returns_long_ones_and_exits_zero(
    model: str, redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    long_ids = enqueue(redis_url, 2, "test.long_first_time", seconds=60)
    worker = WorkerProcess(
        redis_url, tmp_path, "--model", model, "--concurrency", "4", "--grace", "1.5",
        env={"JOBRUNNER_PREFETCH": "0"},
    )  # fmt: skip
    try:
        worker.wait_ready()
        wait_until(lambda: sync_redis.zcard("jr:{default}:reserved") == 2, what="long jobs running")
        short_ids = enqueue(redis_url, 2, "test.record", seconds=0.5)

        def started(job_id: str) -> bool:  # a start mark: its handler runs (reserved is not)
            return bool(sync_redis.hexists(f"jr:{{default}}:job:{job_id}", "st"))

        wait_until(lambda: all(started(i) for i in short_ids), what="short jobs running")
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        worker.kill()
    counts = runs(sync_redis)
    assert {i: counts.get(i) for i in short_ids} == dict.fromkeys(short_ids, 1)
    assert all(i not in counts for i in long_ids)
    states = {i: sync_redis.hget(f"jr:{{default}}:job:{i}", "s") for i in long_ids}
    assert states == dict.fromkeys(long_ids, b"ready")
    [summary] = worker.log_events("worker stopped")
    assert (summary["completed"], summary["requeued"]) == (2, 2)
    job_lines = {line["job_id"]: line for line in worker.log_events("job")}
    assert set(job_lines) == set(short_ids)  # one line per job outcome; none for those handed back
    for line in job_lines.values():
        assert line["outcome"] == "ok"
        assert line["type"] == "test.record"
        assert line["attempt"] == 1
        assert line["run_ms"] >= 500
        assert {"worker", "wait_ms", "timestamp", "level"} <= set(line)

    successor = WorkerProcess(redis_url, tmp_path, "--model", model, name="successor")
    try:
        successor.wait_ready()
        wait_until(lambda: all(i in runs(sync_redis) for i in long_ids), what="long jobs done")
    finally:
        successor.signal(signal.SIGTERM)
        assert successor.wait() == 0


@pytest.mark.slow
def test_second_signal_forces_a_fast_exit_without_losing_jobs(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    long_ids = enqueue(redis_url, 3, "test.long_first_time", seconds=60)
    worker = WorkerProcess(redis_url, tmp_path, "--grace", "60")
    try:
        worker.wait_ready()
        wait_until(lambda: sync_redis.zcard("jr:{default}:reserved") == 3, what="jobs running")
        worker.signal(signal.SIGTERM)
        wait_until(lambda: worker.log_events("worker stopping"), what="the first signal")
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0  # far inside the 60 s grace period
    finally:
        worker.kill()
    assert sync_redis.llen("jr:{default}:ready") == 3
    assert sync_redis.zcard("jr:{default}:reserved") == 0
    assert {sync_redis.hget(f"jr:{{default}}:job:{i}", "s") for i in long_ids} == {b"ready"}
