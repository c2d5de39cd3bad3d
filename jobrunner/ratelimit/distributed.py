"""Limiters whose state lives in Redis, so N processes together never pass the limit.

Each decision is one Lua script (``lua/ratelimit_*.lua``), atomic, on Redis's clock (``TIME``),
so the clocks of the machines running workers do not matter. Keys carry the limit key as a hash
tag: on Redis Cluster one limit lives in one slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from jobrunner.keys import PREFIX
from jobrunner.ratelimit.base import Decision
from jobrunner.ratelimit.local import DEFAULT_HOLD, HOLD_WEIGHT, US, to_us
from jobrunner.ratelimit.spec import LimitSpec
from jobrunner.scripts import script_source


def limit_key(algorithm: str, key: str, prefix: str = PREFIX) -> str:
    """Where one limit's state lives, e.g. ``jr:rl:gcra:{email}``."""
    return f"{prefix}:rl:{algorithm}:{{{key}}}"


def _now_arg(now: float | None) -> str:
    return "" if now is None else str(to_us(now))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decision(reply: Sequence[Any], requested: int) -> Decision:
    granted, retry, interval, remaining, now = reply
    return Decision(
        granted=int(granted),
        requested=requested,
        retry_after=float(_text(retry)) / US,
        interval=float(_text(interval)) / US,
        remaining=float(_text(remaining)),
        now=int(_text(now)) / US,
    )


class RedisLimiter:
    """Base: one script per decision; ``acquire`` of zero ids asks Redis nothing."""

    script_name = ""

    def __init__(self, redis: Redis, spec: LimitSpec, *, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.spec = spec
        self.prefix = prefix
        self._script: AsyncScript = redis.register_script(script_source(self.script_name))

    def key(self, key: str) -> str:
        return limit_key(self.spec.algorithm, key, self.prefix)

    def _args(self) -> list[Any]:
        raise NotImplementedError

    async def acquire(self, key: str, ids: Sequence[str], now: float | None = None) -> Decision:
        if not ids:
            return Decision(0, 0, 0.0, 1 / self.spec.rate, 0.0, 0.0)
        reply = await self._script(keys=[self.key(key)], args=[*self._args(), len(ids),
                                                              _now_arg(now)])  # fmt: skip
        return _decision(reply, len(ids))

    async def release(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        return None

    async def renew(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        return None


class RedisTokenBucket(RedisLimiter):
    script_name = "ratelimit_token_bucket"

    def _args(self) -> list[Any]:
        return [repr(self.spec.rate / US), self.spec.burst]


class RedisGCRA(RedisLimiter):
    script_name = "ratelimit_gcra"

    def _args(self) -> list[Any]:
        interval = US / self.spec.rate
        return [repr(interval), repr((self.spec.burst - 1) * interval)]


class RedisSlidingWindow(RedisLimiter):
    script_name = "ratelimit_sliding_window"

    def _args(self) -> list[Any]:
        return [to_us(self.spec.period), self.spec.limit]


class RedisConcurrency(RedisLimiter):
    """A distributed semaphore: slots are leased, renewed while held, taken back when expired."""

    script_name = "ratelimit_concurrency_acquire"

    def __init__(self, redis: Redis, spec: LimitSpec, *, prefix: str = PREFIX) -> None:
        super().__init__(redis, spec, prefix=prefix)
        self._release = redis.register_script(script_source("ratelimit_concurrency_release"))
        self._renew = redis.register_script(script_source("ratelimit_concurrency_renew"))

    def keys(self, key: str) -> list[str]:
        base = self.key(key)
        return [f"{base}:slots", f"{base}:since", f"{base}:hold"]

    async def acquire(self, key: str, ids: Sequence[str], now: float | None = None) -> Decision:
        if not ids:
            return Decision(0, 0, 0.0, 0.0, 0.0, 0.0)
        args: list[Any] = [self.spec.limit, to_us(self.spec.lease), _now_arg(now)]
        args += [to_us(DEFAULT_HOLD), *ids]
        reply = await self._script(keys=self.keys(key), args=args)
        return _decision(reply, len(ids))

    async def release(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        if ids:
            await self._release(keys=self.keys(key),
                                args=[_now_arg(now), repr(HOLD_WEIGHT), *ids])  # fmt: skip

    async def renew(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        if ids:
            keys = self.keys(key)[:2]
            await self._renew(keys=keys, args=[to_us(self.spec.lease), _now_arg(now), *ids])

    async def holders(self, key: str) -> list[str]:
        """Ids holding a slot now (expired leases included until the next acquire drops them)."""
        return [_text(m) for m in await self.redis.zrange(self.keys(key)[0], 0, -1)]


REDIS_LIMITERS: dict[str, type[RedisLimiter]] = {
    "token_bucket": RedisTokenBucket,
    "gcra": RedisGCRA,
    "sliding_window": RedisSlidingWindow,
    "concurrency": RedisConcurrency,
}


def redis_limiter(redis: Redis, spec: LimitSpec, *, prefix: str = PREFIX) -> RedisLimiter:
    """The distributed limiter for ``spec``."""
    return REDIS_LIMITERS[spec.algorithm](redis, spec, prefix=prefix)
