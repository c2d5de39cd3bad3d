"""Rate- and concurrency-limited handlers for the multi-process limit test; importable by worker
processes (``--import tests.limited_jobs``).

Each records one JSON line per run in the Redis list ``test:limited:<type>`` (the URL travels
in the payload): job id, attempt, process id, and when the handler started and ended.
"""

from __future__ import annotations

import json
import os
import time
from functools import cache
from typing import Any

import redis

from jobrunner.registry import JobContext, handler

# The limits the test checks against; tests/test_ratelimit_workers_processes.py reads them here.
LIMITS = {
    "limited.gcra": "gcra:20/s",
    "limited.token_bucket": "token_bucket:20/s:burst=5",
    "limited.concurrency": "concurrency:2",
}


@cache
def _ledger(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def ledger_key(job_type: str) -> str:
    return f"test:limited:{job_type}"


def _run(payload: dict[str, Any], ctx: JobContext) -> None:
    start = time.time()
    if payload.get("seconds"):
        time.sleep(payload["seconds"])  # holding the resource the limit guards
    end = time.time()
    line = {"id": ctx.job_id, "attempt": ctx.attempt, "pid": os.getpid(), "start": start,
            "end": end}  # fmt: skip
    _ledger(payload["ledger"]).rpush(ledger_key(ctx.type), json.dumps(line))


@handler("limited.gcra", limit=LIMITS["limited.gcra"])
def limited_gcra(payload: dict[str, Any], ctx: JobContext) -> None:
    _run(payload, ctx)


@handler("limited.token_bucket", limit=LIMITS["limited.token_bucket"])
def limited_token_bucket(payload: dict[str, Any], ctx: JobContext) -> None:
    _run(payload, ctx)


@handler("limited.concurrency", limit=LIMITS["limited.concurrency"])
def limited_concurrency(payload: dict[str, Any], ctx: JobContext) -> None:
    _run(payload, ctx)
