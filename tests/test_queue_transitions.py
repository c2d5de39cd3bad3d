"""Each Lua transition, one at a time: seed Redis, run one step, assert the whole keyspace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from jobrunner.job import Job, encode_job, make_job
from jobrunner.queue import ReliableQueue
from tests.conftest import eventually
from tests.keyspace import snapshot

Q = "jr:{default}"


def spec(job_id: str = "j1", **kw: Any) -> str:
    return encode_job(Job(id=job_id, type="noop", **kw)).decode()


def job_hash(job_id: str = "j1", **fields: str) -> dict[str, str]:
    return {"d": spec(job_id), "mr": "3", "a": "0", "eq": "T", "s": "ready", **fields}


async def enqueue(queue: ReliableQueue, job_id: str = "j1", delay: float = 0.0) -> None:
    await queue.enqueue("noop", job_id=job_id, delay=delay)


async def started(queue: ReliableQueue, lease: float = 20, count: int = 1) -> list[Any]:
    """Reserve, then mark started (as the worker does before a handler runs)."""
    batch = await queue.reserve("default", count, lease=lease)
    assert await queue.start("default", [(r.id, r.token) for r in batch]) == []
    return batch


async def test_enqueue_writes_job_hash_ready_list_and_counter(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue)
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:ready": ["j1"],
        f"{Q}:job:j1": job_hash(),
        f"{Q}:stats": {"enqueued": "1"},
    }


async def test_enqueue_with_delay_schedules_it(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, delay=30)
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:scheduled": {"j1": 30},
        f"{Q}:job:j1": job_hash(s="scheduled"),
        f"{Q}:stats": {"enqueued": "1"},
    }


async def test_enqueue_of_an_existing_id_changes_nothing(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue)
    before = snapshot(sync_redis)
    created = await queue.enqueue_jobs([Job(id="j1", type="email", payload={"x": 1})])
    assert created == [False]
    assert snapshot(sync_redis) == before


async def test_reserve_leases_with_a_fencing_token(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue)
    [r] = await queue.reserve("default", 10, lease=20)
    assert (r.id, r.token, r.attempts, r.raw.decode()) == ("j1", 1, 1, spec())
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:reserved": {"j1": 20},
        f"{Q}:fence": "1",
        f"{Q}:job:j1": job_hash(a="1", s="reserved", t="1"),
        f"{Q}:stats": {"enqueued": "1"},
    }


async def test_start_marks_the_lease_it_started_under_and_refuses_a_lost_one(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue)
    [r] = await queue.reserve("default", 1, lease=20)
    assert await queue.start("default", [(r.id, r.token), ("ghost", 7)]) == ["ghost"]
    assert snapshot(sync_redis)[f"{Q}:job:j1"] == job_hash(a="1", s="reserved", t="1", sg="1",
                                                           st="T")  # fmt: skip
    assert await queue.start("default", [(r.id, r.token + 1)]) == ["j1"]  # not its lease


async def test_reserve_takes_oldest_first_and_at_most_the_count(queue: ReliableQueue) -> None:
    for i in range(5):
        await enqueue(queue, f"j{i}")
    batch = await queue.reserve("default", 3, lease=5)
    assert [r.id for r in batch] == ["j0", "j1", "j2"]
    assert [r.token for r in batch] == [1, 2, 3]
    assert (await queue.stats("default")).ready == 2


async def test_ack_marks_done_and_keeps_the_result_for_its_ttl(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue)
    [r] = await started(queue)
    assert await queue.ack("default", [(r.id, r.token, b'{"sent": 3}')]) == []
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:fence": "1",
        f"{Q}:job:j1": job_hash(
            a="1", s="done", t="1", sg="1", st="T", fi="T", fu="T", r='{"sent": 3}'
        ),
        f"{Q}:stats": {"enqueued": "1", "processed": "1", "run_ms": "D", "turnaround_ms": "D"},
    }
    assert 599 <= sync_redis.ttl(f"{Q}:job:j1") <= 600
    finished_ms, finished_us = sync_redis.hmget(f"{Q}:job:j1", "fi", "fu")
    assert int(finished_us) // 1000 == int(finished_ms)  # one clock reading, two resolutions
    record = await queue.get_job("j1")
    assert record is not None
    assert (record.result, record.has_result) == ({"sent": 3}, True)


async def test_ack_with_zero_ttl_deletes_the_job(aredis: Any, sync_redis: redis.Redis) -> None:
    queue = ReliableQueue(aredis, result_ttl=0, count_every=0)
    await enqueue(queue)
    [r] = await queue.reserve("default", 1, lease=20)
    await queue.ack("default", [(r.id, r.token)])
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:fence": "1",
        f"{Q}:stats": {"enqueued": "1", "processed": "1", "run_ms": "D", "turnaround_ms": "D"},
    }


async def test_fail_schedules_a_retry_with_the_error(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue)
    [r] = await started(queue)
    assert await queue.fail("default", r.id, r.token, "boom", delay=10.0) == "scheduled"
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:scheduled": {"j1": 10},
        f"{Q}:fence": "1",
        f"{Q}:job:j1": job_hash(a="1", s="scheduled", t="1", sg="1", st="T", e="boom", ld="10.0"),
        f"{Q}:stats": {"enqueued": "1", "retried": "1", "failed": "1"},
    }


async def test_fail_after_the_last_retry_dead_letters(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await queue.enqueue("noop", job_id="j1", max_retries=0)
    [r] = await started(queue)
    assert await queue.fail("default", r.id, r.token, "boom", delay=10.0) == "dead"
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:dead": {"j1": 0},
        f"{Q}:fence": "1",
        f"{Q}:job:j1": {
            "d": encode_job(Job(id="j1", type="noop", max_retries=0)).decode(),
            "mr": "0",
            "a": "1",
            "eq": "T",
            "s": "dead",
            "t": "1",
            "sg": "1",
            "st": "T",
            "fi": "T",
            "e": "boom",
        },
        f"{Q}:stats": {"enqueued": "1", "dead": "1", "failed": "1"},
    }


async def test_fail_can_dead_letter_at_once(queue: ReliableQueue) -> None:
    await enqueue(queue)
    [r] = await queue.reserve("default", 1, lease=20)
    assert await queue.fail("default", r.id, r.token, "poison", dead=True) == "dead"
    record = await queue.get_job("j1")
    assert record is not None
    assert (record.state, record.attempts, record.last_error) == ("dead", 1, "poison")


async def test_promote_moves_only_due_jobs(queue: ReliableQueue, sync_redis: redis.Redis) -> None:
    await enqueue(queue, "due")
    [r] = await queue.reserve("default", 1, lease=20)
    await queue.fail("default", r.id, r.token, "boom", delay=0)
    await enqueue(queue, "later", delay=60)
    assert await queue.promote("default") == 1
    state = snapshot(sync_redis)
    assert state[f"{Q}:ready"] == ["due"]
    assert state[f"{Q}:scheduled"] == {"later": 60}
    assert state[f"{Q}:job:due"]["s"] == "ready"
    assert state[f"{Q}:job:later"]["s"] == "scheduled"


async def test_reap_returns_an_expired_lease_to_the_front(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    await enqueue(queue, "j2")
    [r] = await started(queue, lease=0)  # expires at once
    assert r.id == "j1"
    assert await queue.reap("default") == (1, 0, [])
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:ready": ["j2", "j1"],  # RPOP takes from the right: j1 is next again
        f"{Q}:fence": "1",
        f"{Q}:job:j1": job_hash(
            "j1",
            a="1",
            s="ready",
            t="1",
            sg="1",
            st="T",
            e="lease expired (worker died or stalled)",
        ),
        f"{Q}:job:j2": job_hash("j2"),
        f"{Q}:stats": {"enqueued": "2", "reaped": "1"},
    }


async def test_reap_leaves_live_leases_alone(queue: ReliableQueue, sync_redis: redis.Redis) -> None:
    await enqueue(queue)
    await queue.reserve("default", 1, lease=30)
    before = snapshot(sync_redis)
    assert await queue.reap("default") == (0, 0, [])
    assert snapshot(sync_redis) == before


async def test_reap_refunds_a_job_that_never_started(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    """A delivery is charged when a job starts: one its worker held but never started (the
    worker died with it prefetched) goes back with its attempt refunded, whatever its count."""
    await queue.enqueue("noop", job_id="j1", max_retries=0)
    for _ in range(3):  # more often than max_retries + 1 allows a job to start
        await queue.reserve("default", 1, lease=0)
        assert await queue.reap("default") == (1, 0, [])
    state = snapshot(sync_redis)
    assert state[f"{Q}:ready"] == ["j1"]
    assert state[f"{Q}:job:j1"]["a"] == "0"
    assert state[f"{Q}:job:j1"]["s"] == "ready"


async def test_a_job_that_keeps_losing_its_worker_goes_dead(queue: ReliableQueue) -> None:
    await queue.enqueue("noop", job_id="j1", max_retries=2)
    for delivery in range(1, 4):
        [r] = await started(queue, lease=0)
        assert r.attempts == delivery
        expected = (1, 0, []) if delivery < 3 else (0, 1, [])
        assert await queue.reap("default") == expected
    record = await queue.get_job("j1")
    assert record is not None
    assert record.state == "dead"
    assert record.last_error is not None
    assert "lease expired on start 3" in record.last_error


async def test_stale_completion_is_rejected_and_counted(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue)
    [first] = await started(queue, lease=0)
    await queue.reap("default")
    [second] = await queue.reserve("default", 1, lease=30)
    assert second.token > first.token
    assert await queue.ack("default", [(first.id, first.token)]) == ["j1"]
    assert await queue.fail("default", first.id, first.token, "late") == "stale"
    assert await queue.extend("default", [(first.id, first.token)], 30) == ["j1"]
    assert sync_redis.hget(f"{Q}:stats", "stale") == b"2"
    assert sync_redis.hget(f"{Q}:job:j1", "s") == b"reserved"
    assert await queue.ack("default", [(second.id, second.token)]) == []
    assert sync_redis.hget(f"{Q}:job:j1", "s") == b"done"


async def test_extend_renews_the_lease(queue: ReliableQueue, sync_redis: redis.Redis) -> None:
    await enqueue(queue)
    [r] = await queue.reserve("default", 1, lease=5)
    assert await queue.extend("default", [(r.id, r.token)], 40) == []
    assert snapshot(sync_redis)[f"{Q}:reserved"] == {"j1": 40}


@pytest.mark.parametrize(("began", "attempts"), [(False, "0"), (True, "1")])
async def test_release_returns_the_job_and_refunds_an_unstarted_attempt(
    queue: ReliableQueue, sync_redis: redis.Redis, began: bool, attempts: str
) -> None:
    await enqueue(queue)
    [r] = await queue.reserve("default", 1, lease=30)
    assert await queue.release("default", [(r.id, r.token, began)]) == 1
    assert snapshot(sync_redis) == {
        "jr:queues": ["default"],
        f"{Q}:ready": ["j1"],
        f"{Q}:fence": "1",
        f"{Q}:job:j1": job_hash(a=attempts, s="ready", t="1"),
        f"{Q}:stats": {"enqueued": "1", "released": "1"},
    }


async def _dead(queue: ReliableQueue, job_id: str) -> None:
    await enqueue(queue, job_id)
    [r] = await queue.reserve("default", 1, lease=30)
    await queue.fail("default", r.id, r.token, f"{job_id} failed", dead=True)


async def test_requeue_one_dead_job_resets_attempts_and_keeps_the_error(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await _dead(queue, "j1")
    await _dead(queue, "j2")
    assert await queue.requeue("default", ["j1", "unknown"]) == 1
    state = snapshot(sync_redis)
    assert state[f"{Q}:ready"] == ["j1"]
    assert state[f"{Q}:dead"] == {"j2": 0}
    assert state[f"{Q}:job:j1"] == job_hash(a="0", s="ready", t="1", fi="T", e="j1 failed")
    assert state[f"{Q}:stats"]["requeued"] == "1"


async def test_requeue_all(queue: ReliableQueue) -> None:
    for i in range(3):
        await _dead(queue, f"j{i}")
    assert [r.job.id for r in await queue.dead_jobs("default")] == ["j2", "j1", "j0"]
    assert await queue.requeue("default") == 3
    stats = await queue.stats("default")
    assert (stats.ready, stats.dead) == (3, 0)


async def test_enqueue_many_spreads_over_queues_and_reports_new_ids(queue: ReliableQueue) -> None:
    jobs = [make_job("noop", queue="high" if i % 2 else "low", job_id=f"j{i}") for i in range(1200)]
    assert await queue.enqueue_jobs(jobs) == [True] * 1200
    assert await queue.enqueue_jobs(jobs[:2]) == [False, False]
    assert (await queue.stats("high")).ready == 600
    assert (await queue.stats("low")).ready == 600
    assert await queue.queue_names() == ["high", "low"]


async def test_get_job_reports_state_and_timestamps(queue: ReliableQueue) -> None:
    job_id = await queue.enqueue("email", {"to": "a@b.c"}, queue="mail")
    record = await queue.get_job(job_id)
    assert record is not None
    assert (record.state, record.job.payload, record.job.queue) == (
        "ready",
        {"to": "a@b.c"},
        "mail",
    )
    assert record.enqueued_at is not None
    assert record.started_at is None
    assert await queue.get_job("nope") is None


async def test_negative_delay_is_refused(queue: ReliableQueue) -> None:
    with pytest.raises(ValueError, match="negative"):
        await queue.enqueue("noop", delay=-1)


async def test_an_idle_worker_wakes_on_enqueue_and_claims_that_one_job_for_its_reserve(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    waiter = asyncio.create_task(queue.wait_for_work(["default"], timeout=30))
    await eventually(_blocked(sync_redis), 10, "the worker to block on the ready list")
    await enqueue(queue, "j1")
    assert await asyncio.wait_for(waiter, 30) is True
    state = snapshot(sync_redis)
    assert f"{Q}:ready" not in state
    assert state[f"{Q}:claimed"] == ["j1"]
    await enqueue(queue, "j2")
    # the claimed id first (it was the oldest ready), then ready: order kept, nothing lost
    assert [r.id for r in await queue.reserve("default", 10, lease=30)] == ["j1", "j2"]
    assert f"{Q}:claimed" not in snapshot(sync_redis)


async def test_one_ready_job_wakes_one_idle_worker(
    queue: ReliableQueue, aredis: Any, sync_redis: redis.Redis
) -> None:
    other = ReliableQueue(aredis)
    first = asyncio.create_task(queue.wait_for_work(["default"], timeout=30))
    second = asyncio.create_task(other.wait_for_work(["default"], timeout=30))
    await eventually(_blocked(sync_redis, 2), 10, "both workers to block")
    await enqueue(queue, "j1")
    done, _ = await asyncio.wait([first, second], return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1  # the other one still waits: no herd
    assert int(sync_redis.info("clients")["blocked_clients"]) == 1
    await enqueue(queue, "j2")
    assert await asyncio.wait_for(asyncio.gather(first, second), 30) == [True, True]


@pytest.mark.parametrize("readied_by", ["promote", "requeue", "release", "reap"])
async def test_every_transition_that_readies_a_job_wakes_an_idle_worker(
    queue: ReliableQueue, sync_redis: redis.Redis, readied_by: str
) -> None:
    await enqueue(queue, "j1", delay=0.001 if readied_by == "promote" else 0)
    if readied_by == "requeue":
        [r] = await started(queue)
        await queue.fail("default", r.id, r.token, "boom", dead=True)
    elif readied_by in ("release", "reap"):
        [r] = await started(queue, lease=0 if readied_by == "reap" else 30)
    waiter = asyncio.create_task(queue.wait_for_work(["default"], timeout=30))
    await eventually(_blocked(sync_redis), 10, "the worker to block on the ready list")
    if readied_by == "promote":
        await eventually(lambda: queue.promote("default"), 10, "the job to fall due")
    elif readied_by == "requeue":
        assert await queue.requeue("default", [r.id]) == 1
    elif readied_by == "release":
        assert await queue.release("default", [(r.id, r.token, True)]) == 1
    else:
        assert (await queue.reap("default"))[0] == 1
    assert await asyncio.wait_for(waiter, 30) is True
    assert [x.id for x in await queue.reserve("default", 10, lease=30)] == ["j1"]


async def test_an_id_claimed_by_a_worker_that_died_is_reserved_by_the_next_reserve(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    await enqueue(queue, "j2")
    sync_redis.blmove(f"{Q}:ready", f"{Q}:claimed", 1, "RIGHT", "LEFT")  # and then it died
    assert (await queue.stats("default")).ready == 2  # a claimed job is still a ready one
    assert [r.id for r in await queue.reserve("default", 10, lease=30)] == ["j1", "j2"]


async def test_a_paused_queue_is_not_watched_so_its_waiting_jobs_wake_nobody(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    await queue.pause("default")
    assert await queue.reserve("default", 10, lease=30) == []
    assert await queue.wait_for_work(["default"], timeout=0.05) is False  # no busy loop
    assert sync_redis.lrange(f"{Q}:ready", 0, -1) == [b"j1"]  # left where it was
    await queue.pause("default", False)
    assert [r.id for r in await queue.reserve("default", 10, lease=30)] == ["j1"]


def _blocked(client: redis.Redis, count: int = 1) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return int(client.info("clients")["blocked_clients"]) >= count

    return check


# ---------------------------------------------------------------- results, cancel, pause


async def test_a_waiter_is_told_when_its_job_ends_and_nobody_else_costs_a_push(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    await enqueue(queue, "j2")
    assert await queue.watch("j1") == "ready"
    [a, b] = await started(queue, count=2)
    await queue.ack("default", [(a.id, a.token, b"7"), (b.id, b.token, None)])
    state = snapshot(sync_redis)
    assert state[f"{Q}:notify:j1"] == ["1"]
    assert f"{Q}:notify:j2" not in state  # no waiter, no push
    assert state[f"{Q}:job:j1"]["w"] == "1"
    assert "r" not in state[f"{Q}:job:j2"]  # it returned None: no result kept
    assert 59 <= sync_redis.ttl(f"{Q}:notify:j1") <= 600
    assert await queue.watch("j1") == "done"  # ended already: nothing to wait for


async def test_cancel_a_ready_job_ends_it_and_reserve_drops_its_id(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    await enqueue(queue, "j2", delay=30)
    assert await queue.cancel("j1") == "cancelled"
    assert await queue.cancel("j2") == "cancelled"
    assert await queue.cancel("j1") == "cancelled"  # final: again is a no-op
    assert await queue.cancel("nope") == ""
    state = snapshot(sync_redis)
    assert state[f"{Q}:job:j1"]["s"] == state[f"{Q}:job:j2"]["s"] == "cancelled"
    assert f"{Q}:scheduled" not in state
    assert state[f"{Q}:stats"]["cancelled"] == "2"
    assert await queue.reserve("default", 10, lease=30) == []  # the stale id is skipped
    assert sync_redis.llen(f"{Q}:ready") == 0


async def test_cancel_a_running_job_flags_it_for_its_worker(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    [r] = await started(queue)
    assert await queue.cancel("j1") == "cancelling"
    assert sync_redis.smembers(f"{Q}:cancel") == {b"j1"}
    assert await queue.reap("default") == (0, 0, ["j1"])  # the worker learns it here
    assert await queue.finish_cancelled("default", [(r.id, r.token, "stopped")]) == 1
    state = snapshot(sync_redis)
    assert f"{Q}:cancel" not in state
    assert state[f"{Q}:job:j1"]["s"] == "cancelled"
    assert state[f"{Q}:job:j1"]["e"] == "stopped"
    assert f"{Q}:reserved" not in state
    assert await queue.cancel("j1") == "cancelled"


async def test_a_flagged_job_that_fails_ends_cancelled_not_retried(queue: ReliableQueue) -> None:
    await enqueue(queue, "j1")
    [r] = await started(queue)
    await queue.cancel("j1")
    assert await queue.fail("default", r.id, r.token, "JobCancelled") == "cancelled"


async def test_a_flagged_job_whose_worker_died_ends_cancelled(queue: ReliableQueue) -> None:
    await enqueue(queue, "j1")
    await started(queue, lease=0)
    await queue.cancel("j1")
    assert await queue.reap("default") == (0, 0, [])
    record = await queue.get_job("j1")
    assert record is not None
    assert record.state == "cancelled"


async def test_a_flagged_job_handed_back_ends_cancelled_when_next_reserved(
    queue: ReliableQueue,
) -> None:
    await enqueue(queue, "j1")
    [r] = await queue.reserve("default", 1, lease=30)
    await queue.cancel("j1")
    await queue.release("default", [(r.id, r.token, False)])  # shutdown, never started
    assert await queue.reserve("default", 1, lease=30) == []
    record = await queue.get_job("j1")
    assert record is not None
    assert record.state == "cancelled"


async def test_a_paused_queue_hands_out_nothing_until_resumed(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    assert await queue.pause("default") is True
    assert await queue.pause("default") is False  # already paused
    assert (await queue.stats("default")).paused
    assert await queue.reserve("default", 10, lease=30) == []
    assert sync_redis.llen(f"{Q}:ready") == 1  # waiting, not lost
    assert await queue.pause("default", False) is True
    assert [r.id for r in await queue.reserve("default", 10, lease=30)] == ["j1"]


async def test_delete_removes_a_dead_job_and_never_a_live_one(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    await enqueue(queue, "j2")
    [r1, _] = await started(queue, count=2)
    assert await queue.fail("default", r1.id, r1.token, "boom", dead=True) == "dead"
    assert await queue.delete_dead("default", ["j1", "j2", "nope"]) == 1  # j2 runs: untouched
    state = snapshot(sync_redis)
    assert f"{Q}:job:j1" not in state
    assert f"{Q}:dead" not in state
    assert state[f"{Q}:job:j2"]["s"] == "reserved"
    assert state[f"{Q}:stats"]["deleted"] == "1"
    assert await queue.delete_dead("default", ["j1"]) == 0


async def test_scheduled_and_running_jobs_are_listed_with_their_times(
    queue: ReliableQueue,
) -> None:
    await enqueue(queue, "soon", delay=10)
    await enqueue(queue, "later", delay=60)
    await enqueue(queue, "now")
    [r] = await started(queue)
    assert [rec.job.id for rec, _ in await queue.running_jobs("default")] == ["now"]
    await queue.fail("default", r.id, r.token, "flaky", delay=30)
    listed = await queue.scheduled_jobs("default")
    assert [(rec.job.id, rec.attempts) for rec, _ in listed] == [
        ("soon", 0), ("now", 1), ("later", 0)
    ]  # fmt: skip
    due = [when for _, when in listed]
    assert due == sorted(due)
    assert await queue.running_jobs("default") == []


async def test_ack_sums_run_and_turnaround_time_on_redis_clock(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    await enqueue(queue, "j1")
    await enqueue(queue, "j2")
    [a, b] = await started(queue, count=2)
    # the job was enqueued 5 s and started 2 s before now, by Redis's clock
    sec, usec = sync_redis.time()
    now_ms = sec * 1000 + usec // 1000
    sync_redis.hset(f"{Q}:job:j1", mapping={"eq": now_ms - 5000, "st": now_ms - 2000})
    sync_redis.hdel(f"{Q}:job:j2", "st")  # never started (acked by an old worker): no run time
    sync_redis.hset(f"{Q}:job:j2", "eq", now_ms - 1000)
    await queue.ack("default", [(a.id, a.token, None), (b.id, b.token, None)])
    stats = {k.decode(): int(v) for k, v in sync_redis.hgetall(f"{Q}:stats").items()}
    assert 2000 <= stats["run_ms"] < 2500
    assert 6000 <= stats["turnaround_ms"] < 6500
    assert stats["processed"] == 2


async def test_reserve_marks_started_the_jobs_the_caller_runs_at_once(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    for i in range(3):
        await enqueue(queue, f"j{i}")
    batch = await queue.reserve("default", 3, lease=20, start=2)
    assert [(r.id, r.marked) for r in batch] == [("j0", True), ("j1", True), ("j2", False)]
    state = snapshot(sync_redis)
    assert state[f"{Q}:job:j0"] == job_hash("j0", a="1", s="reserved", t="1", sg="1", st="T")
    assert state[f"{Q}:job:j2"] == job_hash("j2", a="1", s="reserved", t="3")
    assert await queue.start("default", [("j2", 3)]) == []  # the rest are marked later
    assert snapshot(sync_redis)[f"{Q}:job:j2"]["sg"] == "3"


async def test_one_enqueue_is_three_redis_commands_when_its_count_is_carried(
    aredis: Any, sync_redis: redis.Redis
) -> None:
    """What one enqueue costs in Redis (issue 20): the script, HSET and LPUSH. A fresh id (a new
    uuid) needs no EXISTS, a ready job no TIME (the producer's clock stamps it), no worker
    needs a wake-up marker (idle ones block on the ready list), and the `enqueued` counter of a
    burst is carried to a later call. The state written is the same."""
    queue = ReliableQueue(aredis)  # the default: counts carried for a second
    first = await queue.enqueue("noop")  # counted at once: the first of its second
    sync_redis.config_resetstat()
    second = await queue.enqueue("noop")
    stats = sync_redis.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}
    del calls["config|resetstat"]
    assert calls == {"evalsha": 1, "hset": 1, "lpush": 1}
    state = snapshot(sync_redis)
    assert state[f"{Q}:ready"] == [second, first]
    assert state[f"{Q}:stats"] == {"enqueued": "1"}  # the second is carried...
    assert (await queue.stats("default")).counters["enqueued"] == 2  # ...and read by its writer
    await queue.enqueue("noop", job_id=first)  # a chosen id is still checked: left as it is
    assert "cmdstat_exists" in sync_redis.info("commandstats")
    assert sync_redis.lrange(f"{Q}:ready", 0, -1) == [second.encode(), first.encode()]


async def test_a_burst_s_carried_count_reaches_the_counter_with_no_further_call(
    aredis: Any, sync_redis: redis.Redis
) -> None:
    queue = ReliableQueue(aredis, count_every=0.2)
    for _ in range(3):
        await queue.enqueue("noop")
    assert sync_redis.hget(f"{Q}:stats", "enqueued") == b"1"  # the first; two are carried

    async def counted() -> bool:
        return sync_redis.hget(f"{Q}:stats", "enqueued") == b"3"

    await eventually(counted, 10, "the carried count to be written")


async def test_an_ack_carries_the_start_marks_of_the_next_jobs_in_one_call(
    queue: ReliableQueue, sync_redis: redis.Redis
) -> None:
    """Where a runner's slot turns over: the finished job's ack and the next job's start mark
    in one script call, each with the meaning it has alone (a lost lease is reported, not
    marked)."""
    await enqueue(queue, "j1")
    await enqueue(queue, "j2")
    await enqueue(queue, "j3")
    [done] = await started(queue)
    nxt, gone = await queue.reserve("default", 2, lease=30)
    sync_redis.config_resetstat()
    stale, lost = await queue.ack_and_start(
        "default", [(done.id, done.token, b"1")], [(nxt.id, nxt.token), (gone.id, 999)]
    )
    assert (stale, lost) == ([], [gone.id])  # a token it does not hold: not marked
    assert sync_redis.info("commandstats")["cmdstat_evalsha"]["calls"] == 1
    state = snapshot(sync_redis)
    assert state[f"{Q}:job:j1"]["s"] == "done"
    assert state[f"{Q}:job:j2"]["sg"] == str(nxt.token)  # marked started under its lease
    assert "sg" not in state[f"{Q}:job:j3"]
