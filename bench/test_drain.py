"""End-to-end drain benchmarks: worker processes empty a queue of N jobs, per concurrency model,
with two processes, on the naive BRPOP baseline, and with worker-bound (CPU) jobs.

Each round enqueues N jobs while the ready list is parked under another key (not timed), then
puts the list back and times until the queue's ``processed`` counter has grown by N. The workers
start once per scenario, before the rounds. For the naive queue, which records nothing after a
job (that is its flaw), a round ends when the list is empty: the last in-flight no-ops are not
waited for, which favours the baseline by at most its concurrency's worth of jobs.

``make bench`` runs this with 5 rounds of 20,000 jobs (``BENCH_DRAIN_JOBS``,
``BENCH_DRAIN_ROUNDS``); ``make test`` (``--benchmark-disable``) runs each body once on 500 jobs,
so the scenarios stay correct without slowing CI; its timed run (``python -m bench.ci``) drains
2,000 jobs a round, and the regression gate (bench/gate.py) judges each drain as a ratio to a
PING on the same client, timed before, after and between the rounds (``Calibration``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest
import redis
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import Calibration, slowdown_factor
from jobrunner.dev.redis_server import RedisServer
from jobrunner.dev.stack import Stack
from jobrunner.job import Job, encode_job, new_job_id
from jobrunner.keys import QueueKeys, naive_key

QUEUE = QueueKeys("default")
PARKED = QUEUE.ready + ":parked"
CPU_ITERATIONS = 10_000  # about half a millisecond of pure Python per job
# bench/regression.py's handler, imported by the workers only: imported here it would join this
# process's registry, which then refuses the other benchmarks' unregistered job types
SPIN = "bench.spin"


@dataclass(frozen=True)
class Scenario:
    name: str
    queue: Literal["reliable", "naive"]
    model: str
    workers: int
    concurrency: int | None
    job_type: str = "noop"
    jobs_divisor: int = 1  # CPU jobs are slower: fewer per round

    @property
    def payload(self) -> dict[str, int]:
        return {"iterations": CPU_ITERATIONS} if self.job_type == "cpu_burn" else {}


SCENARIOS = [
    Scenario("reliable-asyncio-1proc", "reliable", "asyncio", 1, None),
    Scenario("reliable-thread-1proc", "reliable", "thread", 1, None),
    Scenario("reliable-process-1proc", "reliable", "process", 1, None),
    Scenario("reliable-asyncio-2proc", "reliable", "asyncio", 2, None),
    Scenario("naive-brpop-1proc", "naive", "asyncio", 1, 100),
    Scenario("reliable-cpu-1proc", "reliable", "asyncio", 1, 4, "cpu_burn", 10),
    Scenario("reliable-cpu-2proc", "reliable", "asyncio", 2, 4, "cpu_burn", 10),
]


def jobs_per_round(benchmark: BenchmarkFixture, scenario: Scenario) -> int:
    full = int(os.environ.get("BENCH_DRAIN_JOBS", "20000"))
    return max(50, (500 if benchmark.disabled else full) // scenario.jobs_divisor)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


@pytest.fixture(params=SCENARIOS, ids=lambda s: s.name)
def running(
    request: pytest.FixtureRequest, server: RedisServer
) -> Iterator[tuple[Scenario, Stack]]:
    scenario: Scenario = request.param
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()
    with Stack(
        redis_url=server.url, api=False, workers=scenario.workers, model=scenario.model,
        concurrency=scenario.concurrency, worker_metrics=False,
        imports=("jobrunner.lab.handlers.demo", "bench.regression"),
        worker_command="naive-worker" if scenario.queue == "naive" else "worker",
    ) as stack:  # fmt: skip
        yield scenario, stack


def park_jobs(
    client: redis.Redis, scenario: Scenario, count: int, work: tuple[str, object] | None = None
) -> None:
    """N jobs laid out as each queue's enqueue lays them out, on a list no worker reads;
    ``work``: another (type, payload) than the scenario's."""
    job_type, payload = work or (scenario.job_type, scenario.payload)
    with client.pipeline(transaction=False) as pipe:
        for _ in range(count):
            job = Job(id=new_job_id(), type=job_type, payload=payload)
            if scenario.queue == "naive":
                pipe.lpush(PARKED, encode_job(job))
            else:
                pipe.hset(QUEUE.job(job.id), mapping={"d": encode_job(job), "mr": 3, "a": 0,
                                                      "s": "ready"})  # fmt: skip
                pipe.lpush(PARKED, job.id)
        pipe.execute()


def drained(client: redis.Redis, scenario: Scenario, target: int) -> bool:
    if scenario.queue == "naive":
        return client.llen(naive_key("default")) == 0
    return int(client.hget(QUEUE.stats, "processed") or 0) >= target


@pytest.mark.benchmark(group="drain", min_rounds=1, warmup=False)
def test_drain(benchmark: BenchmarkFixture, running: tuple[Scenario, Stack]) -> None:
    scenario, stack = running
    client = stack.client
    ping = Calibration("redis PING", client.ping, window=0.02)
    count = jobs_per_round(benchmark, scenario)
    rounds = 1 if benchmark.disabled else int(os.environ.get("BENCH_DRAIN_ROUNDS", "5"))
    target = [0]
    ready_key = naive_key("default") if scenario.queue == "naive" else QUEUE.ready

    work: list[tuple[str, object] | None] = [None]  # the scenario's own jobs

    def setup() -> None:
        target[0] = int(client.hget(QUEUE.stats, "processed") or 0) + count
        park_jobs(client, scenario, count, work[0])
        ping.sample()  # between rounds, so each round's load is in the yardstick too

    def drain() -> None:
        client.rename(PARKED, ready_key)  # idle workers block on the ready list: they wake
        deadline = time.monotonic() + 300
        while not drained(client, scenario, target[0]):
            assert time.monotonic() < deadline, f"{scenario.name} did not drain"
            time.sleep(0.002)  # the poll period bounds the timing error (2 ms per round)

    factor = slowdown_factor(benchmark.name)
    if factor != 1.0 and scenario.queue == "reliable":  # a regression on purpose, in the worker
        plain = []
        for _ in range(2):  # plain rounds, untimed: what a job costs now (the first runs cold)
            setup()
            start = time.perf_counter()
            drain()
            plain.append(time.perf_counter() - start)
        extra = (factor - 1.0) * min(plain) / count
        work[0] = (SPIN, {"us": extra * 1e6})
        benchmark.extra_info["injected_us_per_job"] = round(extra * 1e6, 1)

    benchmark.extra_info.update(jobs=count, scenario=scenario.name, workers=scenario.workers,
                                model=scenario.model, queue=scenario.queue,
                                job_type=scenario.job_type)  # fmt: skip
    with ping.around(benchmark):
        benchmark.pedantic(drain, setup=setup, rounds=rounds, iterations=1)
    if scenario.queue == "reliable":
        assert int(client.hget(QUEUE.stats, "processed") or 0) == target[0]
        assert stack.depth()["reserved"] == 0
    assert client.llen(ready_key) == 0
