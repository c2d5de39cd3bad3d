"""Fixtures for the micro-benchmarks: a private redis-server, one event loop, a clean queue.

pytest-benchmark times synchronous callables, and the queue API is async, so every coroutine runs
on one persistent event loop (uvloop where it exists) through the ``run`` fixture. The loop is
never installed as the current loop, so it cannot disturb pytest-asyncio's loops in ``tests/``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
import redis
from pytest_benchmark.fixture import BenchmarkFixture

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


# The regression gate's own test (tests/test_bench_gate.py) makes a benchmark slower on purpose:
# BENCH_SLOWDOWN="test_drain[reliable-asyncio-1proc]=2" makes that drain's worker spend (factor
# - 1) times a plain round's time per job more on each job (bench/regression.py), so its rounds
# take about factor times as long.
SLOWDOWN_ENV = "BENCH_SLOWDOWN"


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[object], output_json: dict[str, object]
) -> None:
    """Each run's JSON records the load average at its end: the gate's baseline keeps it."""
    output_json["loadavg"] = [round(x, 2) for x in os.getloadavg()]


class Calibration:
    """A probe of nothing but the machine (a Redis PING, a piece of pure Python, ``GET
    /healthz``), timed call by call right before and right after a benchmark, and between its
    rounds where it has a setup. The regression gate (bench/gate.py) judges the benchmark by its
    time over the probe's: both measured at the same moment, so a noisy neighbour's burst
    slows both alike and cancels out (a probe measured once per run, minutes away, does not).
    """

    def __init__(self, name: str, probe: Callable[[], object], window: float = 0.05) -> None:
        self.name, self.probe, self.window = name, probe, window
        self.samples: list[float] = []

    def sample(self, seconds: float | None = None) -> None:
        """Time the probe call by call for ``seconds`` (the window)."""
        deadline = time.perf_counter() + (self.window if seconds is None else seconds)
        while True:
            start = time.perf_counter()
            self.probe()
            end = time.perf_counter()
            self.samples.append(end - start)
            if end >= deadline:
                return

    @contextmanager
    def around(self, benchmark: BenchmarkFixture) -> Iterator[None]:
        """Sample before and after the block; the benchmark's JSON gets the probe's statistics
        (under --benchmark-disable the probe runs once, to check it works)."""
        self.sample(0.0 if benchmark.disabled else None)
        yield
        self.sample(0.0 if benchmark.disabled else None)
        benchmark.extra_info["calibration"] = {
            "name": self.name,
            "median": statistics.median(self.samples),
            "min": min(self.samples),
            "mean": statistics.fmean(self.samples),
            "samples": len(self.samples),
        }


def python_work() -> int:
    """Dict and list work of the codecs' kind, in the interpreter only: the same on every run."""
    table = {f"k{i}": i for i in range(64)}
    return sum(len(str(value)) for key, value in table.items() if key[1] != "x")


@pytest.fixture
def python_calibration() -> Calibration:
    """The CPU-bound benchmarks' yardstick: how fast this interpreter runs here right now."""
    return Calibration("python work", python_work)


@pytest.fixture
def redis_calibration(redis_url: str, run: LoopRunner) -> Iterator[Calibration]:
    """The queue benchmarks' yardstick: a bare round trip (PING) on their kind of client and
    loop."""
    client = async_redis(redis_url)
    try:
        yield Calibration("redis PING (asyncio)", lambda: run(client.ping()))
    finally:
        run(client.aclose())


def slowdown_factor(name: str) -> float:
    """The factor BENCH_SLOWDOWN asks for the benchmark called ``name`` (1.0: none)."""
    for item in os.environ.get(SLOWDOWN_ENV, "").split(","):
        target, _, factor = item.rpartition("=")
        if target == name:
            return float(factor)
    return 1.0
