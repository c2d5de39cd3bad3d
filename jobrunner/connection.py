"""Building Redis clients the same way everywhere (timeouts, retries, connection pool size)."""

from __future__ import annotations

from redis import BlockingConnectionPool as SyncBlockingConnectionPool
from redis import Redis as SyncRedis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from jobrunner.errors import ConfigError


def async_redis(url: str | None, *, max_connections: int = 32) -> Redis:
    """An asyncio client for ``url``; retries a command once on a dropped connection.

    The pool *blocks* when all its connections are busy (the default pool raises instead):
    a burst of concurrent writes, such as many jobs released at once after a child process
    died, must wait its turn, not fail.
    """
    if not url:
        raise ConfigError("no Redis URL: pass --redis-url or set REDIS_URL / JOBRUNNER_REDIS_URL")
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


def sync_redis(url: str | None, *, max_connections: int = 16) -> SyncRedis:
    """A blocking client for ``url``, set up like ``async_redis`` (for ``SyncClient``)."""
    if not url:
        raise ConfigError("no Redis URL: pass --redis-url or set REDIS_URL / JOBRUNNER_REDIS_URL")
    pool = SyncBlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        retry=SyncRetry(ExponentialBackoff(cap=0.5, base=0.01), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return SyncRedis.from_pool(pool)
