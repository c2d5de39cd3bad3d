"""Move one hash slot of a private Redis Cluster to another master, step by step, as
``redis-cli --cluster reshard`` does: the target marks it IMPORTING, the source MIGRATING, keys
go over with ``MIGRATE`` a few at a time, then every master is told the slot's new owner.

Between the steps the slot is mid-move, the state a resharding leaves it in for as long as its
keys take to copy: what tests of the scripts' behaviour then need to hold it in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from jobrunner.dev.redis_cluster import RedisClusterServer


def job_hash(key: str) -> bool:
    """Whether ``key`` is a job's hash (``keys.QueueKeys.job``)."""
    return ":job:" in key


class SlotMove:
    """The slot of ``key``, moving from the master serving it to ``to_port`` (another master,
    by default the first that is not the source)."""

    def __init__(self, cluster: RedisClusterServer, key: str, to_port: int | None = None) -> None:
        self.cluster = cluster
        self.key = key
        self.source_port = self.owner()
        with redis.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port) as client:
            self.slot = int(client.keyslot(key))
            masters = sorted(int(n.port) for n in client.get_primaries())
        self.target_port = to_port or next(p for p in masters if p != self.source_port)
        self.master_ports = masters
        self.moved = 0  # keys copied so far

    def owner(self) -> int:
        """The port of the master the cluster says serves the slot now."""
        with redis.RedisCluster(host="127.0.0.1", port=self.cluster.nodes[0].port) as client:
            node = client.get_node_from_key(self.key)
            assert node is not None
            return int(node.port)

    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)

    def begin(self) -> SlotMove:
        with self._node(self.source_port) as source, self._node(self.target_port) as target:
            source_id, target_id = source.cluster("myid"), target.cluster("myid")
            target.execute_command("CLUSTER SETSLOT", self.slot, "IMPORTING", source_id)
            source.execute_command("CLUSTER SETSLOT", self.slot, "MIGRATING", target_id)
        return self

    def keys_left(self, count: int = 1000) -> list[str]:
        """Keys of the slot still on the source."""
        with self._node(self.source_port) as source:
            return list(source.execute_command("CLUSTER GETKEYSINSLOT", self.slot, count))

    def migrate(self, keys: list[str]) -> None:
        """Copy ``keys`` to the target and delete them from the source, in one step."""
        if not keys:
            return
        with self._node(self.source_port) as source:
            source.execute_command("MIGRATE", "127.0.0.1", self.target_port, "", 0, 5000,
                                   "KEYS", *keys)  # fmt: skip
        self.moved += len(keys)

    def finish(self) -> None:
        """The target owns the slot: every master is told (replicas learn it from theirs)."""
        with self._node(self.target_port) as target:
            target_id = target.cluster("myid")
        for port in [self.target_port, self.source_port, *self.master_ports]:
            with self._node(port) as node:
                node.execute_command("CLUSTER SETSLOT", self.slot, "NODE", target_id)

    def run(
        self, *, batch: int = 5, pause: float = 0.05, first: Callable[[str], bool] = job_hash
    ) -> int:
        """The whole move, ``batch`` keys at a time with ``pause`` s between batches, keys that
        ``first`` picks before the others (by default the job hashes: the order that leaves a
        queue's lists and sets on the source longest while its jobs' hashes are already on the
        target); returns how many keys moved."""
        self.begin()
        while keys := self.keys_left():
            picked = [k for k in keys if first(k)] or keys
            self.migrate(picked[:batch])
            time.sleep(pause)  # traffic meets the slot mid-move meanwhile: the point of a pause
        self.finish()
        return self.moved
