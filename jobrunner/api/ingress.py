"""Ingress limits on the API: each client gets its own budget (``JOBRUNNER_INGRESS_RATE``, e.g.
``100/s``), kept in Redis so several API processes share it; over it, a request is answered 429
with ``Retry-After`` in the API's Problem shape. Off unless configured.

The client is named by a header (``X-Client-Id`` by default), else by its IP address. Health,
readiness and metrics stay unlimited: the probes that watch an overloaded API must get through.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobrunner.api.errors import ApiError
from jobrunner.config import Settings
from jobrunner.ratelimit.distributed import RedisLimiter, redis_limiter
from jobrunner.ratelimit.spec import parse_limit

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_CLIENT_ID = 128  # characters of a client id that name its budget


class IngressLimiter:
    """The per-client budget of ``JOBRUNNER_INGRESS_RATE``, shared by the HTTP and gRPC APIs."""

    def __init__(self, settings: Settings) -> None:
        self.spec = parse_limit(settings.ingress_rate)
        if self.spec.algorithm == "concurrency":
            raise ValueError("an ingress limit is a rate (e.g. '100/s'), not a concurrency limit")
        self.header = settings.ingress_client_header
        self.prefix = settings.prefix
        self._limiters: dict[int, RedisLimiter] = {}  # per Redis client (one per app lifespan)

    async def check(self, redis: Redis, client: str, named: bool) -> None:
        """A 429 ``rate_limited`` ApiError when ``client`` (named by the header, else its
        address) is over its budget; fails open when Redis cannot answer."""
        limiter = self._limiters.get(id(redis))
        if limiter is None:
            self._limiters.clear()
            limiter = self._limiters[id(redis)] = redis_limiter(redis, self.spec,
                                                                prefix=self.prefix)  # fmt: skip
        try:
            decision = await limiter.acquire(f"ingress:{client[:MAX_CLIENT_ID]}", ["request"])
        except RedisError:
            return  # fail open: the call itself answers 503 if it needs Redis
        if not decision.allowed:
            wait = decision.retry_after
            raise ApiError(
                429,
                "rate_limited",
                f"client {client[:MAX_CLIENT_ID]!r} is over its limit of {self.spec.describe()}; "
                f"retry in {wait:.3f}s",
                field=self.header if named else None,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def ingress_limiter(settings: Settings) -> IngressLimiter | None:
    """The limiter ``settings`` configure, or None when no ingress rate is set."""
    return IngressLimiter(settings) if settings.ingress_rate.strip() else None


def ingress_limit(settings: Settings) -> Callable[[Request], Awaitable[None]] | None:
    """A FastAPI dependency enforcing the per-client limit, or None when none is configured."""
    limiter = ingress_limiter(settings)
    if limiter is None:
        return None
    header = limiter.header

    async def limit_ingress(request: Request) -> None:
        if request.url.path in EXEMPT:
            return
        named = request.headers.get(header)
        client = named or (request.client.host if request.client else "-")
        await limiter.check(request.app.state.queue.redis, client, bool(named))

    return limit_ingress
