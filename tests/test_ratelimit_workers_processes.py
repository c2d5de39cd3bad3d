"""Execution limits hold across worker processes: three real workers (asyncio, thread and process
models) share one burst of rate- and concurrency-limited jobs, and the times each handler
recorded show the limits held, every deferred job ran once, and no deferral cost an attempt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobrunner.job import make_job
from jobrunner.keys import QueueKeys
from jobrunner.ratelimit.measure import max_in_window, max_overlap
from jobrunner.ratelimit.spec import parse_limit
from tests.conftest import wait_until
from tests.limited_jobs import LIMITS, ledger_key
from tests.test_cli import with_queue
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

MODELS = ("asyncio", "thread", "process")
JOBS = {"limited.gcra": 60, "limited.token_bucket": 50, "limited.concurrency": 30}
HOLD = 0.1  # seconds each concurrency-limited job holds its slot
# A handler starts a little after the limiter admitted its job (hand-off to a thread, a pipe to a
# child process, a loaded machine). If every start is at most JITTER after its admission, a
# window of starts JITTER shorter than W holds only admissions from one window of W, so it may
# hold no more than the limit's bound for W.
JITTER = 0.25


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    # Each worker reserves at most concurrency + 20, so the burst spreads over all three, and
    # each holds more than it may run soon: those go back to Redis (the defer script) rather
    # than only waiting in the worker for a slot under 0.25 s away.
    env = {"JOBRUNNER_PREFETCH": "20"}
    procs = []
    for model in MODELS:
        concurrency = "2" if model == "process" else "4"
        args = ("--import", "tests.limited_jobs", "--model", model, "--concurrency", concurrency)
        procs.append(WorkerProcess(redis_url, tmp_path, *args, name=f"w-{model}", env=env))
    try:
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs:
            proc.kill()


def records(client: redis.Redis, job_type: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(ledger_key(job_type), 0, -1)]


def test_execution_limits_hold_across_worker_processes(
    workers: list[WorkerProcess], redis_url: str, sync_redis: redis.Redis
) -> None:
    jobs = [make_job(job_type, {"ledger": redis_url,
                                "seconds": HOLD if job_type == "limited.concurrency" else 0})
            for job_type, n in JOBS.items() for _ in range(n)]  # fmt: skip
    with_queue(redis_url, lambda q: q.enqueue_jobs(jobs))  # one burst, far over every limit

    keys = QueueKeys("default")

    def all_done() -> bool:
        with sync_redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.hget(keys.job(job.id), "s")
            return all(state == b"done" for state in pipe.execute())

    wait_until(all_done, 60, what="every limited job to complete")

    for job_type, n in JOBS.items():
        runs = records(sync_redis, job_type)
        ids = {job.id for job in jobs if job.type == job_type}
        # Every job ran exactly once, on its first attempt: deferral was never charged.
        assert sorted(r["id"] for r in runs) == sorted(ids), job_type
        assert {r["attempt"] for r in runs} == {1}, job_type
        assert len({r["pid"] for r in runs}) >= 2, f"{job_type}: one process ran everything"
        spec = parse_limit(LIMITS[job_type])
        if spec.algorithm == "concurrency":
            intervals = [(r["start"], r["end"]) for r in runs]
            assert max_overlap(intervals) <= spec.limit, job_type
            assert max_overlap(intervals) == spec.limit, f"{job_type}: the limit never bound"
        else:
            starts = [r["start"] for r in runs]
            for window in (spec.period, 2 * spec.period):
                bound = spec.bound(window)
                assert bound is not None
                assert max_in_window(starts, window - JITTER) <= bound, (job_type, window)
            # The burst could not all start within the first window: the limit did bind.
            first = spec.bound(spec.period)
            assert first is not None
            assert max(starts) - min(starts) >= (n - first) / spec.rate - JITTER, job_type

    hashes = [sync_redis.hmget(keys.job(job.id), "a", "s") for job in jobs]
    assert all(h == [b"1", b"done"] for h in hashes)  # Redis agrees: one attempt each
    counters = with_queue(redis_url, lambda q: q.stats("default")).counters
    assert counters["processed"] == len(jobs)
    assert counters["deferred"] > 0
    assert counters.get("retried", 0) == 0
    assert counters.get("dead", 0) == 0
