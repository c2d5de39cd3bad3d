"""Fixtures for the micro-benchmarks: a private redis-server, one event loop, a clean queue.

pytest-benchmark times synchronous callables, and the queue API is async, so every coroutine runs
on one persistent event loop (uvloop where it exists) through the ``run`` fixture. The loop is
never installed as the current loop, so it cannot disturb pytest-asyncio's loops in ``tests/``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import pytest
import redis

from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer
from jobrunner.queue import ReliableQueue

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where uvloop exists (not on Windows), else asyncio's default one."""
    if sys.platform != "win32":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class LoopRunner:
    """Runs coroutines to completion on one loop: ``run(queue.enqueue(...))``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port: the benchmarks never touch the one on 6379."""
    with RedisServer() as server:
        assert server.port != 6379
        yield server


@pytest.fixture(scope="session")
def run() -> Iterator[LoopRunner]:
    loop = new_event_loop()
    try:
        yield LoopRunner(loop)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private server's URL, with its data flushed before the test."""
    client = redis.Redis(port=redis_server.port)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def queue(redis_url: str, run: LoopRunner) -> Iterator[ReliableQueue]:
    """A ReliableQueue on a client built the way the worker builds its own."""
    client = async_redis(redis_url)
    try:
        yield ReliableQueue(client)
    finally:
        run(client.aclose())
