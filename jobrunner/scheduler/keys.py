"""The scheduler's Redis key names, built in one place (beside the queue keys of ``keys.py``).

Two homes, so every script stays in one hash slot on Redis Cluster: the lock, its epoch, the
index and the definitions share the ``{scheduler}`` tag (the lock script and the publishing
transaction touch them together); what the fire script writes beside a queue's jobs — the
schedule's state (mark, fire times, counters) and the queue's copy of the leader's token (the
fence) — carries that queue's tag.
"""

from __future__ import annotations

from jobrunner.keys import PREFIX


class SchedulerKeys:
    __slots__ = ("epoch", "index", "leader", "prefix", "tag")

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.tag = f"{prefix}:{{scheduler}}"
        self.leader = f"{self.tag}:leader"  # HASH id, token, since; expires with the lock
        self.epoch = f"{self.tag}:epoch"  # STRING counter: one fencing token per term
        self.index = f"{self.tag}:schedules"  # SET of the names the leader publishes

    def schedule(self, name: str) -> str:
        """HASH of one schedule's definition, as the leader published it."""
        return f"{self.tag}:schedule:{name}"

    def state(self, queue: str, name: str) -> str:
        """HASH of a schedule's state beside its queue: mark, next/last fire, counters."""
        return f"{self.prefix}:{{{queue}}}:schedule:{name}"

    def fence(self, queue: str) -> str:
        """STRING: the token of the newest leader that announced itself to ``queue``."""
        return f"{self.prefix}:{{{queue}}}:scheduler"
