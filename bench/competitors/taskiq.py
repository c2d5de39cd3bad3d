"""taskiq with taskiq-redis: the ``RedisStreamBroker`` its README recommends (acknowledged
delivery), ``kiq()`` 100 at a time with ``asyncio.gather``, and one ``taskiq worker`` process."""

from __future__ import annotations

import asyncio
import time

import redis
from taskiq_redis import RedisStreamBroker

from bench.competitors import IO_KEY, console_script, io_client, io_mode, redis_url

DISTRIBUTION = "taskiq-redis"
BATCH = 100
STREAM = "taskiq"  # the broker's default queue_name and consumer group
ENQUEUE_PATH = f"task.kiq(), {BATCH} at a time with asyncio.gather (no bulk path)"
COMPLETION = (
    f"acknowledged messages of the {STREAM!r} stream's consumer group (XINFO GROUPS: "
    "entries-read - pending); taskiq acks after the result is saved, by default"
)
WORKER = "taskiq worker --workers 1 (default max_async_tasks 100, xread_count 100)"
# A stream's consumer group lives in the stream's value: renaming it away and back would replace
# the group the worker reads, so these jobs are not held back (see the report).
HELD_KEYS: tuple[str, ...] = ()

broker = RedisStreamBroker(url=redis_url())


@broker.task(task_name="noop")
async def noop() -> None:
    """Nothing at all; with ``--handler io``, one INCR."""
    if io_mode():
        await io_client().incr(IO_KEY)


def enqueue(n: int) -> float:
    async def go() -> float:
        # The client's start-up creates the consumer group (id "$"), as taskiq's docs require
        # before sending: a worker started later reads every message sent after it.
        await broker.startup()
        try:
            started = time.perf_counter()
            for first in range(0, n, BATCH):
                count = min(BATCH, n - first)
                await asyncio.gather(*(noop.kiq() for _ in range(count)))
            return time.perf_counter() - started
        finally:
            await broker.shutdown()

    return asyncio.run(go())


def worker_command(variant: str) -> list[str]:
    return [console_script("taskiq"), "worker", f"{__name__}:broker", "--workers", "1"]


def ready(client: redis.Redis, output: str) -> bool:
    return "Listening started" in output


def done(client: redis.Redis, n: int) -> int:
    for group in client.xinfo_groups(STREAM):
        if group["name"] in (STREAM, STREAM.encode()):
            return int(group["entries-read"] or 0) - int(group["pending"])
    return 0
