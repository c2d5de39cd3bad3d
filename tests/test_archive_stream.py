"""The history stream the terminal scripts write when history is on (keys.QueueKeys.history):
what each ending writes, that history off writes nothing, and that the bound holds and counts."""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.job import decode_job
from jobrunner.queue import ReliableQueue

STREAM = "jr:{default}:history"


def entries(sync_redis: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in sync_redis.xrange(STREAM)
    ]


async def leased(queue: ReliableQueue, *ids: str, lease: float = 20) -> list[Any]:
    for job_id in ids:
        await queue.enqueue("noop", {"n": job_id}, job_id=job_id)
    batch = await queue.reserve("default", len(ids), lease=lease)
    assert await queue.start("default", [(r.id, r.token) for r in batch]) == []
    return batch


async def test_an_acked_job_is_written_once_with_its_spec_result_and_times(
    hqueue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    (r,) = await leased(hqueue, "j1")
    assert await hqueue.ack("default", [(r.id, r.token, b'{"ok":1}')]) == []
    assert await hqueue.ack("default", [(r.id, r.token, b'{"ok":1}')]) == []  # a retried ack
    (entry,) = entries(sync_redis)
    assert decode_job(entry.pop("d").encode()).payload == {"n": "j1"}
    assert {k: entry[k] for k in ("id", "s", "a", "r")} == {
        "id": "j1", "s": "done", "a": "1", "r": '{"ok":1}'
    }  # fmt: skip
    assert int(entry["eq"]) <= int(entry["st"]) <= int(entry["fi"])


async def test_a_job_acked_with_no_result_ttl_is_written_before_its_hash_goes(
    aredis: AsyncRedis, sync_redis: redis.Redis
) -> None:
    """result_ttl 0 deletes the hash in the same script: the entry must be read before that."""
    queue = ReliableQueue(aredis, count_every=0, history=1000, result_ttl=0)
    (r,) = await leased(queue, "j1")
    await queue.ack("default", [(r.id, r.token)])
    await queue.aclose()
    assert not sync_redis.exists("jr:{default}:job:j1")
    (entry,) = entries(sync_redis)
    assert (entry["id"], entry["s"], decode_job(entry["d"].encode()).type) == ("j1", "done", "noop")


async def test_dead_and_cancelled_endings_are_written_with_their_error(
    hqueue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    dead, running, stopped = await leased(hqueue, "dead", "running", "stopped")
    assert await hqueue.fail("default", dead.id, dead.token, "boom: disk full", dead=True) == "dead"
    assert await hqueue.finish_cancelled("default", [(stopped.id, stopped.token, "asked")]) == 1
    await hqueue.enqueue("noop", job_id="waiting")
    assert await hqueue.cancel("waiting") == "cancelled"
    assert await hqueue.cancel(running.id) == "cancelling"
    assert await hqueue.fail("default", running.id, running.token, "stopped") == "cancelled"
    got = {(e["id"], e["s"], e.get("e")) for e in entries(sync_redis)}
    assert got == {
        ("dead", "dead", "boom: disk full"),
        ("stopped", "cancelled", "asked"),
        ("waiting", "cancelled", "cancelled before it started"),
        ("running", "cancelled", "stopped"),
    }


async def test_a_lease_that_runs_out_on_its_last_attempt_is_written_dead(
    aredis: AsyncRedis, sync_redis: redis.Redis
) -> None:
    queue = ReliableQueue(aredis, count_every=0, history=1000)
    await queue.enqueue("noop", job_id="j1", max_retries=0)
    (r,) = await queue.reserve("default", 1, lease=0.001)
    await queue.start("default", [(r.id, r.token)])
    sync_redis.zadd("jr:{default}:reserved", {"j1": 0})  # its lease ran out long ago
    assert (await queue.reap("default"))[:2] == (0, 1)
    await queue.aclose()
    (entry,) = entries(sync_redis)
    assert (entry["s"], entry["e"].startswith("lease expired on start 1")) == ("dead", True)


async def test_a_retried_attempt_is_not_history(
    hqueue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    (r,) = await leased(hqueue, "j1")
    assert await hqueue.fail("default", r.id, r.token, "try again") == "scheduled"
    assert not sync_redis.exists(STREAM)


async def test_history_off_writes_no_stream(queue: ReliableQueue, sync_redis: redis.Redis) -> None:
    (r,) = await leased(queue, "j1")
    await queue.ack("default", [(r.id, r.token)])
    assert not sync_redis.exists(STREAM)


async def test_the_stream_stays_near_its_bound_and_counts_what_it_trimmed(
    aredis: AsyncRedis, sync_redis: redis.Redis
) -> None:
    """MAXLEN ~ trims whole nodes (100 entries by default), so the bound holds within a node."""
    queue = ReliableQueue(aredis, count_every=0, history=200)
    ids = [f"j{i}" for i in range(1000)]
    batch = await leased(queue, *ids)
    for i in range(0, 1000, 100):
        await queue.ack("default", [(r.id, r.token) for r in batch[i : i + 100]])
    counters = (await queue.stats("default")).counters
    await queue.aclose()
    length = sync_redis.xlen(STREAM)
    assert 200 <= length <= 300
    assert counters["history_trimmed"] + length == 1000
