"""The schedules' state in Redis: definitions the API reads, high-water marks, fenced fires.

Per schedule, two hashes: its definition as the leader declared it (``SchedulerKeys.schedule``,
so the API can show schedules without importing the scheduler's config), and beside its queue
its state (``SchedulerKeys.state``): the *mark* (the latest slot handled: fired or skipped;
never expires), the last and next fire times and counters (fired, late, skipped). The leader
publishes the definitions when it takes over and announces its token to each queue it fires
into (the queue's fence), so that the fire script, which runs in the queue's hash slot, can
refuse an ex-leader's writes without reading the lock in another slot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from jobrunner.calls import NewJob
from jobrunner.job import Job, encode_job
from jobrunner.keys import QueueKeys, queues_key
from jobrunner.registry import Registry
from jobrunner.registry import registry as default_registry
from jobrunner.scheduler.keys import SchedulerKeys
from jobrunner.scheduler.plan import Plan
from jobrunner.scheduler.schedule import Schedule
from jobrunner.scripts import Scripts
from jobrunner.tracing import enqueue_span

FENCED = -1


@dataclass(frozen=True)
class FireResult:
    fenced: bool  # our token is not the lock's: nothing was written
    added: int  # jobs enqueued
    refused: int  # slots refused: at or before the mark, or their job id already exists
    mark_ms: int | None


class ScheduleRecord(msgspec.Struct, frozen=True):
    """A schedule as published in Redis (what ``GET /schedules`` shows)."""

    name: str
    type: str
    queue: str
    every_seconds: float | None
    cron: str | None
    timezone: str
    misfire: str
    grace: float
    payload: Any
    next_fire: float | None
    last_fire: float | None
    fired: int
    late: int
    skipped: int

    def schedule(self) -> Schedule:
        """The definition back as a ``Schedule`` (raises ScheduleError if it no longer parses)."""
        return Schedule(
            name=self.name, type=self.type, queue=self.queue, every=self.every_seconds,
            cron=self.cron, timezone=self.timezone, misfire=self.misfire,  # type: ignore[arg-type]
            grace=self.grace, payload=self.payload,
        )  # fmt: skip


class ScheduleStore:
    def __init__(
        self,
        redis: Redis,
        *,
        keys: SchedulerKeys | None = None,
        scripts: Scripts | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys or SchedulerKeys()
        self.registry = registry if registry is not None else default_registry
        self._scripts = scripts or Scripts(redis)

    async def publish(self, schedules: Sequence[Schedule], by: str, token: int) -> bool:
        """Write every definition and the index of names (names no longer declared leave it),
        then announce ``token`` to the schedules' queues; False when a queue's fence holds a
        newer token (a newer leader announced itself: this one must step down)."""
        names = {s.name for s in schedules}
        old = {_text(n) for n in await self.redis.smembers(self.keys.index)}
        async with self.redis.pipeline(transaction=True) as pipe:
            for s in schedules:
                pipe.hset(self.keys.schedule(s.name), mapping=dict(_definition(s, by).items()))
            if names:
                pipe.sadd(self.keys.index, *sorted(names))
            if old - names:
                pipe.srem(self.keys.index, *sorted(old - names))
            await pipe.execute()
        queues = sorted({s.queue for s in schedules})
        if queues:
            await self.redis.sadd(queues_key(self.keys.prefix), *queues)
        leads = {s.queue: s for s in schedules}  # one announcement a queue
        for schedule in leads.values():
            if (await self._call(token, schedule, "lead", 0, 0, None, [])).fenced:
                return False
        return True

    async def marks(self, schedules: Sequence[Schedule]) -> dict[str, int | None]:
        """Each schedule's high-water mark (None: never handled)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in schedules:
                pipe.hget(self.keys.state(s.queue, s.name), "mark")
            values = await pipe.execute()
        return {
            s.name: int(v) if v is not None else None
            for s, v in zip(schedules, values, strict=True)
        }

    async def init_mark(self, token: int, schedule: Schedule, now_ms: int) -> FireResult:
        """Start a schedule never handled before at ``now_ms``: past slots are not fired."""
        return await self._call(token, schedule, "init", now_ms, 0, schedule.next_after(now_ms), [])

    async def fire(self, token: int, schedule: Schedule, plan: Plan) -> FireResult:
        """Carry out ``plan`` in one fenced script call: enqueue its fires, move the mark. With
        tracing on, the call is an ``enqueue`` span whose context each fired job carries."""
        jobs = [
            NewJob(Job(
                id=schedule.job_id(fire.slot_ms), type=schedule.type, payload=schedule.payload,
                queue=schedule.queue, max_retries=schedule.max_retries, timeout=schedule.timeout,
            ))
            for fire in plan.fires
        ]  # fmt: skip
        with enqueue_span(jobs) as traced:
            groups: list[Any] = []
            for fire, new in zip(plan.fires, traced, strict=True):
                max_retries = self.registry.max_retries_for(new.job)
                groups += (fire.slot_ms, new.job.id, encode_job(new.job), max_retries,
                           int(fire.late))  # fmt: skip
            return await self._call(
                token, schedule, "fire", plan.mark_ms, plan.skipped, plan.next_fire_ms, groups
            )

    async def _call(
        self,
        token: int,
        schedule: Schedule,
        mode: str,
        mark_ms: int,
        skipped: int,
        next_fire_ms: int | None,
        groups: list[Any],
    ) -> FireResult:
        qkeys = QueueKeys(schedule.queue, self.keys.prefix)
        reply = await self._scripts.schedule_fire(
            keys=[
                self.keys.fence(schedule.queue), self.keys.state(schedule.queue, schedule.name),
                qkeys.ready, qkeys.stats,
            ],
            args=[
                token, qkeys.job_prefix, mode, mark_ms, skipped,
                "" if next_fire_ms is None else next_fire_ms, *groups,
            ],
        )  # fmt: skip
        status, added, refused, mark = reply
        if int(status) == FENCED:
            return FireResult(fenced=True, added=0, refused=0, mark_ms=None)
        return FireResult(fenced=False, added=int(added), refused=int(refused),
                          mark_ms=int(mark) if mark else None)  # fmt: skip

    async def records(self) -> list[ScheduleRecord]:
        """Every published schedule, by name; an entry that no longer parses is left out."""
        names = sorted(_text(n) for n in await self.redis.smembers(self.keys.index))
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.schedule(name))
            rows = await pipe.execute()
        defined = [
            (name, fields)
            for name, row in zip(names, rows, strict=True)
            if "type" in (fields := {_text(k): _text(v) for k, v in row.items()})
        ]
        async with self.redis.pipeline(transaction=False) as pipe:  # each state beside its queue
            for name, fields in defined:
                pipe.hgetall(self.keys.state(fields.get("queue", "default"), name))
            states = await pipe.execute()
        return [
            _record(name, {**{_text(k): _text(v) for k, v in state.items()}, **fields})
            for (name, fields), state in zip(defined, states, strict=True)
        ]


def _definition(s: Schedule, by: str) -> dict[str, str]:
    return {
        "type": s.type,
        "queue": s.queue,
        "every": "" if s.every is None else repr(float(s.every)),
        "cron": s.cron or "",
        "timezone": s.timezone,
        "misfire": s.misfire,
        "grace": repr(float(s.grace)),
        "payload": json.dumps(s.payload),
        "defined_by": by,
    }


def _record(name: str, f: dict[str, str]) -> ScheduleRecord:
    def seconds(field: str) -> float | None:
        value = f.get(field)
        return int(value) / 1000 if value else None

    return ScheduleRecord(
        name=name,
        type=f["type"],
        queue=f.get("queue", "default"),
        every_seconds=float(f["every"]) if f.get("every") else None,
        cron=f.get("cron") or None,
        timezone=f.get("timezone", "UTC"),
        misfire=f.get("misfire", "fire_once"),
        grace=float(f.get("grace") or 0),
        payload=json.loads(f.get("payload") or "null"),
        next_fire=seconds("next_fire"),
        last_fire=seconds("last_fire"),
        fired=int(f.get("fired", 0)),
        late=int(f.get("late", 0)),
        skipped=int(f.get("skipped", 0)),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
