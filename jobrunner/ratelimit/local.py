"""In-process limiters: the same algorithms as the Redis scripts, with the same arithmetic (whole
microseconds, the same float operations in the same order), so both decide alike; a test
replays random request sequences through both.

For one process only: the load generator, the simulation and comparisons. Limits that guard a
resource shared by several processes live in Redis (``jobrunner.ratelimit.distributed``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jobrunner.ratelimit.base import Decision
from jobrunner.ratelimit.spec import LimitSpec

US = 1_000_000
DEFAULT_HOLD = 0.1  # seconds a concurrency slot is assumed held before any was measured
HOLD_WEIGHT = 0.2  # weight of a new hold time in the moving average


def to_us(seconds: float) -> int:
    return round(seconds * US)


def decision(granted: int, requested: int, retry: float, interval: float, remaining: float,
             now_us: int) -> Decision:  # fmt: skip
    return Decision(granted=granted, requested=requested, retry_after=retry / US,
                    interval=interval / US, remaining=remaining, now=now_us / US)  # fmt: skip


class LocalLimiter:
    """Base: a clock (seconds; ``time.monotonic`` by default), one state per key."""

    def __init__(self, spec: LimitSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.clock = clock

    def _now_us(self, now: float | None) -> int:
        return to_us(self.clock() if now is None else now)

    def try_acquire(self, key: str, n: int = 1, now: float | None = None) -> Decision:
        """Synchronous ``acquire`` of ``n`` anonymous units."""
        return self._decide(key, [str(i) for i in range(n)], self._now_us(now))

    async def acquire(self, key: str, ids: Sequence[str], now: float | None = None) -> Decision:
        return self._decide(key, list(ids), self._now_us(now))

    async def release(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        return None

    async def renew(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        return None

    def _decide(self, key: str, ids: list[str], now: int) -> Decision:
        raise NotImplementedError


class LocalTokenBucket(LocalLimiter):
    def __init__(self, spec: LimitSpec, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, clock)
        self._state: dict[str, tuple[float, int]] = {}  # key -> (tokens, last refill us)

    def _decide(self, key: str, ids: list[str], now: int) -> Decision:
        rate, burst, n = self.spec.rate / US, float(self.spec.burst), len(ids)
        tokens, last = burst, now
        if key in self._state:
            stored, ts = self._state[key]
            last = max(now, ts)
            tokens = min(burst, stored + max(0, now - ts) * rate)
        granted = min(n, math.floor(tokens))
        tokens = tokens - granted
        retry = (1 - tokens) / rate if granted < n else 0.0
        self._state[key] = (tokens, last)
        return decision(granted, n, retry, 1 / rate, tokens, now)


class LocalGCRA(LocalLimiter):
    def __init__(self, spec: LimitSpec, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, clock)
        self._tat: dict[str, float] = {}

    def _decide(self, key: str, ids: list[str], now: int) -> Decision:
        interval = US / self.spec.rate
        tau = (self.spec.burst - 1) * interval
        n = len(ids)
        tat = self._tat.get(key, float(now))
        granted = 0
        while granted < n and not now < tat - tau:
            tat = max(tat, now) + interval
            granted += 1
        tat = float(math.ceil(tat))
        retry = max(0.0, tat - tau - now) if granted < n else 0.0
        remaining = max(0, math.floor((now + tau - max(tat, now)) / interval) + 1)
        if granted > 0:
            self._tat[key] = tat
        return decision(granted, n, retry, interval, remaining, now)


class LocalSlidingWindow(LocalLimiter):
    def __init__(self, spec: LimitSpec, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, clock)
        self._windows: dict[str, tuple[int, int, int]] = {}  # key -> (index, current, previous)

    def _decide(self, key: str, ids: list[str], now: int) -> Decision:
        window, limit, n = to_us(self.spec.period), self.spec.limit, len(ids)
        idx = now // window
        cur, prev = 0, 0
        if key in self._windows:
            w, c, p = self._windows[key]
            if w >= idx:
                idx, cur, prev = w, c, p
            elif w == idx - 1:
                prev = c
        elapsed = max(0, now - idx * window)
        weight = (window - elapsed) / window
        granted = 0
        while granted < n and prev * weight + cur + 1 <= limit:
            cur += 1
            granted += 1
        retry = 0.0
        if granted < n:
            room = limit - cur - 1
            if room >= 0:
                at = idx * window + window * (1 - room / prev)
            else:
                at = (idx + 1) * window + window * (1 - (limit - 1) / cur)
            retry = float(max(0, math.ceil(at - now)))
        self._windows[key] = (idx, cur, prev)
        remaining = max(0.0, limit - prev * weight - cur)
        return decision(granted, n, retry, window / limit, remaining, now)


@dataclass
class _Slots:
    deadline: dict[str, int] = field(default_factory=dict)  # id -> lease deadline (us)
    since: dict[str, int] = field(default_factory=dict)  # id -> acquired (us)
    hold: float | None = None  # moving average of hold times (us)


class LocalConcurrency(LocalLimiter):
    """A semaphore with leases: a holder that never releases loses its slot after ``lease``."""

    def __init__(self, spec: LimitSpec, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, clock)
        self._keys: dict[str, _Slots] = {}

    def _decide(self, key: str, ids: list[str], now: int) -> Decision:
        slots = self._keys.setdefault(key, _Slots())
        for held, deadline in list(slots.deadline.items()):
            if deadline <= now:
                del slots.deadline[held]
                slots.since.pop(held, None)
        limit, lease = self.spec.limit, to_us(self.spec.lease)
        granted = 0
        for unit in ids:
            if unit not in slots.deadline:
                if len(slots.deadline) >= limit:
                    break
                slots.since[unit] = now
            slots.deadline[unit] = now + lease
            granted += 1
        hold = slots.hold if slots.hold is not None else float(to_us(DEFAULT_HOLD))
        retry = hold / limit if granted < len(ids) else 0.0
        free = limit - len(slots.deadline)
        return decision(granted, len(ids), retry, hold / limit, free, now)

    async def release(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        slots = self._keys.get(key)
        if slots is None:
            return
        now_us = self._now_us(now)
        for unit in ids:
            since = slots.since.pop(unit, None)
            if slots.deadline.pop(unit, None) is not None and since is not None:
                held = max(0, now_us - since)
                slots.hold = (
                    held
                    if slots.hold is None
                    else HOLD_WEIGHT * held + (1 - HOLD_WEIGHT) * slots.hold
                )

    async def renew(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        slots = self._keys.get(key)
        if slots is None:
            return
        deadline = self._now_us(now) + to_us(self.spec.lease)
        for unit in ids:
            if unit in slots.deadline:
                slots.deadline[unit] = deadline


LOCAL_LIMITERS: dict[str, type[LocalLimiter]] = {
    "token_bucket": LocalTokenBucket,
    "gcra": LocalGCRA,
    "sliding_window": LocalSlidingWindow,
    "concurrency": LocalConcurrency,
}


def local_limiter(spec: LimitSpec, clock: Callable[[], float] = time.monotonic) -> LocalLimiter:
    """The in-process limiter for ``spec``."""
    return LOCAL_LIMITERS[spec.algorithm](spec, clock)
