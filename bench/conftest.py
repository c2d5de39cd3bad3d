"""Fixtures for the micro-benchmarks: a private redis-server, one event loop, a clean queue.

pytest-benchmark times synchronous callables, and the queue API is async, so every coroutine runs
on one persistent event loop (uvloop where it exists) through the ``run`` fixture. The loop is
never installed as the current loop, so it cannot disturb pytest-asyncio's loops in ``tests/``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

import pytest
import redis
from pytest_benchmark.fixture import BenchmarkFixture

from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer
from jobrunner.queue import ReliableQueue

T = TypeVar("T")
P = ParamSpec("P")

# The regression gate's own test (tests/test_bench_gate.py) makes a benchmark slower on purpose:
# BENCH_SLOWDOWN="test_drain[reliable-asyncio-1proc]=2" runs that benchmark's timed call, then
# sleeps (factor - 1) times as long as the call took, so its round takes factor times as long.
SLOWDOWN_ENV = "BENCH_SLOWDOWN"


# The calibrations: benchmarks of nothing but the machine, each measured in every run.
REDIS_ROUND_TRIP = "test_calibration_redis_round_trip"  # bench/test_micro.py: asyncio PING
SYNC_REDIS_ROUND_TRIP = "test_calibration_sync_redis_round_trip"  # bench/test_drain.py
PYTHON_WORK = "test_calibration_python"  # bench/test_codec.py: a fixed piece of pure Python
BARE_ENDPOINT = "test_calibration_bare_endpoint"  # bench/test_api.py: GET /healthz


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[object], output_json: dict[str, object]
) -> None:
    """Each run's JSON records the load average at its end: the gate's baseline keeps it."""
    output_json["loadavg"] = [round(x, 2) for x in os.getloadavg()]


def calibrated_by(benchmark: BenchmarkFixture, calibration: str) -> None:
    """The regression gate (bench/gate.py) judges this benchmark by its time over the time of
    ``calibration`` (a benchmark of the same run), a ratio the machine's speed and load cancel
    out of."""
    benchmark.extra_info["calibration"] = calibration


def slowdown_factor(name: str) -> float:
    """The factor BENCH_SLOWDOWN asks for the benchmark called ``name`` (1.0: none)."""
    for item in os.environ.get(SLOWDOWN_ENV, "").split(","):
        target, _, factor = item.rpartition("=")
        if target == name:
            return float(factor)
    return 1.0


def slowed(name: str, call: Callable[P, T]) -> Callable[P, T]:
    """``call`` as it is, or made ``slowdown_factor(name)`` times as slow (a regression on
    purpose)."""
    factor = slowdown_factor(name)
    if factor == 1.0:
        return call

    def slower(*args: P.args, **kwargs: P.kwargs) -> T:
        start = time.perf_counter()
        result = call(*args, **kwargs)
        time.sleep((factor - 1.0) * (time.perf_counter() - start))  # the injected cost itself
        return result

    return slower


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
