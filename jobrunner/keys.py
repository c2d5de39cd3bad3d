"""Every Redis key name jobrunner uses, built in one place.

Each queue's keys share the ``{queue}`` hash tag, so on Redis Cluster one queue lives in one slot
and its Lua scripts stay single-slot. Job hashes carry the same tag for the same reason.
"""

from __future__ import annotations

import hashlib

PREFIX = "jr"


class QueueKeys:
    """The keys of one named queue."""

    __slots__ = (
        "cancel", "claimed", "dead", "fence", "history", "job_prefix", "name", "notify_prefix",
        "paused", "ready", "reserved", "scheduled", "stats",
    )  # fmt: skip

    def __init__(self, name: str, prefix: str = PREFIX) -> None:
        tag = f"{prefix}:{{{name}}}"
        self.name = name
        self.ready = f"{tag}:ready"  # LIST of job ids; LPUSH to enqueue, RPOP to reserve
        # LIST of ids an idle worker moved off ready as its wake-up (BLMOVE ready claimed): the
        # next reserve, by any worker, takes them first. Ready jobs all the same; a few at most
        self.claimed = f"{tag}:claimed"
        self.scheduled = f"{tag}:scheduled"  # ZSET id -> due time (ms, Redis clock)
        self.reserved = f"{tag}:reserved"  # ZSET id -> lease deadline (ms, Redis clock)
        self.dead = f"{tag}:dead"  # ZSET id -> time it died (ms)
        self.fence = f"{tag}:fence"  # STRING counter: one fencing token per reservation
        self.stats = f"{tag}:stats"  # HASH of lifetime counters
        self.job_prefix = f"{tag}:job:"  # HASH per job: job_prefix + id
        # LIST per job someone waits on (client.result): a terminal transition pushes to it
        self.notify_prefix = f"{tag}:notify:"
        self.cancel = f"{tag}:cancel"  # SET of running jobs asked to stop; their worker acts
        self.paused = f"{tag}:paused"  # STRING: present while the queue is paused
        # STREAM of jobs that ended (done, dead, cancelled), one entry each, written by the
        # terminal scripts when history is on (Settings.history > 0, its bound in entries); the
        # archiver reads it in the consumer group "archiver", then XACK + XDEL (docs/history.md)
        self.history = f"{tag}:history"

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def notify(self, job_id: str) -> str:
        return self.notify_prefix + job_id


def queues_key(prefix: str = PREFIX) -> str:
    """SET of every queue name that has been enqueued to."""
    return f"{prefix}:queues"


def shards_key(prefix: str = PREFIX) -> str:
    """HASH queue name -> how many shards it is spread over (jobrunner/shards.py)."""
    return f"{prefix}:shards"


def workers_key(prefix: str = PREFIX) -> str:
    """ZSET worker id -> last heartbeat (ms)."""
    return f"{prefix}:workers"


def worker_key(worker_id: str, prefix: str = PREFIX) -> str:
    """HASH describing one worker (model, concurrency, pid, counts); expires with its heartbeat."""
    return f"{prefix}:worker:{worker_id}"


def idempotency_key(client_key: str, prefix: str = PREFIX, queue: str | None = None) -> str:
    """STRING naming the job a client's idempotency key stands for, whatever its queue.

    On Redis Cluster (``queue`` given) it carries the queue's hash tag so that the enqueue
    script stays in one slot: there a key names one job per queue.
    """
    digest = hashlib.sha256(client_key.encode()).hexdigest()
    return f"{prefix}:idem:{digest}" if queue is None else f"{prefix}:{{{queue}}}:idem:{digest}"


def naive_key(name: str, prefix: str = PREFIX) -> str:
    """LIST of encoded jobs of the naive (LPUSH/BRPOP) teaching queue."""
    return f"{prefix}:naive:{{{name}}}"


def slot_guard(key: str) -> str:
    """A key in ``key``'s slot that nothing ever writes, declared last by every script call on a
    cluster. While a slot moves between nodes, Redis refuses a script (``TRYAGAIN`` or ``ASK``)
    whose declared keys are not all on the node, before it runs; a key that never exists keeps
    every call refused until the move ends. Without it a script whose declared keys had not
    moved yet ran, and stopped with an error at the first job hash already moved, after writes
    of its own: promote had taken a job off the scheduled set and not put it on ready."""
    start = key.find("{")
    end = key.find("}", start + 1) if start != -1 else -1
    tag = key[start + 1 : end] if end > start + 1 else key  # Redis hashes the tag, or all
    return f"{{{tag}}}:slot-guard"
