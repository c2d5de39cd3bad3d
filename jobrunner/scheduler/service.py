"""The scheduler process's loop: compete for the leader lock, and as leader fire due slots.

Every scheduler runs the same loop; the one holding the lock enqueues, the others wait to take
over. Exactly one enqueue per slot does not rest on the lock (two processes may briefly both
believe they lead): each slot's job has a deterministic id and the fire script refuses a slot at
or before the schedule's mark, and any write whose fencing token is not the lock's.

Time is Redis's clock by default (read with every lock renewal and carried forward on the local
monotonic clock), so all schedulers agree on which slots are due whatever their host clocks say.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import socket
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobrunner.clock import SYSTEM_CLOCK, Clock
from jobrunner.keys import PREFIX
from jobrunner.logs import Throttle, get_logger
from jobrunner.registry import Registry
from jobrunner.scheduler.keys import SchedulerKeys
from jobrunner.scheduler.leader import LeaderLock, LockStatus
from jobrunner.scheduler.metrics import SchedulerMetrics
from jobrunner.scheduler.plan import Plan, plan_due
from jobrunner.scheduler.schedule import Schedule, ScheduleError
from jobrunner.scheduler.store import FireResult, ScheduleStore
from jobrunner.scripts import Scripts

MIN_DELAY = 0.001


def new_scheduler_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def check_unique(schedules: Sequence[Schedule]) -> None:
    seen: set[str] = set()
    for s in schedules:
        if s.name in seen:
            raise ScheduleError(f"two schedules are named {s.name!r}")
        seen.add(s.name)


class Scheduler:
    """Leader election plus the firing of due slots, one ``step`` at a time.

    ``ttl``: seconds the leader lock lasts unless renewed (renewed every third of it).
    ``poll_interval``: longest sleep between steps; a follower also retries the lock this often
    (or when the holder's lock expires, if sooner). ``now``: where "now" comes from, in epoch
    seconds (default: Redis's clock); tests pass a FakeClock's ``time`` along with ``clock``.
    """

    def __init__(
        self,
        redis: Redis,
        schedules: Sequence[Schedule],
        *,
        prefix: str = PREFIX,
        ttl: float = 10.0,
        poll_interval: float = 1.0,
        scheduler_id: str | None = None,
        registry: Registry | None = None,
        metrics: SchedulerMetrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
        now: Callable[[], float] | None = None,
    ) -> None:
        check_unique(schedules)
        if not 0 < poll_interval < math.inf:
            raise ValueError(f"poll_interval must be positive, not {poll_interval!r}")
        self.id = scheduler_id or new_scheduler_id()
        self.schedules = list(schedules)
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.clock = clock
        self.metrics = metrics or SchedulerMetrics()
        self.metrics.expect(self.schedules)
        keys = SchedulerKeys(prefix)
        scripts = Scripts(redis)
        self.lock = LeaderLock(redis, self.id, ttl, keys=keys, scripts=scripts, clock=clock)
        self.store = ScheduleStore(redis, keys=keys, scripts=scripts, registry=registry)
        self.log = get_logger(scheduler=self.id)
        self._now = now
        self._throttle = Throttle()
        self._stop = asyncio.Event()
        self._term: int | None = None  # the token we act as leader under
        self._last_term: int | None = None  # the last token we led under
        self._seen_token: int | None = None
        self._offset_ms = 0.0  # Redis time minus local monotonic time, ms
        self._next_refresh = -math.inf
        self._marks: dict[str, int | None] = {}
        self._next_fire: dict[str, int | None] = {}
        self.counts = {"terms": 0, "lost": 0, "fired": 0, "late": 0, "skipped": 0, "fenced": 0}

    # ------------------------------------------------------------------ state

    @property
    def is_leader(self) -> bool:
        return self._term is not None and self.lock.valid()

    @property
    def term(self) -> int | None:
        return self._term

    def now_ms(self) -> int:
        """Now, in epoch ms: the injected clock's, else Redis's as of the last lock call."""
        if self._now is not None:
            return round(self._now() * 1000)
        return round(self._offset_ms + self.clock.monotonic() * 1000)

    def request_stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ loop

    async def run(self) -> dict[str, int]:
        """Step until ``request_stop``; free the lock on the way out; return the counts."""
        self.log.info("scheduler started", pid=os.getpid(), schedules=len(self.schedules),
                      ttl=self.ttl, poll_interval=self.poll_interval)  # fmt: skip
        try:
            while not self._stop.is_set():
                delay = await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            if self.lock.token is not None:
                try:
                    await self.lock.release()
                except (RedisError, OSError) as exc:
                    self.log.warning("could not release the leader lock", error=str(exc))
            self.metrics.is_leader.set(0)
            self.log.info("scheduler stopped", **self.counts)
        return dict(self.counts)

    async def step(self) -> float:
        """Renew or try the lock when due, fire what is due as leader; returns the sleep."""
        try:
            status = None
            if self._term is None or not self.lock.valid() or self._mono() >= self._next_refresh:
                status = await self.lock.refresh()
                await self._observe(status)
            if self._term is not None:
                if not self.lock.valid():
                    self._lose("lock not renewed in time")
                else:
                    await self.tick(self.now_ms())
                    return self._leader_delay()
        except (RedisError, OSError) as exc:
            held_back = self._throttle.allow("redis")
            if held_back is not None:
                self.log.warning("redis error", error=str(exc), suppressed=held_back)
            if self._term is not None and not self.lock.valid():
                self._lose("lock not renewed in time")
            return self.poll_interval
        if status is not None and not status.held and status.ttl_ms > 0:
            return max(MIN_DELAY, min(self.poll_interval, status.ttl_ms / 1000 + MIN_DELAY))
        return self.poll_interval

    async def tick(self, now_ms: int) -> None:
        """As leader, handle every schedule's due slots at ``now_ms`` (one script call each)."""
        for schedule in self.schedules:
            term = self._term
            if term is None:
                return
            if not self.lock.valid():
                self._lose("lock not renewed in time")
                return
            mark = self._marks.get(schedule.name)
            if mark is None:
                result = await self.store.init_mark(term, schedule, now_ms)
                if self._fenced(result):
                    return
                assert result.mark_ms is not None
                self._marks[schedule.name] = result.mark_ms
                self._next_fire[schedule.name] = schedule.next_after(result.mark_ms)
                continue
            plan = plan_due(schedule, mark, now_ms)
            if not plan.changes_anything:
                continue
            result = await self.store.fire(term, schedule, plan)
            if self._fenced(result):
                return
            assert result.mark_ms is not None
            self._marks[schedule.name] = result.mark_ms
            self._next_fire[schedule.name] = schedule.next_after(result.mark_ms)
            self._count(schedule, plan, result, now_ms)

    # ------------------------------------------------------------------ helpers

    def _mono(self) -> float:
        return self.clock.monotonic()

    async def _observe(self, status: LockStatus) -> None:
        self._offset_ms = status.redis_now_ms - self._mono() * 1000
        if status.token != self._seen_token:
            self._seen_token = status.token
            self.metrics.leader_changes.inc()
        if not status.held:
            if self._term is not None:
                self._lose(f"the lock is held by {status.holder} (token {status.token})")
            return
        self._next_refresh = self._mono() + self.ttl / 3
        if self._term != status.token:
            if self._term is not None:  # ours expired unrenewed; the lock is ours again, anew
                self._lose("the lock expired before it was renewed", forget_lock=False)
            await self._begin_term(status.token)

    async def _begin_term(self, token: int) -> None:
        """Take over: publish the definitions, announce our token to their queues, then read
        every mark fresh (the last leader moved them)."""
        if not await self.store.publish(self.schedules, by=self.id, token=token):
            self._fenced(FireResult(fenced=True, added=0, refused=0, mark_ms=None))
            return
        # read after the announcement: an ex-leader can no longer move a mark
        marks = await self.store.marks(self.schedules)
        self._marks = marks
        self._next_fire = {
            s.name: s.next_after(m) if m is not None else None
            for s, m in zip(self.schedules, marks.values(), strict=True)
        }
        self._term = token
        self.metrics.is_leader.set(1)
        if token == self._last_term:  # our lock outlived our own deadline: the same term goes on
            self.log.info("leadership resumed", token=token)
            return
        self._last_term = token
        self.counts["terms"] += 1
        self.log.info("became leader", token=token)

    def _lose(self, reason: str, *, forget_lock: bool = True) -> None:
        self.log.warning("leadership lost", token=self._term, reason=reason)
        self._term = None
        if forget_lock:
            self.lock.forget()
        self.counts["lost"] += 1
        self.metrics.is_leader.set(0)

    def _fenced(self, result: FireResult) -> bool:
        if not result.fenced:
            return False
        self.counts["fenced"] += 1
        self.metrics.fenced.inc()
        self._lose("a write was fenced: the lock has a newer token")
        return True

    def _count(self, schedule: Schedule, plan: Plan, result: FireResult, now_ms: int) -> None:
        self.counts["fired"] += result.added
        self.counts["skipped"] += plan.skipped
        if plan.skipped:
            self.metrics.skipped.labels(schedule.name).inc(plan.skipped)
            self.log.info("missed slots skipped", schedule=schedule.name, count=plan.skipped,
                          policy=schedule.misfire)  # fmt: skip
        if result.refused:
            self.log.warning("slots refused as already handled", schedule=schedule.name,
                             refused=result.refused)  # fmt: skip
        if not result.added:
            return
        self.metrics.fired.labels(schedule.name, schedule.queue).inc(result.added)
        late = sum(1 for fire in plan.fires if fire.late)
        if late:
            self.counts["late"] += late
            self.metrics.late.labels(schedule.name).inc(late)
        last = plan.fires[-1].slot_ms
        self.log.info("schedule fired", schedule=schedule.name, jobs=result.added, late=late,
                      slot=last, lag_ms=now_ms - last)  # fmt: skip

    def _leader_delay(self) -> float:
        """Sleep until the next slot or the next renewal, at most ``poll_interval``."""
        delay = min(self.poll_interval, self._next_refresh - self._mono())
        due = [t for t in self._next_fire.values() if t is not None]
        if due:
            delay = min(delay, (min(due) - self.now_ms()) / 1000)
        return max(MIN_DELAY, delay)
