"""A queue draining on a Redis Cluster while its slot moves to another master (notebook 9).

Jobs are enqueued, workers drain them, and once ``move_at`` of them are done the queue's slot
is moved key by key (``jobrunner.dev.slot_move``). The finished count is sampled all along, so
the plot shows the drain before, during and after the move; the outcome says whether every
job was done and where the slot ended up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from jobrunner.dev.redis_cluster import RedisClusterServer
from jobrunner.dev.slot_move import SlotMove
from jobrunner.dev.stack import Stack
from jobrunner.keys import QueueKeys

# registers email: a process whose registry holds other handlers refuses a type it does not know
from jobrunner.lab.handlers import demo as _demo  # noqa: F401
from jobrunner.sync_client import SyncClient

QUEUE = "emails"


def drain_through_a_move(
    jobs: int,
    *,
    workers: int = 2,
    latency: float = 0.002,
    move_at: float = 0.3,
    batch: int = 2,
    pause: float = 0.05,
    timeout: float = 300.0,
    on_sample: Callable[[int], None] = lambda finished: None,
) -> dict[str, Any]:
    """Drain ``jobs`` e-mail jobs (``latency`` s each) on a cluster of its own with
    ``workers`` asyncio workers; move the queue's slot once ``move_at`` of them are done,
    ``batch`` keys every ``pause`` s, job hashes first. ``on_sample(finished)`` is called at
    every sample (a progress bar). Returns the samples (t, finished), the move's start and end
    (s since the drain began), its keys and nodes, and the final counts."""
    keys = QueueKeys(QUEUE)
    with RedisClusterServer() as cluster:
        with SyncClient.from_url(cluster.url) as client:
            client.pause(QUEUE)  # every worker up before the clock starts
            spec = {"type": "email", "payload": {"latency": latency}, "queue": QUEUE}
            for start in range(0, jobs, 1000):  # one script call per 1,000
                client.enqueue_many([spec] * min(1000, jobs - start))
        stack = Stack(workers=workers, model="asyncio", api=False, redis_url=cluster.url,
                      queues=[QUEUE], worker_metrics=False)  # fmt: skip
        with stack, SyncClient.from_url(cluster.url) as client:
            move = SlotMove(cluster, keys.ready)
            samples: list[tuple[float, int]] = []
            window: dict[str, float] = {}
            client.resume(QUEUE)
            started = time.monotonic()

            def run_the_move() -> None:
                move.run(batch=batch, pause=pause)  # the job hashes first
                window["end"] = time.monotonic() - started

            mover = threading.Thread(target=run_the_move, name="move-slot")
            while (finished := _finished(client)) < jobs:
                now = time.monotonic() - started
                samples.append((now, finished))
                on_sample(finished)
                if "start" not in window and finished >= move_at * jobs:
                    window["start"] = now
                    mover.start()
                if now > timeout:
                    raise TimeoutError(f"{jobs - finished} jobs unfinished after {timeout} s")
                time.sleep(0.05)  # the sampling period
            samples.append((time.monotonic() - started, finished))
            on_sample(finished)
            mover.join()
            stats = client.stats(QUEUE).counters
            master = move.owner()
    return {
        "samples": samples, "move_start": window["start"], "move_end": window["end"],
        "keys_moved": move.moved, "from_port": move.source_port, "to_port": move.target_port,
        "master_after": master, "jobs": jobs, "processed": int(stats.get("processed", 0)),
        "dead": int(stats.get("dead", 0)),
    }  # fmt: skip


def _finished(client: SyncClient) -> int:
    counters = client.stats(QUEUE).counters
    return int(counters.get("processed", 0)) + int(counters.get("dead", 0))


def rates(result: dict[str, Any]) -> dict[str, float]:
    """Jobs finished a second before, during and after the move (slopes of the samples)."""
    start, end = result["move_start"], result["move_end"]
    spans = {"before": (0.0, start), "during": (start, end),
             "after": (end, result["samples"][-1][0])}  # fmt: skip
    out = {}
    for name, (a, b) in spans.items():
        inside = [(t, n) for t, n in result["samples"] if a <= t <= b]
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            out[name] = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    return out


def longest_stall(result: dict[str, Any]) -> float:
    """The longest time, within the move, that no job finished (s)."""
    start, end = result["move_start"], result["move_end"]
    longest, since = 0.0, start
    last = None
    for t, finished in result["samples"]:
        if t < start:
            last = finished
            continue
        if last is not None and finished != last:
            since = t
        longest = max(longest, min(t, end) - since)
        last = finished
        if t >= end:
            break
    return longest
