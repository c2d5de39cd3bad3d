"""Sharded queues: one named queue spread over N queues: ``name`` itself, ``name~1`` ...
``name~N-1``.

Why: a queue's keys share one hash tag, so on Redis Cluster a queue lives on one master and
uses one Redis core however large the cluster. Its shards are queues of their own (each with
its tag, so spread over the cluster's slots), and everything that holds for a queue holds for
each shard: leases, fencing, retries, delays, dead letters. What becomes per shard is said
where it matters: ordering (first in, first out within a shard), a batch's all-or-nothing
(per shard on a cluster), a queue's bound (``max_depth``, checked per shard).

A queue is declared sharded in Redis (``jr:shards``, name -> N; ``jobrunner shard NAME N``),
so producers and workers read one truth (each re-reads it every ``REFRESH`` seconds). N may
grow, never shrink: a shard that stopped being served would strand its jobs. Shard 0 is the
queue itself, so a queue that gains shards keeps serving the jobs it already held.

A job goes to shard crc32(its idempotency key, else the local part of its id) mod N: a fresh
uuid spreads jobs evenly, and a chosen id or key always lands on the same shard (while N does
not change), so its existence check and idempotency record still decide. The id a producer
gets back names the shard (``<local>@name~k``), so reading the job is one read, as always.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from jobrunner.calls import NewJob, QueueStats
from jobrunner.job import QUEUE_SEPARATOR, job_id_in

SHARD_SEPARATOR = "~"  # URL-safe (unreserved), and in no queue name: an id names its shard
REFRESH = 5.0  # seconds a producer or worker trusts its copy of the shard counts
MAX_SHARDS = 1024


def shard_name(queue: str, index: int) -> str:
    return f"{queue}{SHARD_SEPARATOR}{index}" if index else queue


def logical_of(name: str) -> str:
    """The queue a shard belongs to (a queue that is not a shard is its own)."""
    return name.partition(SHARD_SEPARATOR)[0]


def shards_of(queue: str, counts: Mapping[str, int]) -> list[str]:
    """The queues that hold ``queue``'s jobs: its shards, or itself when it has none."""
    n = counts.get(queue, 0)
    return [shard_name(queue, i) for i in range(n)] if n > 1 else [queue]


def expand(queues: Iterable[str], counts: Mapping[str, int], turn: int = 0) -> list[str]:
    """Queues in priority order with each sharded one replaced by its shards, rotated by
    ``turn``: a worker that reserves from the first shards first would starve the last."""
    out: list[str] = []
    for queue in queues:
        shards = shards_of(queue, counts)
        k = turn % len(shards)
        out += shards[k:] + shards[:k]
    return out


def local_part(job_id: str) -> str:
    local, sep, _ = job_id.rpartition(QUEUE_SEPARATOR)
    return local if sep and local else job_id


def place(item: NewJob, counts: Mapping[str, int]) -> NewJob:
    """The job on its shard (its queue and id naming it), or the job as it is."""
    job = item.job
    n = counts.get(job.queue, 0)
    if n <= 1:
        return item
    local = local_part(job.id)
    key = item.idempotency_key if item.idempotency_key is not None else local
    shard = shard_name(job.queue, zlib.crc32(key.encode()) % n)
    placed = msgspec.structs.replace(job, queue=shard, id=job_id_in(shard, local))
    return msgspec.structs.replace(item, job=placed)


def parse_counts(raw: Mapping[Any, Any]) -> dict[str, int]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return {text(k): int(v) for k, v in raw.items()}


class ShardCounts:
    """A producer's or worker's copy of the shard counts, re-read every ``refresh`` seconds
    by whoever holds it (``due`` says when; ``update`` takes what was read)."""

    def __init__(self, refresh: float = REFRESH, clock: Callable[[], float] = time.monotonic):
        self.refresh = refresh
        self._clock = clock
        self.counts: dict[str, int] = {}
        self._read_at = -float("inf")

    def due(self) -> bool:
        return self._clock() - self._read_at >= self.refresh

    def update(self, raw: Mapping[Any, Any]) -> dict[str, int]:
        self.counts = parse_counts(raw)
        self._read_at = self._clock()
        return self.counts


def check_shards(queue: str, n: int, current: int) -> None:
    """A declaration that may be made: a plain queue name, 2..MAX_SHARDS, never fewer."""
    if SHARD_SEPARATOR in queue:
        raise ValueError(f"{queue!r} is a shard's name: declare shards on the queue itself")
    if not 2 <= n <= MAX_SHARDS:
        raise ValueError(f"a sharded queue has 2 to {MAX_SHARDS} shards, not {n}")
    if n < current:
        raise ValueError(
            f"queue {queue!r} has {current} shards: their number may grow, never shrink "
            "(a shard no longer served would strand its jobs)"
        )


def combined(queue: str, shards: list[QueueStats]) -> QueueStats:
    """A sharded queue's stats as one queue's (depths and counters summed; paused when every
    shard is), each shard's kept beside; a queue with one shard is that shard."""
    if len(shards) == 1:
        return shards[0]
    counters: dict[str, int] = {}
    for shard in shards:
        for name, n in shard.counters.items():
            counters[name] = counters.get(name, 0) + n
    return QueueStats(
        name=queue, ready=sum(s.ready for s in shards), scheduled=sum(s.scheduled for s in shards),
        reserved=sum(s.reserved for s in shards), dead=sum(s.dead for s in shards),
        counters=counters, paused=all(s.paused for s in shards), shards=shards,
    )  # fmt: skip
