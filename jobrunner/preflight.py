"""Startup warnings about Redis settings under which jobs can be lost without any fault of ours.

Called once as a worker and as the API start. ``CONFIG GET`` may be disabled (managed Redis
renames it) or Redis may be down at startup: then there is nothing to say, and startup goes on.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobrunner.logs import get_logger


def persistence_warnings(config: dict[str, str]) -> list[str]:
    """What the settings ``appendonly``, ``save`` and ``maxmemory-policy`` put at risk."""
    out = []
    appendonly = config.get("appendonly", "")
    save = config.get("save", "").strip()
    if appendonly == "no" and not save:
        out.append(
            "Redis persistence is off (appendonly no, no RDB snapshots): a Redis restart loses "
            "every queued job. Set appendonly yes with appendfsync everysec."
        )
    elif appendonly == "no":
        out.append(
            f"Redis keeps only RDB snapshots (save {save!r}): a Redis crash loses the jobs "
            "enqueued since the last snapshot. Set appendonly yes with appendfsync everysec."
        )
    policy = config.get("maxmemory-policy", "")
    if policy.startswith("allkeys-"):
        out.append(
            f"Redis maxmemory-policy is {policy}: under memory pressure it evicts job keys and "
            "jobs vanish. Set noeviction: enqueues then fail clearly when Redis is full."
        )
    return out


async def warn_about_redis(redis: Redis, **context: Any) -> list[str]:
    """Log (as warnings) and return what the connected Redis's settings put at risk."""
    config: dict[str, str] = {}
    try:
        for name in ("appendonly", "save", "maxmemory-policy"):
            for key, value in (await redis.config_get(name)).items():
                config[_text(key)] = _text(value)
    except (RedisError, OSError):
        return []
    warnings = persistence_warnings(config)
    log = get_logger(component="preflight", **context)
    for text in warnings:
        log.warning("redis settings can lose jobs", detail=text)
    return warnings


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
