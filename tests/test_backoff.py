"""Properties of every retry delay strategy, checked over random bases, caps, attempts and seeds."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobrunner.backoff import (
    STRATEGIES,
    Constant,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
    Linear,
    backoff_from_name,
)

JITTERED = ("full_jitter", "equal_jitter", "decorrelated_jitter")
DETERMINISTIC = ("constant", "linear", "exponential")

# Zero, or at least 1e-300: halving a float near the subnormal range is not exact, which would
# test float rounding rather than retries.
bases = st.just(0.0) | st.floats(min_value=1e-300, max_value=1e4)
caps = st.just(0.0) | st.floats(min_value=1e-300, max_value=1e6)
attempts = st.integers(min_value=1, max_value=10_000)
previous_delays = st.none() | st.just(0.0) | st.floats(min_value=1e-300, max_value=1e7)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
names = st.sampled_from(sorted(STRATEGIES))

# Attempt counters live in Redis as 64-bit integers: these are the extremes a delay must survive.
HUGE_ATTEMPTS = (1_024, 10_000, 2**31, 2**53, 2**63 - 1)


def exact_exponential(base: float, cap: float, attempt: int) -> float:
    """min(cap, base * 2**(attempt-1)) computed without rounding or overflow."""
    return float(min(Fraction(cap), Fraction(base) * 2 ** (attempt - 1)))


def test_every_strategy_is_covered_here() -> None:
    assert set(STRATEGIES) == set(JITTERED) | set(DETERMINISTIC)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("constant", Constant),
        ("linear", Linear),
        ("exponential", Exponential),
        ("full_jitter", FullJitter),
        ("equal_jitter", EqualJitter),
        ("decorrelated_jitter", DecorrelatedJitter),
    ],
)
def test_backoff_from_name_builds_the_named_class_with_the_given_limits(
    name: str, cls: type
) -> None:
    strategy = backoff_from_name(name, base=0.25, cap=7.0, rng=random.Random(1))
    assert type(strategy) is cls
    assert strategy.cap == 7.0
    assert strategy.base == 0.25  # type: ignore[attr-defined]


def test_jittered_strategies_use_the_injected_rng() -> None:
    rng = random.Random(3)
    for name in JITTERED:
        assert backoff_from_name(name, rng=rng).rng is rng  # type: ignore[attr-defined]


@given(name=names, base=bases, cap=caps, attempt=attempts, previous=previous_delays, seed=seeds)
def test_delay_is_never_negative_and_never_above_the_cap(
    name: str, base: float, cap: float, attempt: int, previous: float | None, seed: int
) -> None:
    strategy = backoff_from_name(name, base=base, cap=cap, rng=random.Random(seed))
    delay = strategy.delay(attempt, previous)
    assert isinstance(delay, float)
    assert 0.0 <= delay <= cap


@pytest.mark.parametrize("attempt", HUGE_ATTEMPTS)
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_huge_attempt_numbers_do_not_overflow(name: str, attempt: int) -> None:
    strategy = backoff_from_name(name, base=0.5, cap=60.0, rng=random.Random(7))
    for previous in (None, 0.0, 30.0, 1e9):
        delay = strategy.delay(attempt, previous)
        assert 0.0 <= delay <= 60.0
    if name in ("linear", "exponential"):
        assert strategy.delay(attempt) == 60.0  # long since saturated


@given(name=names, base=bases, cap=caps, seed=seeds)
def test_attempt_numbers_below_one_count_as_the_first_attempt(
    name: str, base: float, cap: float, seed: int
) -> None:
    first = backoff_from_name(name, base=base, cap=cap, rng=random.Random(seed)).delay(1)
    for attempt in (0, -1, -1000):
        again = backoff_from_name(name, base=base, cap=cap, rng=random.Random(seed))
        assert again.delay(attempt) == first


@given(base=bases, cap=caps, attempt=attempts, previous=previous_delays)
def test_constant_is_the_base_capped(
    base: float, cap: float, attempt: int, previous: float | None
) -> None:
    assert backoff_from_name("constant", base=base, cap=cap).delay(attempt, previous) == min(
        base, cap
    )


@given(base=bases, cap=caps, attempt=attempts, previous=previous_delays)
def test_linear_is_exact_and_non_decreasing(
    base: float, cap: float, attempt: int, previous: float | None
) -> None:
    strategy = backoff_from_name("linear", base=base, cap=cap)
    delay = strategy.delay(attempt, previous)
    assert delay == min(cap, base * attempt)
    assert strategy.delay(attempt + 1, previous) >= delay


# Exact down to bases of 1e-6: below cap / 2**63 see test_exponential_reaches_a_cap_far_above_base.
@given(
    base=st.floats(min_value=1e-6, max_value=1e4),
    cap=caps,
    attempt=attempts,
    previous=previous_delays,
)
def test_exponential_is_exact_and_non_decreasing(
    base: float, cap: float, attempt: int, previous: float | None
) -> None:
    strategy = backoff_from_name("exponential", base=base, cap=cap)
    delay = strategy.delay(attempt, previous)
    assert delay == exact_exponential(base, cap, attempt)
    assert strategy.delay(attempt + 1, previous) >= delay


def test_exponential_doubles_from_the_base_until_the_cap() -> None:
    strategy = backoff_from_name("exponential", base=0.5, cap=60.0)
    assert [strategy.delay(a) for a in range(1, 10)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0
    ]  # fmt: skip


def test_exponential_reaches_a_cap_far_above_base() -> None:
    strategy = backoff_from_name("exponential", base=1e-15, cap=1e6)
    assert strategy.delay(200) == 1e6


@given(base=bases, cap=caps, attempt=attempts, previous=previous_delays, seed=seeds)
def test_full_jitter_stays_within_zero_and_the_exponential_delay(
    base: float, cap: float, attempt: int, previous: float | None, seed: int
) -> None:
    strategy = backoff_from_name("full_jitter", base=base, cap=cap, rng=random.Random(seed))
    ceiling = backoff_from_name("exponential", base=base, cap=cap).delay(attempt)
    assert 0.0 <= strategy.delay(attempt, previous) <= ceiling


@given(base=bases, cap=caps, attempt=attempts, previous=previous_delays, seed=seeds)
def test_equal_jitter_stays_within_half_and_all_of_the_exponential_delay(
    base: float, cap: float, attempt: int, previous: float | None, seed: int
) -> None:
    strategy = backoff_from_name("equal_jitter", base=base, cap=cap, rng=random.Random(seed))
    ceiling = backoff_from_name("exponential", base=base, cap=cap).delay(attempt)
    assert ceiling / 2 <= strategy.delay(attempt, previous) <= ceiling


@given(base=bases, cap=caps, attempt=attempts, previous=previous_delays, seed=seeds)
def test_decorrelated_jitter_grows_from_the_previous_delay(
    base: float, cap: float, attempt: int, previous: float | None, seed: int
) -> None:
    strategy = backoff_from_name("decorrelated_jitter", base=base, cap=cap, rng=random.Random(seed))
    last = base if previous is None else max(base, previous)
    # uniform(base, 3 * last), then capped: a cap below the base wins over the base.
    assert min(base, cap) <= strategy.delay(attempt, previous) <= min(cap, 3 * last)


def test_decorrelated_jitter_ignores_the_attempt_number() -> None:
    one = backoff_from_name("decorrelated_jitter", base=1.0, cap=1e6, rng=random.Random(5))
    other = backoff_from_name("decorrelated_jitter", base=1.0, cap=1e6, rng=random.Random(5))
    assert [one.delay(1, 10.0) for _ in range(20)] == [other.delay(999, 10.0) for _ in range(20)]


@given(name=names, base=bases, cap=caps, seed=seeds)
def test_a_seeded_rng_reproduces_the_sequence(
    name: str, base: float, cap: float, seed: int
) -> None:
    def sequence() -> list[float]:
        strategy = backoff_from_name(name, base=base, cap=cap, rng=random.Random(seed))
        delays: list[float] = []
        previous: float | None = None
        for attempt in range(1, 30):
            previous = strategy.delay(attempt, previous)
            delays.append(previous)
        return delays

    assert sequence() == sequence()


@pytest.mark.parametrize("name", JITTERED)
def test_jittered_strategies_actually_vary(name: str) -> None:
    strategy = backoff_from_name(name, base=1.0, cap=1000.0, rng=random.Random(11))
    delays = [strategy.delay(5, 4.0) for _ in range(500)]
    assert len(set(delays)) > 400
    assert max(delays) - min(delays) > 1.0


@pytest.mark.parametrize("name", JITTERED)
def test_different_seeds_give_different_sequences(name: str) -> None:
    def sequence(seed: int) -> list[float]:
        strategy = backoff_from_name(name, base=1.0, cap=1000.0, rng=random.Random(seed))
        return [strategy.delay(a) for a in range(1, 20)]

    assert sequence(1) != sequence(2)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_strategies_do_not_vary(name: str) -> None:
    strategy = backoff_from_name(name, base=1.0, cap=1000.0, rng=random.Random(11))
    assert len({strategy.delay(5, 4.0) for _ in range(100)}) == 1


def test_full_jitter_spreads_over_the_whole_range() -> None:
    strategy = backoff_from_name("full_jitter", base=1.0, cap=8.0, rng=random.Random(2))
    delays = [strategy.delay(4) for _ in range(2000)]  # exponential delay 8.0
    assert min(delays) < 0.5
    assert max(delays) > 7.5
    assert 3.5 < sum(delays) / len(delays) < 4.5


def test_unknown_name_raises_and_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown backoff 'fibonacci'") as info:
        backoff_from_name("fibonacci")
    for name in STRATEGIES:
        assert name in str(info.value)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_negative_base_raises(name: str) -> None:
    with pytest.raises(ValueError, match="base must be a number >= 0"):
        backoff_from_name(name, base=-0.1)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_negative_cap_raises(name: str) -> None:
    with pytest.raises(ValueError, match="cap must be a number >= 0"):
        backoff_from_name(name, cap=-1.0)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_zero_base_and_cap_are_allowed_and_give_zero(name: str) -> None:
    strategy = backoff_from_name(name, base=0.0, cap=0.0, rng=random.Random(0))
    assert strategy.delay(3, 5.0) == 0.0
