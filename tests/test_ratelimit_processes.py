"""Distributed limits hold across processes: several processes hammer one Redis limit and the
admissions they record (on Redis's clock) never pass the bound in any window."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.ratelimit import parse_limit, redis_limiter
from jobrunner.ratelimit.measure import max_in_window, max_overlap

pytestmark = pytest.mark.slow
PROCESSES = 4
LEDGER = "test:admitted"
DENIED = "test:denied"


def hammer(redis_url: str, limit: str, seconds: float, seed: int) -> None:
    """Ask for units in a tight loop for ``seconds``; record each admission in Redis."""

    async def run() -> None:
        client = AsyncRedis.from_url(redis_url)
        limiter = redis_limiter(client, parse_limit(limit))
        rng = random.Random(seed)
        end = time.monotonic() + seconds
        i = 0
        try:
            while time.monotonic() < end:
                i += 1
                ids = [f"{seed}.{i}.{j}" for j in range(rng.randint(1, 3))]
                decision = await limiter.acquire("shared", ids)
                if not decision.granted:
                    await client.incr(DENIED)
                    await asyncio.sleep(min(decision.retry_after, 0.005) * rng.random())
                    continue
                held = ids[: decision.granted]
                if limiter.spec.algorithm == "concurrency":
                    await asyncio.sleep(rng.uniform(0, 0.01))
                    # Recorded before the release call: the interval is inside the real hold.
                    released = time.time()
                    await limiter.release("shared", held)
                    await client.rpush(LEDGER, json.dumps([decision.now, released, len(held)]))
                else:
                    await client.rpush(LEDGER, *[json.dumps(decision.now)] * len(held))
        finally:
            await client.aclose()

    asyncio.run(run())


def run_processes(redis_url: str, limit: str, seconds: float = 1.5) -> list[bytes]:
    """Every admission the processes recorded; fails unless the limit also turned some away."""
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=hammer, args=(redis_url, limit, seconds, seed))
        for seed in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    client = redis.Redis.from_url(redis_url)
    try:
        assert int(client.get(DENIED) or 0) > 0, "the limit never bound: the test proves nothing"
        return list(client.lrange(LEDGER, 0, -1))
    finally:
        client.close()


@pytest.mark.parametrize(
    "limit", ["gcra:100/s", "token_bucket:100/s:burst=20", "gcra:40/200ms:burst=5"]
)
def test_rate_limits_hold_across_processes_in_every_window(redis_url: str, limit: str) -> None:
    spec = parse_limit(limit)
    admitted = [float(json.loads(raw)) for raw in run_processes(redis_url, limit)]
    assert admitted
    for window in (spec.period, spec.period / 4, 1.0):
        bound = spec.bound(window)
        assert bound is not None
        assert max_in_window(admitted, window) <= bound, window


def test_sliding_window_counter_bounds_each_aligned_window_across_processes(
    redis_url: str,
) -> None:
    admitted = [float(json.loads(raw)) for raw in run_processes(redis_url, "sliding_window:50/s")]
    per_second: dict[int, int] = {}
    for t in admitted:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    assert max(per_second.values()) <= 50
    assert len(per_second) >= 2


def test_concurrency_limit_holds_across_processes(redis_url: str) -> None:
    records = [json.loads(raw) for raw in run_processes(redis_url, "concurrency:3")]
    assert len(records) > 50
    intervals = [(start, end) for start, end, n in records for _ in range(n)]
    assert max_overlap(intervals) <= 3
    assert max_overlap(intervals) == 3  # and all three slots were used
