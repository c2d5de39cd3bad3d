"""jobrunner on Redis Cluster: the launcher, the cluster URL, and what changes per slot.

The worker contract suite runs on a cluster too (tests/test_worker_contract.py); this file holds
what only a cluster has: a batch split by slot, idempotency keys tagged by queue, the launcher.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil
import pytest
import redis
from redis.asyncio import RedisCluster

from jobrunner.calls import NewJob
from jobrunner.config import Settings
from jobrunner.connection import async_redis, cluster_url, is_cluster, sync_redis
from jobrunner.dev.redis_cluster import BUS_OFFSET, RedisClusterServer
from jobrunner.job import make_job
from jobrunner.keys import QueueKeys
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Registry
from jobrunner.sync_client import SyncClient
from tests.conftest import flush_cluster, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(redis_cluster: RedisClusterServer) -> RedisClusterServer:
    flush_cluster(redis_cluster)
    return redis_cluster


def node_of(client: redis.RedisCluster, key: str) -> int:
    """The port of the master that serves ``key``."""
    return int(client.get_node_from_key(key).port)


def test_a_cluster_url_selects_the_cluster_client_and_plain_urls_do_not() -> None:
    assert cluster_url("redis+cluster://10.0.0.1:7000") == "redis://10.0.0.1:7000"
    assert cluster_url("rediss+cluster://h:7000/0") == "rediss://h:7000/0"
    assert cluster_url("redis://h:6379/0") is None
    assert isinstance(async_redis("redis+cluster://127.0.0.1:7000"), RedisCluster)
    assert not is_cluster(async_redis("redis://127.0.0.1:6379/0"))
    assert Settings(redis_url="redis+cluster://h:7000").redis_url == "redis+cluster://h:7000"


def test_the_launcher_starts_three_masters_with_a_replica_each_serving_every_slot(
    cluster: RedisClusterServer,
) -> None:
    assert len(cluster.nodes) == 6
    assert len(cluster.master_ports()) == 3
    assert all(node.port + BUS_OFFSET < 65_536 for node in cluster.nodes)
    with redis.Redis(port=cluster.nodes[0].port) as client:
        info = client.cluster("info")
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == 16384
        assert int(info["cluster_known_nodes"]) == 6


async def test_a_batch_over_three_queues_lands_each_queue_on_its_own_node(
    cluster: RedisClusterServer,
) -> None:
    client = async_redis(cluster.url)
    queue = ReliableQueue(client, count_every=0, pipelined=True)
    names = ["alpha", "beta", "gamma", "delta"]
    with sync_redis(cluster.url) as sync:
        homes = {node_of(sync, QueueKeys(name).ready) for name in names}  # type: ignore[arg-type]
        assert len(homes) >= 2, "the test needs queues on different nodes"
        jobs = [make_job("noop", {"n": i}, queue=names[i % 4]) for i in range(12)]
        assert await queue.enqueue_jobs(jobs) == [True] * 12
        assert await queue.enqueue_jobs(jobs[:3]) == [False] * 3  # ids known: nothing added
        for name in names:
            assert (await queue.stats(name)).ready == 3
        reserved = await queue.reserve("beta", 10, 30.0, start=10)
        assert sorted(r.id for r in reserved) == sorted(j.id for j in jobs if j.queue == "beta")
        assert await queue.ack("beta", [(r.id, r.token) for r in reserved]) == []
        assert (await queue.stats("beta")).counters["processed"] == 3
    await queue.aclose()
    await client.aclose()


async def test_on_a_cluster_an_idempotency_key_names_one_job_per_queue(
    cluster: RedisClusterServer,
) -> None:
    client = async_redis(cluster.url)
    queue = ReliableQueue(client, count_every=0)
    first = await queue.enqueue_batch([NewJob(make_job("noop", {}, queue="a"), 0, "order-7")])
    again = await queue.enqueue_batch([NewJob(make_job("noop", {}, queue="a"), 0, "order-7")])
    other = await queue.enqueue_batch([NewJob(make_job("noop", {}, queue="b"), 0, "order-7")])
    assert (again.ids, again.created) == (first.ids, [False])
    assert other.created == [True]
    assert other.ids != first.ids
    await queue.aclose()
    await client.aclose()


def test_the_sync_client_enqueues_over_queues_on_different_nodes(
    cluster: RedisClusterServer,
) -> None:
    # a registry of its own: the default one holds whatever handlers earlier tests imported
    with SyncClient.from_url(cluster.url, registry=Registry()) as client:
        ids = client.enqueue_many(
            [{"type": "noop", "queue": q} for q in ("alpha", "beta", "gamma", "alpha")]
        )
        assert [client.get(i).state for i in ids] == ["ready"] * 4  # type: ignore[union-attr]
        assert client.stats("alpha").ready == 2
        assert client.cancel(ids[1]) == "cancelled"


def test_jobrunner_redis_cluster_serves_a_cluster_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.cli", "redis", "--cluster"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("REDIS_URL=redis+cluster://127.0.0.1:"), line
        with sync_redis(line.split("=", 1)[1]) as client:
            client.set("k", "v")
            assert client.get("k") == b"v"
        servers = [p for p in psutil.Process(proc.pid).children() if "redis-server" in p.name()]
        assert len(servers) == 6
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        wait_until(lambda: not any(p.is_running() for p in servers), 10, what="nodes stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
