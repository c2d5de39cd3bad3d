"""Jobs parked where no worker reads them, then handed over at once and the drain timed.

Both ``bench.results_cost`` and ``bench.drain_versus`` (and ``bench/test_drain.py``'s way of
doing it) lay N jobs out as enqueue would, on a list beside the ready list (not timed), rename
it into place, wake the workers, and time until the queue's ``processed`` counter has grown by
N. The 2 ms poll bounds the timing error of a round.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import redis

from jobrunner.connection import sync_redis
from jobrunner.job import Job, encode_job, new_job_id
from jobrunner.keys import QueueKeys, workers_key

ROOT = Path(__file__).resolve().parents[1]

QUEUE = QueueKeys("default")
PARKED = QUEUE.ready + ":parked"


def park(
    client: redis.Redis, job_type: str, payload: Any, count: int, *, waited: bool = False
) -> None:
    """``count`` jobs of ``job_type``; ``waited`` flags each as waited for (``client.result``)."""
    with client.pipeline(transaction=False) as pipe:
        for _ in range(count):
            job = Job(id=new_job_id(), type=job_type, payload=payload)
            fields: dict[str, Any] = {"d": encode_job(job), "mr": 3, "a": 0, "s": "ready"}
            if waited:
                fields["w"] = 1
            pipe.hset(QUEUE.job(job.id), mapping=fields)
            pipe.lpush(PARKED, job.id)
        pipe.execute()


def drain_seconds(client: redis.Redis, count: int, timeout: float = 300.0) -> float:
    """Hand the parked list to the workers; seconds until ``processed`` grew by ``count``."""
    target = int(client.hget(QUEUE.stats, "processed") or 0) + count
    started = time.perf_counter()
    client.rename(PARKED, QUEUE.ready)  # idle workers block on the ready list: they wake
    deadline = time.monotonic() + timeout
    while int(client.hget(QUEUE.stats, "processed") or 0) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the drain did not finish in {timeout:.0f} s")
        time.sleep(0.002)  # the poll period bounds the timing error (2 ms a round)
    return time.perf_counter() - started


@contextmanager
def worker_process(
    redis_url: str,
    *,
    model: str = "asyncio",
    tree: Path = ROOT,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[psutil.Process]:
    """One worker of ``model`` run from ``tree``'s code with its default settings, beating
    (ready) when this yields; stopped (SIGTERM) after."""
    env = {**os.environ, "PYTHONPATH": str(tree), **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.cli", "worker", "--redis-url", redis_url,
         "--model", model, "--import", "jobrunner.lab.handlers.demo", "--log-level", "warning",
         *extra_args],
        cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = sync_redis(redis_url)  # a cluster client where the URL names a cluster
    try:
        deadline = time.monotonic() + 60
        while not client.zcard(workers_key()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the {model} worker from {tree} did not start")
            time.sleep(0.05)  # start-up poll: its first heartbeat is the readiness signal
        yield psutil.Process(proc.pid)
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)


def head_commit() -> str:
    """This checkout's commit, short, for a report."""
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """``rev`` checked out in a temporary git worktree (this checkout's history), removed after:
    the code before a change, to run beside this one."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False, capture_output=True)  # fmt: skip
