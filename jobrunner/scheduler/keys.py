"""The scheduler's Redis key names, built in one place (beside the queue keys of ``keys.py``).

The fire script writes a queue's keys and reads the leader lock in one atomic step, so it spans
hash slots: on Redis Cluster the scheduler would need its keys to share the queue's hash tag.
jobrunner runs on one Redis (or a primary with replicas), where this does not arise.
"""

from __future__ import annotations

from jobrunner.keys import PREFIX


class SchedulerKeys:
    __slots__ = ("epoch", "index", "leader", "prefix")

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.leader = f"{prefix}:scheduler:leader"  # HASH id, token, since; expires with the lock
        self.epoch = f"{prefix}:scheduler:epoch"  # STRING counter: one fencing token per term
        self.index = f"{prefix}:schedules"  # SET of the names the leader publishes

    def schedule(self, name: str) -> str:
        """HASH of one schedule: its definition, high-water mark, last/next fire, counters."""
        return f"{self.prefix}:schedule:{name}"
