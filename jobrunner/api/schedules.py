"""``GET /schedules``: the periodic jobs, their next and last fire times, the current leader.

The API does not import the scheduler's configuration: it reads what the leading scheduler
publishes in Redis (see ``jobrunner.scheduler.store``). A schedule whose next fire time was not
published yet gets one computed from its definition.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from jobrunner.scheduler.keys import SchedulerKeys
from jobrunner.scheduler.leader import read_leader
from jobrunner.scheduler.schedule import ScheduleError
from jobrunner.scheduler.store import ScheduleRecord, ScheduleStore


class LeaderOut(BaseModel):
    id: str
    token: int
    ttl_seconds: float


class ScheduleOut(BaseModel):
    name: str
    type: str
    queue: str
    every_seconds: float | None
    cron: str | None
    timezone: str
    misfire: Literal["skip", "fire_once"]
    next_fire: float | None  # epoch seconds; None only for a cron that never fires again
    last_fire: float | None  # the slot time of the last job enqueued


class SchedulesOut(BaseModel):
    leader: LeaderOut | None
    schedules: list[ScheduleOut]


def schedules_router() -> APIRouter:
    router = APIRouter()

    @router.get("/schedules", response_model=SchedulesOut)
    async def schedules(request: Request) -> SchedulesOut:
        """Periodic jobs with their next and last fire times, and the scheduler leader."""
        queue = request.app.state.queue
        keys = SchedulerKeys(queue.prefix)
        leader = await read_leader(queue.redis, keys)
        records = await ScheduleStore(queue.redis, keys=keys).records()
        return SchedulesOut(
            leader=None
            if leader is None
            else LeaderOut(id=leader.id, token=leader.token, ttl_seconds=leader.ttl_seconds),
            schedules=[_out(r) for r in records if r.misfire in ("skip", "fire_once")],
        )

    return router


def _out(record: ScheduleRecord) -> ScheduleOut:
    next_fire = record.next_fire
    if next_fire is None:
        try:
            slot = record.schedule().next_after(round(time.time() * 1000))
        except ScheduleError:
            slot = None
        next_fire = slot / 1000 if slot is not None else None
    return ScheduleOut(
        name=record.name,
        type=record.type,
        queue=record.queue,
        every_seconds=record.every_seconds,
        cron=record.cron,
        timezone=record.timezone,
        misfire=record.misfire,  # type: ignore[arg-type]
        next_fire=next_fire,
        last_fire=record.last_fire,
    )
