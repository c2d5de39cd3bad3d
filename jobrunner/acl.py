"""The least a Redis ACL user needs to run jobrunner: these commands, on its own keys.

Every command the worker, API, scheduler, limiters, token store and CLI send, inside scripts
or not (``tests/test_redis_tls_acl.py`` runs them all through a user made from this rule).
``CONFIG GET`` is left out on purpose: it can read settings a job system has no business with,
and the start-up checks that use it (``preflight.py``) skip quietly without it.
"""

from __future__ import annotations

from jobrunner.keys import PREFIX

ACL_COMMANDS = (
    "ping", "time",
    "evalsha", "script|load", "script|exists", "multi", "exec",
    "get", "set", "del", "exists", "incr", "pexpire", "pttl",
    "hget", "hset", "hdel", "hmget", "hgetall", "hincrby",
    "llen", "lpush", "rpush", "rpop", "blpop", "blmove",
    "sadd", "srem", "smembers",
    "zadd", "zcard", "zrange", "zrangebyscore", "zrevrange", "zrem", "zscore",
    # the history stream (Settings.history > 0): the scripts write it, the archiver reads it
    "xadd", "xtrim", "xlen", "xgroup|create", "xreadgroup", "xautoclaim", "xack", "xdel",
)  # fmt: skip


def acl_rule(user: str, password: str = "<password>", prefix: str = PREFIX) -> list[str]:
    """The words of ``ACL SETUSER`` for a user that may run jobrunner and nothing else."""
    return [user, "reset", "on", f">{password}", f"~{prefix}:*", "resetchannels", "-@all",
            *(f"+{command}" for command in ACL_COMMANDS)]  # fmt: skip
