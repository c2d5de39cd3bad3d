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
from redis.exceptions import RedisError

from jobrunner.api.errors import ApiError
from jobrunner.config import Settings
from jobrunner.ratelimit.distributed import RedisLimiter, redis_limiter
from jobrunner.ratelimit.spec import parse_limit

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_CLIENT_ID = 128  # characters of a client id that name its budget


def ingress_limit(settings: Settings) -> Callable[[Request], Awaitable[None]] | None:
    """A FastAPI dependency enforcing the per-client limit, or None when none is configured."""
    if not settings.ingress_rate.strip():
        return None
    spec = parse_limit(settings.ingress_rate)
    if spec.algorithm == "concurrency":
        raise ValueError("an ingress limit is a rate (e.g. '100/s'), not a concurrency limit")
    header = settings.ingress_client_header
    limiters: dict[int, RedisLimiter] = {}  # per Redis client (one per app lifespan)

    async def limit_ingress(request: Request) -> None:
        if request.url.path in EXEMPT:
            return
        client = request.headers.get(header) or (request.client.host if request.client else "-")
        redis = request.app.state.queue.redis
        limiter = limiters.get(id(redis))
        if limiter is None:
            limiters.clear()
            limiter = limiters[id(redis)] = redis_limiter(redis, spec, prefix=settings.prefix)
        try:
            decision = await limiter.acquire(f"ingress:{client[:MAX_CLIENT_ID]}", ["request"])
        except RedisError:
            return  # fail open: the route itself answers 503 if it needs Redis
        if not decision.allowed:
            wait = decision.retry_after
            raise ApiError(
                429,
                "rate_limited",
                f"client {client[:MAX_CLIENT_ID]!r} is over its limit of {spec.describe()}; "
                f"retry in {wait:.3f}s",
                field=header if request.headers.get(header) else None,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    return limit_ingress
