"""Shared fixtures: one private redis-server per test session, a clean database per test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.dev.redis_server import RedisServer
from jobrunner.queue import ReliableQueue


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port: no test touches the shared one on 6379."""
    with RedisServer() as server:
        assert server.port != 6379
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    client = AsyncRedis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def queue(aredis: AsyncRedis) -> ReliableQueue:
    """Counts every enqueue at once (``count_every=0``), so a test reads exact counters."""
    return ReliableQueue(aredis, count_every=0)


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
