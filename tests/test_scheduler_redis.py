"""The scheduler against a real Redis, in this process: the lock, the fenced once-per-slot
script, and whole schedulers stepped through time with an injected clock (no sleeping)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import httpx
import pytest
from redis.asyncio import Redis as AsyncRedis

from jobrunner.clock import FakeClock
from jobrunner.config import Settings
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Registry
from jobrunner.scheduler import Schedule, Scheduler
from jobrunner.scheduler.keys import SchedulerKeys
from jobrunner.scheduler.leader import LeaderLock, read_leader
from jobrunner.scheduler.plan import Fire, Plan
from jobrunner.scheduler.store import ScheduleStore
from jobrunner.scripts import Scripts
from tests.api_server import running_api
from tests.conftest import BACKENDS, eventually, on_backend
from tests.keyspace import snapshot

KEYS = SchedulerKeys()

# every script touches one hash slot (the lock's, or the queue's): all of it holds on a cluster
redis_url = pytest.fixture(params=BACKENDS)(on_backend)


def at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


async def ready_ids(redis: AsyncRedis, queue: str = "default") -> list[str]:
    """Job ids in the ready list, oldest first (LPUSH puts the newest at the head)."""
    return [i.decode() for i in reversed(await redis.lrange(f"jr:{{{queue}}}:ready", 0, -1))]


def slot_of(job_id: str) -> int:
    """The slot in a scheduled job's id: ``sched:<name>:<slot ms>[@<queue>]``."""
    return int(job_id.partition("@")[0].rsplit(":", 1)[1])


def slots_of(ids: list[str]) -> list[str]:
    return [datetime.fromtimestamp(slot_of(i) / 1000, UTC).strftime("%m-%d %H:%MZ") for i in ids]


def gaps(ids: list[str]) -> set[int]:
    slots = [slot_of(i) for i in ids]
    return {b - a for a, b in itertools.pairwise(slots)}


# ---------------------------------------------------------------- the lock


async def test_the_lock_has_one_holder_and_each_new_holder_a_higher_token(
    aredis: AsyncRedis,
) -> None:
    scripts = Scripts(aredis)
    # a lock under another prefix (the same slot, so the same node) first: the client's first
    # call reads a cluster's slot map and loads the script, and a refresh that slow would
    # rightly not trust a 0.3 s lock (CI met it once on the cluster)
    await LeaderLock(aredis, "warm", ttl=0.3, keys=SchedulerKeys("warm"), scripts=scripts).refresh()
    a = LeaderLock(aredis, "a", ttl=0.3, scripts=scripts)
    b = LeaderLock(aredis, "b", ttl=0.3, scripts=scripts)
    first = await a.refresh()
    assert (first.held, first.token, first.holder) == (True, 1, "a")
    assert a.valid()
    other = await b.refresh()
    assert (other.held, other.token, other.holder) == (False, 1, "a")
    assert 0 < other.ttl_ms <= 300
    assert (await a.refresh()).held  # a renewal keeps the token
    assert a.token == 1
    # a stops renewing: the lock expires on Redis's clock and b takes it with the next token
    taken = await eventually(lambda: _held(b), timeout=5, what="b to take the expired lock")
    assert taken == 2
    lost = await a.refresh()
    assert (lost.held, lost.holder, lost.token) == (False, "b", 2)
    assert not a.valid()
    assert a.token is None
    assert not await a.release()  # not a's any more: untouched
    view = await read_leader(aredis, KEYS)
    assert view is not None
    assert (view.id, view.token) == ("b", 2)
    assert await b.release()
    assert await read_leader(aredis, KEYS) is None
    third = await a.refresh()
    assert (third.held, third.token) == (True, 3)


async def _held(lock: LeaderLock) -> int | None:
    status = await lock.refresh()
    return status.token if status.held else None


async def test_a_leader_stops_trusting_its_lock_once_its_ttl_may_have_passed(
    aredis: AsyncRedis,
) -> None:
    clock = FakeClock()
    lock = LeaderLock(aredis, "a", ttl=10, clock=clock)
    assert (await lock.refresh()).held
    clock.advance(8.9)
    assert lock.valid()
    clock.advance(0.2)  # e.g. SIGSTOPped: past ttl minus the safety margin, it may be gone
    assert not lock.valid()
    assert (await lock.refresh()).held  # nobody took it meanwhile: renewed, same term
    assert lock.valid()
    assert lock.token == 1


# ---------------------------------------------------------------- the fire script

SCHEDULE = Schedule(name="tick", type="noop", every=1.0, payload={"n": 1})


async def lead(aredis: AsyncRedis, store: ScheduleStore, owner: str, token: int) -> None:
    """Take the lock as ``owner`` (its token must be ``token``) and announce it, as a leader
    does when its term begins."""
    assert (await LeaderLock(aredis, owner, ttl=5).refresh()).token == token
    assert await store.publish([SCHEDULE], by=owner, token=token)


def plan(*slots: int, mark: int | None = None, skipped: int = 0) -> Plan:
    return Plan(
        fires=tuple(Fire(s, late=False) for s in slots),
        mark_ms=mark if mark is not None else max(slots),
        skipped=skipped,
        next_fire_ms=max(slots) + 1000,
    )


async def test_a_write_with_a_stale_token_is_refused_and_changes_nothing(
    aredis: AsyncRedis, sync_redis: object
) -> None:
    store = ScheduleStore(aredis)
    await lead(aredis, store, "old", 1)
    await store.init_mark(1, SCHEDULE, 1_000)
    await aredis.delete(KEYS.leader)  # the old leader's lock expired while it was paused...
    await lead(aredis, store, "new", 2)  # ...and a new leader took token 2 and announced it
    assert not await store.publish([SCHEDULE], by="old", token=1)  # the old one cannot
    before = snapshot(sync_redis)  # type: ignore[arg-type]
    result = await store.fire(1, SCHEDULE, plan(2_000))
    assert result.fenced
    assert snapshot(sync_redis) == before  # type: ignore[arg-type]
    assert not (await store.fire(3, SCHEDULE, plan(2_000))).added  # a token from the future too


async def test_a_slot_is_enqueued_once_even_after_its_job_finished_and_expired(
    aredis: AsyncRedis,
) -> None:
    store = ScheduleStore(aredis)
    await lead(aredis, store, "a", 1)
    await store.init_mark(1, SCHEDULE, 1_000)
    first = await store.fire(1, SCHEDULE, plan(2_000, 3_000))
    assert (first.added, first.refused, first.mark_ms) == (2, 0, 3_000)
    queue = ReliableQueue(aredis, result_ttl=0)  # a finished job's hash is deleted at once
    done = await queue.reserve("default", 10, lease=30)
    assert [r.id for r in done] == ["sched:tick:2000", "sched:tick:3000"]
    assert await queue.ack("default", [(r.id, r.token) for r in done]) == []
    assert not await aredis.exists("jr:{default}:job:sched:tick:3000")
    again = await store.fire(1, SCHEDULE, plan(2_000, 3_000, 4_000))
    assert (again.added, again.refused, again.mark_ms) == (1, 2, 4_000)
    assert await ready_ids(aredis) == ["sched:tick:4000"]
    state = await aredis.hgetall(KEYS.state("default", "tick"))
    assert (state[b"fired"], state[b"last_fire"], state[b"next_fire"]) == (b"3", b"4000", b"5000")
    stats = await queue.stats("default")
    assert stats.counters["enqueued"] == 3
    await queue.aclose()  # on a cluster it holds a connection per master


async def test_a_scheduled_job_is_an_ordinary_job_with_its_types_options(
    aredis: AsyncRedis,
) -> None:
    handlers = Registry()
    handlers.handler("noop", max_retries=7)(lambda payload: None)
    store = ScheduleStore(aredis, registry=handlers)
    await lead(aredis, store, "a", 1)
    await store.init_mark(1, SCHEDULE, 1_000)
    await store.fire(1, SCHEDULE, plan(2_000))
    record = await ReliableQueue(aredis).get_job("sched:tick:2000")
    assert record is not None
    assert (record.job.type, record.job.payload, record.state) == ("noop", {"n": 1}, "ready")
    assert await aredis.hget("jr:{default}:job:sched:tick:2000", "mr") == b"7"
    assert await aredis.sismember("jr:queues", "default")


# ---------------------------------------------------------------- schedulers on a fake clock


def fake_scheduler(aredis: AsyncRedis, clock: FakeClock, *schedules: Schedule) -> Scheduler:
    return Scheduler(aredis, schedules, scheduler_id="fake", ttl=10, clock=clock, now=clock.time)


async def run_until(sched: Scheduler, clock: FakeClock, end: float, step: float) -> None:
    while clock.time() < end:
        clock.advance(step)
        await sched.step()


async def test_a_cron_schedule_fires_through_both_dst_changes_on_an_injected_clock(
    aredis: AsyncRedis,
) -> None:
    clock = FakeClock(start=at(2024, 3, 29, 12))
    nightly = Schedule(name="nightly", type="noop", cron="30 2 * * *", timezone="Europe/Berlin")
    hourly = Schedule(name="hourly", type="noop", cron="30 * * * *", timezone="Europe/Berlin",
                      queue="hourly")  # fmt: skip
    sched = fake_scheduler(aredis, clock, nightly, hourly)
    await sched.step()
    assert sched.is_leader
    await run_until(sched, clock, at(2024, 4, 1, 12), step=600)
    assert slots_of(await ready_ids(aredis)) == ["03-30 01:30Z", "03-31 01:00Z", "04-01 00:30Z"]
    # "30 * * * *" keeps real-time hours: 72 of them in 72 h, though a local hour went missing
    assert gaps(await ready_ids(aredis, "hourly")) == {3_600_000}
    assert len(await ready_ids(aredis, "hourly")) == 72
    await aredis.delete("jr:{default}:ready", "jr:{hourly}:ready")
    clock.advance(at(2024, 10, 25, 12) - clock.time())  # a 7-month jump: missed slots...
    await sched.step()
    # ...fire once (the latest of each schedule, late), then the fall-back days run on time
    assert slots_of(await ready_ids(aredis)) == ["10-25 00:30Z"]
    assert slots_of(await ready_ids(aredis, "hourly")) == ["10-25 11:30Z"]
    await run_until(sched, clock, at(2024, 10, 29, 12), step=600)
    assert slots_of(await ready_ids(aredis)) == [
        "10-25 00:30Z", "10-26 00:30Z", "10-27 00:30Z", "10-28 01:30Z", "10-29 01:30Z",
    ]  # fmt: skip
    hourly_ids = await ready_ids(aredis, "hourly")
    assert gaps(hourly_ids[1:]) == {3_600_000}  # 02:30 local fires twice: two real hours
    assert len(hourly_ids) == 1 + 96
    state = await aredis.hgetall(KEYS.state("default", "nightly"))
    assert int(state[b"late"]) == 1
    assert int(state[b"skipped"]) > 200


async def test_a_leader_that_was_paused_is_fenced_and_steps_down(aredis: AsyncRedis) -> None:
    clock = FakeClock(start=at(2024, 1, 1))
    every = Schedule(name="every", type="noop", every=60)
    # a's own monotonic clock stands still: it checked its lock just before it was paused
    a = Scheduler(aredis, [every], scheduler_id="a", ttl=10, clock=FakeClock(), now=clock.time)
    await a.step()
    clock.advance(60)
    await a.step()
    assert await ready_ids(aredis) == [f"sched:every:{round(at(2024, 1, 1, 0, 1) * 1000)}"]
    # a is paused past its TTL; the lock expires and b takes over with a higher token
    await aredis.delete(KEYS.leader)
    b = Scheduler(aredis, [every], scheduler_id="b", ttl=10, clock=clock, now=clock.time)
    clock.advance(60)
    await b.step()
    assert b.is_leader
    assert b.term == 2
    # a wakes in the middle of a tick, before noticing: the script refuses its write
    await a.tick(a.now_ms())
    assert a.counts["fenced"] == 1
    assert not a.is_leader
    assert len(await ready_ids(aredis)) == 2  # b's slot only; nothing twice
    assert a.metrics.registry.get_sample_value("scheduler_is_leader") == 0
    assert b.metrics.registry.get_sample_value("scheduler_is_leader") == 1
    assert b.metrics.registry.get_sample_value(
        "schedules_fired_total", {"schedule": "every", "queue": "default"}
    ) == 1  # fmt: skip


async def test_get_schedules_shows_definitions_fire_times_and_the_leader(
    redis_url: str, aredis: AsyncRedis
) -> None:
    clock = FakeClock(start=at(2024, 1, 1))
    sched = fake_scheduler(
        aredis, clock,
        Schedule(name="every", type="noop", every=30, misfire="skip", queue="low"),
        Schedule(name="nightly", type="email", cron="0 3 * * *", timezone="Europe/Berlin"),
    )  # fmt: skip
    await sched.step()
    clock.advance(31)
    await sched.step()
    with running_api(Settings(redis_url=redis_url)) as base:
        async with httpx.AsyncClient(base_url=base, headers=base.headers) as client:
            body = (await client.get("/schedules")).json()
    assert body["leader"]["id"] == "fake"
    assert body["leader"]["token"] == 1
    assert 0 < body["leader"]["ttl_seconds"] <= 10
    every, nightly = body["schedules"]
    assert every == {
        "name": "every", "type": "noop", "queue": "low", "every_seconds": 30.0, "cron": None,
        "timezone": "UTC", "misfire": "skip", "next_fire": at(2024, 1, 1, 0, 1),
        "last_fire": at(2024, 1, 1, 0, 0, 30),
    }  # fmt: skip
    assert nightly["cron"] == "0 3 * * *"
    assert nightly["misfire"] == "fire_once"
    assert nightly["next_fire"] == at(2024, 1, 1, 2)  # 03:00 CET
    assert nightly["last_fire"] is None


async def test_get_schedules_with_no_scheduler_running(redis_url: str) -> None:
    with running_api(Settings(redis_url=redis_url)) as base:
        async with httpx.AsyncClient(base_url=base, headers=base.headers) as client:
            response = await client.get("/schedules")
    assert response.status_code == 200
    assert response.json() == {"leader": None, "schedules": []}


async def test_a_stopped_scheduler_frees_the_lock_for_a_follower_at_once(
    aredis: AsyncRedis,
) -> None:
    every = Schedule(name="every", type="noop", every=0.05)
    sched = Scheduler(aredis, [every], scheduler_id="a", ttl=30, poll_interval=0.02)
    task = asyncio.create_task(sched.run())
    await eventually(lambda: _fired(aredis), timeout=10, what="a first fire")
    sched.request_stop()
    counts = await asyncio.wait_for(task, 10)
    assert counts["terms"] == 1
    assert counts["fired"] >= 1
    assert await read_leader(aredis, KEYS) is None  # no need to wait out the 30 s TTL
    assert sched.metrics.registry.get_sample_value("scheduler_is_leader") == 0
    assert sched.metrics.registry.get_sample_value("scheduler_leader_changes_total") == 1


async def _fired(aredis: AsyncRedis) -> int:
    return int(await aredis.hget(KEYS.state("default", "every"), "fired") or 0)


async def test_a_fired_slot_writes_the_same_job_hash_as_an_enqueue(aredis: AsyncRedis) -> None:
    """enqueue.lua and schedule_fire.lua share one definition of a new job (lua/_new_job.lua):
    the hashes they write hold the same fields and values, the enqueue time apart."""
    handlers = Registry()
    handlers.handler("noop", max_retries=7)(lambda payload: None)
    store = ScheduleStore(aredis, registry=handlers)
    await lead(aredis, store, "a", 1)
    await store.init_mark(1, SCHEDULE, 1_000)
    await store.fire(1, SCHEDULE, plan(2_000))
    fired = await aredis.hgetall("jr:{default}:job:sched:tick:2000")
    await aredis.delete("jr:{default}:job:sched:tick:2000")
    queue = ReliableQueue(aredis, registry=handlers)
    await queue.enqueue("noop", {"n": 1}, job_id="sched:tick:2000")
    enqueued = await aredis.hgetall("jr:{default}:job:sched:tick:2000")
    await queue.aclose()
    assert fired.pop(b"eq")
    assert enqueued.pop(b"eq")
    assert fired == enqueued
    assert set(fired) == {b"d", b"mr", b"a", b"s"}
