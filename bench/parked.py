"""Jobs parked where no worker reads them, then handed over at once and the drain timed.

Both ``bench.results_cost`` and ``bench.drain_versus`` (and ``bench/test_drain.py``'s way of
doing it) lay N jobs out as enqueue would, on a list beside the ready list (not timed), rename
it into place, wake the workers, and time until the queue's ``processed`` counter has grown by
N. The 2 ms poll bounds the timing error of a round.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from jobrunner.job import Job, encode_job, new_job_id
from jobrunner.keys import QueueKeys

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
