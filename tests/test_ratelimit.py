"""Limiter algorithms: the text form, each algorithm's behaviour on a given clock, Redis and
in-process deciding alike, and the strict bounds holding over random request sequences."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis as AsyncRedis

from jobrunner.dev.redis_server import RedisServer
from jobrunner.ratelimit import LimitSpec, local_limiter, parse_limit, parse_limits, redis_limiter
from jobrunner.ratelimit.distributed import RedisConcurrency
from jobrunner.ratelimit.measure import max_in_window, max_overlap, rate_series
from tests.conftest import BACKENDS, on_backend

T0 = 1_700_000_000.0  # a fixed "now" for the explicit-clock tests

# the limiters' scripts each touch one limit key's slot: they hold on Redis Cluster too
redis_url = pytest.fixture(params=BACKENDS)(on_backend)


# ------------------------------------------------------------------ text form


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50/s", LimitSpec("gcra", 50, 1.0)),
        ("gcra:3000/m", LimitSpec("gcra", 3000, 60.0)),
        ("token_bucket:10/2s:burst=5", LimitSpec("token_bucket", 10, 2.0, burst=5)),
        ("sliding_window:7/500ms", LimitSpec("sliding_window", 7, 0.5)),
        ("concurrency:4:lease=30", LimitSpec("concurrency", 4, lease=30.0)),
        ("gcra:5/h:key=smtp", LimitSpec("gcra", 5, 3600.0, key="smtp")),
    ],
)
def test_parse_limit_reads_every_form(text: str, expected: LimitSpec) -> None:
    assert parse_limit(text) == expected
    assert parse_limit(expected.describe()) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("fast", "cannot read"),
        ("0/s", "at least 1"),
        ("50", "needs a period"),
        ("concurrency:4/s", "no period"),
        ("leaky:5/s", "cannot read"),
        ("gcra:5/s:burst=0", "burst"),
        ("gcra:5/s:colour=red", "unknown option"),
        ("gcra:5/0s", "period"),
    ],
)
def test_parse_limit_refuses_bad_input_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_limit(text)


def test_parse_limits_reads_a_list_per_type() -> None:
    limits = parse_limits("email=50/s; resize_image=concurrency:4")
    assert limits == {
        "email": LimitSpec("gcra", 50),
        "resize_image": LimitSpec("concurrency", 4),
    }
    with pytest.raises(ValueError, match="type=limit"):
        parse_limits("email")


def test_bounds_of_the_strict_algorithms() -> None:
    assert LimitSpec("gcra", 50).bound(1.0) == 50
    assert LimitSpec("token_bucket", 50, burst=10).bound(1.0) == 59
    assert LimitSpec("gcra", 10).bound(0.25) == 3
    assert LimitSpec("sliding_window", 50).bound(1.0) is None


# ------------------------------------------------------------------ behaviour on a given clock


async def test_gcra_spaces_units_by_the_emission_interval(aredis: AsyncRedis) -> None:
    limiter = redis_limiter(aredis, parse_limit("gcra:50/s"))
    first = await limiter.acquire("email", ["a", "b", "c"], now=T0)
    assert (first.granted, first.retry_after, first.interval) == (1, pytest.approx(0.02), 0.02)
    assert first.now == T0
    assert first.delay_for(1) == pytest.approx(0.04)
    too_soon = await limiter.acquire("email", ["b"], now=T0 + 0.019)
    assert too_soon.granted == 0
    assert too_soon.retry_after == pytest.approx(0.001)
    assert (await limiter.acquire("email", ["b"], now=T0 + 0.02)).granted == 1
    assert (await limiter.acquire("other", ["x"], now=T0 + 0.02)).granted == 1  # keys are apart


async def test_token_bucket_lets_a_burst_through_then_refills(aredis: AsyncRedis) -> None:
    limiter = redis_limiter(aredis, parse_limit("token_bucket:10/s:burst=5"))
    burst = await limiter.acquire("k", [str(i) for i in range(8)], now=T0)
    assert (burst.granted, burst.remaining) == (5, 0)
    assert burst.retry_after == pytest.approx(0.1)
    assert (await limiter.acquire("k", ["x"], now=T0 + 0.1)).granted == 1
    full = await limiter.acquire("k", list("abcdefg"), now=T0 + 10)
    assert full.granted == 5  # never more than the bucket holds, however long it rested


async def test_sliding_window_weights_the_previous_window(aredis: AsyncRedis) -> None:
    limiter = redis_limiter(aredis, parse_limit("sliding_window:10/s"))
    start = float(int(T0))  # the start of an aligned window
    assert (await limiter.acquire("k", list("0123456789ab"), now=start)).granted == 10
    # Half-way through the next window, the previous one still weighs 10 * 0.5.
    half = await limiter.acquire("k", list("0123456789"), now=start + 1.5)
    assert half.granted == 5
    assert half.retry_after > 0


async def test_concurrency_slots_are_released_and_a_dead_holders_lease_expires(
    aredis: AsyncRedis,
) -> None:
    limiter = redis_limiter(aredis, parse_limit("concurrency:2:lease=10"))
    assert isinstance(limiter, RedisConcurrency)
    assert (await limiter.acquire("img", ["a", "b", "c"], now=T0)).granted == 2
    assert (await limiter.acquire("img", ["c"], now=T0 + 1)).granted == 0
    assert (await limiter.acquire("img", ["a"], now=T0 + 1)).granted == 1  # a holder keeps its slot
    await limiter.release("img", ["a"], now=T0 + 2)
    assert (await limiter.acquire("img", ["c"], now=T0 + 2)).granted == 1
    assert sorted(await limiter.holders("img")) == ["b", "c"]
    # b never releases (its worker died) but c renews: after b's lease only b's slot is back.
    await limiter.renew("img", ["c"], now=T0 + 9)
    later = await limiter.acquire("img", ["d", "e"], now=T0 + 11)
    assert later.granted == 1
    assert sorted(await limiter.holders("img")) == ["c", "d"]


async def test_concurrency_retry_follows_the_measured_hold_time(aredis: AsyncRedis) -> None:
    limiter = redis_limiter(aredis, parse_limit("concurrency:2"))
    await limiter.acquire("k", ["a", "b"], now=T0)
    await limiter.release("k", ["a"], now=T0 + 0.4)
    await limiter.acquire("k", ["c"], now=T0 + 0.4)
    denied = await limiter.acquire("k", ["d"], now=T0 + 0.5)
    assert denied.granted == 0
    assert denied.retry_after == pytest.approx(0.2)  # a slot is held 0.4 s: one frees every 0.2 s


# ------------------------------------------------------------------ Redis and in-process agree

SPECS = [
    LimitSpec("token_bucket", 5, 1.0, burst=3),
    LimitSpec("gcra", 7, 0.5, burst=2),
    LimitSpec("sliding_window", 4, 0.25),
    LimitSpec("concurrency", 3, lease=0.3),
]
steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=200_000),  # microseconds since the previous request
        st.integers(min_value=1, max_value=6),  # units asked for
        st.booleans(),  # concurrency: release what the previous request got
    ),
    min_size=1,
    max_size=40,
)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.algorithm)
@settings(max_examples=40, deadline=None)
@given(sequence=steps)
def test_redis_and_in_process_limiters_decide_alike(
    redis_server: RedisServer, spec: LimitSpec, sequence: list[tuple[int, int, bool]]
) -> None:
    redis_url = redis_server.url  # session-scoped; each example uses a key of its own

    async def replay() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        client = AsyncRedis.from_url(redis_url)
        try:
            remote = redis_limiter(client, spec)
            local = local_limiter(spec)
            key = uuid.uuid4().hex
            got: tuple[list[tuple[object, ...]], list[tuple[object, ...]]] = ([], [])
            now_us = int(T0 * 1_000_000)
            previous: list[str] = []
            for i, (gap, n, release) in enumerate(sequence):
                now_us += gap
                now = now_us / 1_000_000
                if release and previous:
                    await remote.release(key, previous, now=now)
                    await local.release(key, previous, now=now)
                ids = [f"{i}.{j}" for j in range(n)]
                for limiter, out in ((remote, got[0]), (local, got[1])):
                    d = await limiter.acquire(key, ids, now=now)
                    out.append((d.granted, d.retry_after, d.interval, d.remaining, d.now))
                previous = ids[: got[0][-1][0]]  # type: ignore[misc]
            return got
        finally:
            await client.aclose()

    remote, local = asyncio.run(replay())
    assert remote == local


# ------------------------------------------------------------------ strict bounds, any sequence

arrivals = st.lists(st.integers(min_value=0, max_value=30_000), min_size=1, max_size=300)


@pytest.mark.parametrize(
    "spec",
    [LimitSpec("gcra", 20), LimitSpec("token_bucket", 20, burst=5), LimitSpec("gcra", 3, 0.1, 4)],
    ids=["gcra", "token_bucket-burst", "gcra-burst"],
)
@settings(max_examples=60, deadline=None)
@given(gaps=arrivals)
def test_strict_limiters_never_pass_their_bound_in_any_window(
    spec: LimitSpec, gaps: list[int]
) -> None:
    limiter = local_limiter(spec)
    now, admitted = T0, []
    for gap in gaps:
        now += gap / 1_000_000
        if limiter.try_acquire("k", now=now).granted:
            admitted.append(now)
    for window in (spec.period, spec.period / 3, 2.5 * spec.period):
        bound = spec.bound(window)
        assert bound is not None
        assert max_in_window(admitted, window) <= bound


@settings(max_examples=60, deadline=None)
@given(gaps=arrivals)
def test_sliding_window_bounds_each_aligned_window(gaps: list[int]) -> None:
    spec = LimitSpec("sliding_window", 5, 0.01)
    limiter = local_limiter(spec)
    now, per_window = T0, dict[int, int]()
    for gap in gaps:
        now += gap / 1_000_000
        if limiter.try_acquire("k", now=now).granted:
            index = round(now * 1_000_000) // 10_000
            per_window[index] = per_window.get(index, 0) + 1
    assert max(per_window.values(), default=0) <= spec.limit


def test_a_saturated_limiter_achieves_its_rate() -> None:
    spec = LimitSpec("gcra", 50)
    limiter = local_limiter(spec)
    admitted = [
        T0 + i / 1000 for i in range(3000) if limiter.try_acquire("k", now=T0 + i / 1000).granted
    ]
    assert rate_series(admitted, 1.0) == [50, 50, 50]


# ------------------------------------------------------------------ the measuring helpers


def test_max_in_window_counts_half_open_windows() -> None:
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 1.0, 1.2], 1.0) == 3
    assert max_in_window([0.0, 1.0, 2.0], 1.0) == 1


def test_max_overlap_does_not_count_touching_intervals() -> None:
    assert max_overlap([(0, 1), (1, 2), (0.5, 1.5)]) == 2
    assert max_overlap([]) == 0
