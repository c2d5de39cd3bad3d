"""Shared fixtures: one private redis-server per test session, a clean database per test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.connection import async_redis
from jobrunner.connection import sync_redis as sync_client_for
from jobrunner.dev.redis_cluster import RedisClusterServer
from jobrunner.dev.redis_server import RedisServer
from jobrunner.queue import ReliableQueue


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port: no test touches the shared one on 6379."""
    with RedisServer() as server:
        assert server.port != 6379
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A private Redis Cluster (3 masters, 3 replicas) for the suites run on both backends."""
    with RedisClusterServer() as cluster:
        yield cluster


def flush_cluster(cluster: RedisClusterServer) -> None:
    """Empty every master (a replica follows its master)."""
    for port in cluster.master_ports():
        with redis.Redis(port=port) as client:
            client.flushall()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.close()
    return redis_server.url


# Suites that hold on Redis Cluster as on one Redis take this as their `redis_url`:
# ``redis_url = pytest.fixture(params=BACKENDS)(on_backend)``. The cluster runs are slow-marked.
BACKENDS = ["single", pytest.param("cluster", marks=pytest.mark.slow)]


def on_backend(request: pytest.FixtureRequest) -> str:
    """A clean database on the backend the test is parametrized with."""
    if request.param == "cluster":
        cluster: RedisClusterServer = request.getfixturevalue("redis_cluster")
        flush_cluster(cluster)
        return cluster.url
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.slow)])
def chaos_url(request: pytest.FixtureRequest) -> str | None:
    """For a chaos session on both backends: None (the stack starts a Redis of its own), or
    the session's Redis Cluster, emptied."""
    if request.param == "single":
        return None
    cluster: RedisClusterServer = request.getfixturevalue("redis_cluster")
    flush_cluster(cluster)
    return cluster.url


def named_for_backend(name: str, options: dict[str, object]) -> str:
    """A chaos report's name, told apart on a cluster (reports are kept by name)."""
    on_cluster = str(options.get("redis_url") or "").startswith("redis+cluster")
    return f"{name} on a cluster" if on_cluster and "cluster" not in name else name


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A client on ``redis_url``: a cluster client where it names a cluster."""
    client = sync_client_for(redis_url)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    client = async_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def queue(aredis: AsyncRedis) -> AsyncIterator[ReliableQueue]:
    """Counts every enqueue at once (``count_every=0``), so a test reads exact counters."""
    q = ReliableQueue(aredis, count_every=0)
    yield q
    await q.aclose()  # on a cluster it holds a connection per master


@pytest.fixture
async def hqueue(aredis: AsyncRedis) -> AsyncIterator[ReliableQueue]:
    """``queue`` with history on (bound 100,000 entries): the terminal scripts write the
    history stream (docs/history.md)."""
    q = ReliableQueue(aredis, count_every=0, history=100_000)
    yield q
    await q.aclose()


def wait_until(
    condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.02, what: str = ""
) -> object:
    """Poll ``condition`` until it is truthy or the deadline passes (then fail with ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


async def eventually(
    condition: Callable[[], Awaitable[object]], timeout: float = 20.0, what: str = ""
) -> object:
    """Async twin of ``wait_until``: await ``condition`` until truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.02)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own on 127.0.0.1:5432, dropped after."""
    from jobrunner.lab.history import scratch_database

    with scratch_database() as url:
        yield url
