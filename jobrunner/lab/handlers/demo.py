"""Demo handlers: the workloads the lab measures (IO-bound, CPU-bound, failing, no-op).

Payloads are JSON objects; every field has a default so ``{}`` works.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.registry import JobContext, handler


def _field(payload: Any, name: str, default: float) -> float:
    if isinstance(payload, dict) and name in payload:
        return float(payload[name])
    return default


@handler("noop", timeout=5)
async def noop(payload: Any) -> None:
    """Nothing at all: measures the job system's own overhead."""


@handler("echo", timeout=5)
async def echo(payload: Any) -> Any:
    """Returns its payload: ``noop`` with a result to keep (what storing results costs)."""
    return payload


@handler("email", timeout=10)
async def email(payload: Any) -> dict[str, Any]:
    """A simulated SMTP round trip: waits ``latency`` seconds (default 50 ms) without blocking."""
    await asyncio.sleep(_field(payload, "latency", 0.05))
    to = payload.get("to", "user@example.com") if isinstance(payload, dict) else "user@example.com"
    return {"sent_to": to}


@handler("sleep", timeout=60)
def sleep(payload: Any, ctx: JobContext) -> None:
    """Blocks its thread for ``seconds`` (default 0.1), checking for cancellation as it goes."""
    deadline = time.monotonic() + _field(payload, "seconds", 0.1)
    while (left := deadline - time.monotonic()) > 0:
        ctx.check()
        ctx.cancelled.wait(min(left, 0.05))


_sync_clients = threading.local()  # one connection per thread that runs the handler
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRedis] = (
    weakref.WeakKeyDictionary()
)  # one client per event loop (the asyncio worker's, or a job thread's own)


@handler("redis_incr", timeout=10)
def redis_incr(payload: Any) -> int:
    """One Redis round trip (``INCR key`` on ``url``) from blocking code: a handler that writes
    to a database, the same work bench.compare_queues gives every library's I/O handler."""
    clients: dict[str, redis.Redis] = _sync_clients.__dict__.setdefault("by_url", {})
    url = payload["url"]
    client = clients.get(url) or clients.setdefault(url, redis.Redis.from_url(url))
    return int(client.incr(payload.get("key", "bench:incr")))


@handler("redis_incr_async", timeout=10)
async def redis_incr_async(payload: Any) -> int:
    """``redis_incr`` for an event loop (redis-py's asyncio client, one per loop)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = AsyncRedis.from_url(payload["url"])
    return int(await client.incr(payload.get("key", "bench:incr")))


@handler("cpu_burn", timeout=60)
def cpu_burn(payload: Any) -> int:
    """Pure-Python arithmetic that holds the GIL: ``iterations`` (default 200,000) steps."""
    total = 0
    for i in range(int(_field(payload, "iterations", 200_000))):
        total += i * i % 7
    return total


@handler("resize_image", timeout=60)
def resize_image(payload: Any) -> list[int]:
    """Real image work: generate a ``size``-pixel square gradient, blur it and downscale it."""
    from PIL import Image, ImageFilter

    size = int(_field(payload, "size", 512))
    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    out = image.filter(ImageFilter.GaussianBlur(2)).resize(
        (size // 4, size // 4), Image.Resampling.LANCZOS
    )
    return list(out.size)


@handler("flaky", timeout=10, max_retries=5)
def flaky(payload: Any) -> str:
    """Fails with probability ``p`` (default 0.3): the retry and dead-letter demos."""
    if random.random() < _field(payload, "p", 0.3):
        raise RuntimeError("flaky dependency failed")
    return "ok"
