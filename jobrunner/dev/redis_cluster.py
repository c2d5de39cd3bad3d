"""Start a private Redis Cluster on loopback (masters, each with replicas), for tests and the lab.

Each node is a ``RedisServer`` with cluster mode on, in a directory of its own; ``redis-cli
--cluster create`` assigns the slots and pairs replicas with masters, then every node is waited
on until it reports ``cluster_state:ok``. A node's cluster bus listens on its port + 10,000, so
the ports are chosen below 55,536 with both free. ``node_timeout`` is short (1 s) so that a
killed master's replica takes over within a few seconds in failure experiments.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from jobrunner.dev.redis_server import RedisServer, find_redis_server
from jobrunner.errors import EmbeddedRedisError

BUS_OFFSET = 10_000  # Redis Cluster's bus port is the node's port plus this


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int, *, attempts: int = 200) -> list[int]:
    """``count`` consecutive ports below 55,536 whose bus ports (+10,000) are free too."""
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(20_000, 55_536 - count)
        ports = list(range(base, base + count))
        if all(_port_free(p) and _port_free(p + BUS_OFFSET) for p in ports):
            return ports
    raise EmbeddedRedisError(f"no {count} free ports with free cluster bus ports found")


def find_redis_cli() -> str:
    """``redis-cli`` beside the server binary, else on PATH (it creates the cluster)."""
    beside = Path(find_redis_server()).with_name("redis-cli")
    if beside.is_file():
        return str(beside)
    found = shutil.which("redis-cli")
    if found:
        return found
    raise EmbeddedRedisError("no redis-cli found: it creates the cluster (apt-get install redis)")


class RedisClusterServer:
    """``masters`` masters with ``replicas`` replicas each, on consecutive loopback ports.

    ``url`` is a ``redis+cluster://`` URL (jobrunner's clients then use redis-py's cluster
    client); ``kill`` and ``nodes`` serve failure experiments.
    """

    def __init__(
        self, *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000,
        start_timeout: float = 30.0,
    ) -> None:  # fmt: skip
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.start_timeout = start_timeout
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]

    def start(self) -> RedisClusterServer:
        """Start every node, create the cluster and wait until it serves every slot."""
        count = self.masters * (1 + self.replicas)
        try:
            for port in free_cluster_ports(count):
                node = RedisServer(
                    port=port,
                    extra_args=(
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", str(self.node_timeout_ms),
                        # a replica may take over however long it was cut off (tests kill masters)
                        "--cluster-replica-validity-factor", "0",
                    ),
                )  # fmt: skip
                self.nodes.append(node.start())
            self._create()
            self._wait_until_ok()
            deadline = time.monotonic() + self.start_timeout
            while not self.healthy():  # every replica linked to its master, not a master still
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError("the cluster's replicas did not link in time")
                time.sleep(0.05)  # polls the nodes: the cluster gives no readiness signal
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        done = subprocess.run(
            [find_redis_cli(), "--cluster", "create", *addresses,
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=self.start_timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise EmbeddedRedisError(f"redis-cli --cluster create failed: {' | '.join(said)}")

    def _wait_until_ok(self) -> None:
        """Every node sees every slot served and every node known (replicas attached)."""
        deadline = time.monotonic() + self.start_timeout
        pending = list(self.nodes)
        while pending:
            node = pending[0]
            if self._node_ready(node):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"Redis Cluster node {node.port} not ready within {self.start_timeout}s"
                )
            time.sleep(0.05)  # polls the node: the cluster gives no readiness signal

    def _node_ready(self, node: RedisServer) -> bool:
        with (
            contextlib.suppress(redis.exceptions.RedisError),
            redis.Redis(port=node.port, socket_timeout=1.0) as client,
        ):
            info = client.cluster("info")
            known = len(client.cluster("nodes"))
            return bool(
                info.get("cluster_state") == "ok"
                and int(info.get("cluster_slots_ok", 0)) == 16384
                and known == len(self.nodes)
            )
        return False

    def healthy(self) -> bool:
        """Every node up, the cluster serving every slot, each master with a replica linked."""
        if any(node.process is None or node.process.poll() is not None for node in self.nodes):
            return False
        if not all(self._node_ready(node) for node in self.nodes):
            return False
        with redis.Redis(port=self.nodes[0].port, socket_timeout=1.0) as client:
            described = client.cluster("nodes").values()
        linked = [n for n in described if "slave" in n["flags"] and n["connected"]]
        return len(linked) == self.masters * self.replicas

    def master_ports(self) -> list[int]:
        """The ports of the nodes that are masters now (after a failover, a former replica)."""
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            with (
                contextlib.suppress(redis.exceptions.RedisError),
                redis.Redis(port=node.port, socket_timeout=1.0) as client,
            ):
                described = client.cluster("nodes")
                return sorted(  # a master that serves slots (a new node is a master too)
                    int(address.split("@")[0].rsplit(":", 1)[1])
                    for address, about in described.items()
                    if "master" in about["flags"] and "fail" not in about["flags"]
                    and about["connected"] and about["slots"]
                )  # fmt: skip
        return []

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def stop(self) -> None:
        for node in self.nodes:  # all shut down at once, then each is waited for
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            node.stop()
        self.nodes = []

    def __enter__(self) -> RedisClusterServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
