"""The transition scripts on Redis Cluster: one pipelining connection per master, each call sent
to the master that serves its keys' slot.

Every script's keys share one ``{queue}`` hash tag, so its first key names its slot; the slot
map is redis-py's cluster client's (it discovers the cluster and follows it). A call Redis
refused before running it — ``MOVED``/``ASK`` (the slot moved: a failover, a resharding),
``TRYAGAIN``, ``CLUSTERDOWN``, a map that leaves the slot uncovered, or no connection to the
node at all — is sent again after the map is read afresh, until ``retry_for`` seconds pass.
Every call declares one key more, ``keys.slot_guard``, that never exists: while its slot moves
between nodes the call is refused whole (``TRYAGAIN``, ``ASK``) rather than run on a node that
no longer holds every job hash it touches, and retried until the move ends. A
call whose connection broke after it was sent is *not* sent again (it may have run: an enqueue
would be written twice); its caller is told the reply may have been lost, as on one Redis, and
the next call reads the map afresh.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobrunner.keys import slot_guard
from jobrunner.pipelined import ConnectFailed, PipelinedConnection

# refused before the script ran: safe to send again once the slot map is fresh
NOT_RUN = (MovedError, AskError, TryAgainError, ClusterDownError, ConnectFailed)


class RoutedConnections:
    """``await routed.evalsha(sha, source, keys, args)`` on a cluster, as on one connection."""

    def __init__(self, cluster: RedisCluster, *, retry_for: float = 10.0) -> None:
        self.cluster = cluster
        self.retry_for = retry_for
        self._nodes: dict[tuple[str, int], PipelinedConnection] = {}
        self._ready = False
        self._stale = False
        self.refreshes = 0  # how often the slot map was read afresh (tests, logs)

    async def evalsha(
        self, sha: str, source: Any, keys: list[Any], args: list[Any],
        wait: tuple[int, int] | None = None,
    ) -> Any:  # fmt: skip
        deadline = time.monotonic() + self.retry_for
        pause = 0.05
        keys = [*keys, slot_guard(keys[0])]  # refused whole while the slot moves (keys.py)
        while True:
            connection = await self._connection_for(keys[0])
            try:
                return await connection.evalsha(sha, source, keys, args, wait=wait)
            except NOT_RUN:
                if time.monotonic() + pause > deadline:
                    raise
                self._stale = True
                await asyncio.sleep(pause)  # a failover takes a second or two: no busy loop
                pause = min(pause * 2, 1.0)
            except (RedisConnectionError, RedisTimeoutError):
                self._stale = True  # the node may be gone: look again before the next call
                raise

    async def _connection_for(self, key: Any) -> PipelinedConnection:
        try:
            if not self._ready:
                await self.cluster.initialize()
                self._ready = True
            if self._stale:
                self._stale = False
                self.refreshes += 1
                await self.cluster.nodes_manager.initialize()
            node = self.cluster.get_node_from_key(key)
        except RedisClusterException as exc:
            # Mid-failover the map may leave a slot uncovered (redis-py raises this, which is
            # no RedisError): nothing was sent, so it is retried like CLUSTERDOWN; let through,
            # it ended the worker loop that met it and left that worker holding jobs it
            # never ran, their leases renewed by its heartbeat.
            self._stale = True
            raise ClusterDownError(f"the slot map is incomplete: {exc}") from exc
        if node is None:  # only with replica=True; a master always serves its slot
            raise ClusterDownError(f"no node serves the slot of {key!r}")
        address = (node.host, int(node.port))
        connection = self._nodes.get(address)
        if connection is None:
            kwargs = self.cluster.get_connection_kwargs()
            connection = PipelinedConnection.from_kwargs(kwargs, host=node.host, port=address[1])
            self._nodes[address] = connection
        return connection

    async def aclose(self) -> None:
        for connection in self._nodes.values():
            await connection.aclose()
        self._nodes.clear()
