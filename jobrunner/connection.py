"""Building Redis clients the same way everywhere (timeouts, retries, connection pool size).

A ``redis+cluster://`` (or ``rediss+cluster://``) URL names a Redis Cluster by any of its nodes:
the client is then redis-py's cluster client, which routes each command, and each transition
script, to the node that serves its keys' slot (every script's keys share one ``{queue}`` hash
tag), and follows MOVED/ASK redirections and failovers by refreshing its slot map.
"""

from __future__ import annotations

from typing import Any, cast

from redis import BlockingConnectionPool as SyncBlockingConnectionPool
from redis import Redis as SyncRedis
from redis import RedisCluster as SyncRedisCluster
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from jobrunner.errors import ConfigError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# per node: a cluster client's pool raises rather than waits when it is exhausted, so it is
# sized for every blocking wait (one per watched queue) and burst a process makes at once
CLUSTER_CONNECTIONS = 256


def cluster_url(url: str) -> str | None:
    """The plain ``redis://`` URL of a node when ``url`` names a Redis Cluster, else None."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}{sep}{rest}" if plain and sep else None


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a Redis Cluster client (sync or asyncio)."""
    return isinstance(client, RedisCluster | SyncRedisCluster)


def _cluster_options() -> dict[str, Any]:
    return {
        "max_connections": CLUSTER_CONNECTIONS,
        "socket_connect_timeout": 2.0,
        "socket_timeout": 10.0,
    }


def _require(url: str | None) -> str:
    if not url:
        raise ConfigError("no Redis URL: pass --redis-url or set REDIS_URL / JOBRUNNER_REDIS_URL")
    return url


def async_redis(url: str | None, *, max_connections: int = 32) -> Redis:
    """An asyncio client for ``url``; retries a command once on a dropped connection.

    The pool *blocks* when all its connections are busy (the default pool raises instead):
    a burst of concurrent writes, such as many jobs released at once after a child process
    died, must wait its turn, not fail. A cluster URL gives a cluster client, typed as
    ``Redis``: it offers the same commands, and the few places that differ ask ``is_cluster``.
    """
    url = _require(url)
    if (node := cluster_url(url)) is not None:
        return cast(Redis, RedisCluster.from_url(node, **_cluster_options()))
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


def sync_redis(
    url: str | None, *, max_connections: int = 16, socket_timeout: float = 10.0,
    decode_responses: bool = False,
) -> SyncRedis:  # fmt: skip
    """A blocking client for ``url``, set up like ``async_redis`` (for ``SyncClient``, checks
    and notebooks; ``decode_responses`` gives str replies)."""
    url = _require(url)
    if (node := cluster_url(url)) is not None:
        options = {**_cluster_options(), "socket_timeout": socket_timeout}
        return cast(SyncRedis, SyncRedisCluster.from_url(
            node, decode_responses=decode_responses, **options))  # fmt: skip
    pool = SyncBlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20,
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout,
        decode_responses=decode_responses,
        retry=SyncRetry(ExponentialBackoff(cap=0.5, base=0.01), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return SyncRedis.from_pool(pool)
