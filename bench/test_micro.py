"""Micro-benchmarks of the queue's hot paths against a private Redis, and of the backoff maths.

The queue API is async; each timed call runs its coroutine on the session's one event loop (the
``run`` fixture), so the figures include a loop round trip as a real caller's would. Under
``--benchmark-disable`` (as ``make test`` runs them) each body runs once and the asserts still
check the result.

The regression gate (bench/gate.py) judges each queue benchmark as a ratio to a PING on the
same kind of client and loop, and the backoff maths to a piece of pure Python, each probe timed
right before and after the benchmark (``bench.conftest.Calibration``).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import Calibration, LoopRunner
from jobrunner.backoff import STRATEGIES, backoff_from_name
from jobrunner.job import Job, JobState, new_job_id
from jobrunner.queue import ReliableQueue

PAYLOAD = {"to": "user@example.com", "n": 1}
MANY = 1000
BATCH = 100
LEASE = 30.0


def make_jobs(count: int) -> list[Job]:
    return [Job(id=new_job_id(), type="noop", payload=PAYLOAD) for _ in range(count)]


@pytest.mark.benchmark(group="queue")
def test_enqueue_one(
    benchmark: BenchmarkFixture, run: LoopRunner, queue: ReliableQueue,
    redis_calibration: Calibration,
) -> None:  # fmt: skip
    calls = 0

    def enqueue_one() -> str:
        nonlocal calls
        calls += 1
        return run(queue.enqueue("noop", PAYLOAD))

    with redis_calibration.around(benchmark):
        job_id = benchmark(enqueue_one)
    stats = run(queue.stats("default"))
    assert stats.ready == calls
    assert stats.counters["enqueued"] == calls
    record = run(queue.get_job(job_id, "default"))
    assert record is not None
    assert record.state is JobState.READY
    assert record.job.payload == PAYLOAD


@pytest.mark.benchmark(group="queue")
def test_enqueue_many(
    benchmark: BenchmarkFixture, run: LoopRunner, queue: ReliableQueue,
    redis_calibration: Calibration,
) -> None:  # fmt: skip
    calls = 0

    def setup() -> tuple[tuple[list[Job]], dict[str, Any]]:
        return (make_jobs(MANY),), {}

    def enqueue_many(jobs: list[Job]) -> list[bool]:
        nonlocal calls
        calls += 1
        return run(queue.enqueue_jobs(jobs))

    with redis_calibration.around(benchmark):
        created = benchmark.pedantic(enqueue_many, setup=setup, rounds=20, warmup_rounds=1)
    assert created == [True] * MANY
    stats = run(queue.stats("default"))
    assert stats.ready == calls * MANY
    assert stats.counters["enqueued"] == calls * MANY


@pytest.mark.benchmark(group="queue")
def test_reserve_ack_batch(
    benchmark: BenchmarkFixture, run: LoopRunner, queue: ReliableQueue,
    redis_calibration: Calibration,
) -> None:  # fmt: skip
    calls = 0

    def setup() -> None:
        run(queue.enqueue_jobs(make_jobs(BATCH)))

    async def reserve_and_ack() -> tuple[int, list[str]]:
        batch = await queue.reserve("default", BATCH, LEASE)
        stale = await queue.ack("default", [(r.id, r.token) for r in batch])
        return len(batch), stale

    def one_batch() -> tuple[int, list[str]]:
        nonlocal calls
        calls += 1
        return run(reserve_and_ack())

    with redis_calibration.around(benchmark):
        reserved, stale = benchmark.pedantic(one_batch, setup=setup, rounds=50, warmup_rounds=1)
    assert (reserved, stale) == (BATCH, [])
    stats = run(queue.stats("default"))
    assert (stats.ready, stats.reserved, stats.dead) == (0, 0, 0)
    assert stats.counters["processed"] == calls * BATCH


BASE, CAP, ATTEMPTS = 0.5, 60.0, 12


def _exp(attempt: int) -> float:
    return min(CAP, BASE * 2.0 ** (attempt - 1))


def check_delay(name: str, attempt: int, previous: float | None, delay: float) -> None:
    """Each strategy's documented range (exact for the deterministic ones)."""
    if name == "constant":
        assert delay == BASE
    elif name == "linear":
        assert delay == min(CAP, BASE * attempt)
    elif name == "exponential":
        assert delay == _exp(attempt)
    elif name == "full_jitter":
        assert 0.0 <= delay <= _exp(attempt)
    elif name == "equal_jitter":
        assert _exp(attempt) / 2 <= delay <= _exp(attempt)
    elif name == "decorrelated_jitter":
        last = BASE if previous is None else max(BASE, previous)
        assert BASE <= delay <= min(CAP, 3 * last)
    else:  # pragma: no cover - a strategy added without a check here
        pytest.fail(f"no expectation for backoff strategy {name!r}")


@pytest.mark.benchmark(group="backoff")
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_backoff(benchmark: BenchmarkFixture, name: str, python_calibration: Calibration) -> None:
    strategy = backoff_from_name(name, base=BASE, cap=CAP, rng=random.Random(1234))

    def schedule() -> list[float]:
        """The delays of a job that fails ATTEMPTS times in a row."""
        delays: list[float] = []
        previous: float | None = None
        for attempt in range(1, ATTEMPTS + 1):
            previous = strategy.delay(attempt, previous)
            delays.append(previous)
        return delays

    with python_calibration.around(benchmark):
        delays = benchmark(schedule)
    assert len(delays) == ATTEMPTS
    previous: float | None = None
    for attempt, delay in enumerate(delays, start=1):
        check_delay(name, attempt, previous, delay)
        previous = delay
