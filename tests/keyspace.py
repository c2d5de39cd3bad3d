"""Read the whole Redis keyspace into plain data, so a test can assert *all* of it after one step.

Timestamps are the only values that differ run to run; they are replaced by ``T`` (a hash field
holding a time) or by the offset from Redis's clock in whole seconds (sorted-set scores).
"""

from __future__ import annotations

from typing import Any

import redis

TIME_FIELDS = {"eq", "st", "fi", "fu"}
DURATION_SUMS = {"run_ms", "turnaround_ms"}  # stats: milliseconds summed on Redis's clock


def snapshot(client: redis.Redis) -> dict[str, Any]:
    sec, usec = client.time()
    now_ms = sec * 1000 + usec // 1000
    out: dict[str, Any] = {}
    for raw_key in sorted(client.keys("*")):
        key = raw_key.decode()
        kind = client.type(raw_key).decode()
        if kind == "string":
            out[key] = client.get(raw_key).decode()
        elif kind == "list":
            out[key] = [v.decode() for v in client.lrange(raw_key, 0, -1)]
        elif kind == "set":
            out[key] = sorted(v.decode() for v in client.smembers(raw_key))
        elif kind == "zset":
            out[key] = {
                m.decode(): round((score - now_ms) / 1000)
                for m, score in client.zrange(raw_key, 0, -1, withscores=True)
            }
        elif kind == "hash":
            fields = {k.decode(): v.decode() for k, v in client.hgetall(raw_key).items()}
            out[key] = {k: ("T" if k in TIME_FIELDS else v) for k, v in fields.items()}
            for name in DURATION_SUMS & set(fields):  # a duration: shown "D" when sane
                out[key][name] = "D" if 0 <= int(fields[name]) < 3_600_000 else fields[name]
        else:  # pragma: no cover - jobrunner writes no other type
            out[key] = f"<{kind}>"
    return out
