"""The worker's execution gate: a reserved job of a limited type runs only if its limit admits it;
otherwise it is deferred to when capacity is expected (not failed, no attempt charged).

Jobs that arrive together (one reserve batch) ask their limiter together: one script call per
limit key. The jobs not admitted are spread over the slots the limiter expects to free, after
those this worker already promised to earlier jobs (its *horizon*), so a backlog is planned
into the future once instead of bouncing back all at the same instant. A job whose slot is
near (``LOCAL_WAIT``) waits in the worker and asks again then; the others go back to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobrunner.keys import PREFIX
from jobrunner.ratelimit.base import Decision
from jobrunner.ratelimit.distributed import RedisLimiter, redis_limiter
from jobrunner.ratelimit.spec import LimitSpec

T = TypeVar("T")
U = TypeVar("U")
RETRY_WHEN_UNREACHABLE = 1.0  # seconds to defer by when the limiter cannot be asked
# A job expected to fit within this many seconds waits here (it holds its lease) and asks again
# at its slot: a round trip through Redis's scheduled set would make it late, and a late unit
# is capacity lost for a limiter without burst.
LOCAL_WAIT = 0.25
WAKE_MARGIN = 0.001  # timers may fire up to a millisecond early; early is a wasted round trip


@dataclass
class _Waiting(Generic[T]):
    item: T
    job_id: str
    start: Callable[[], None]


Group = tuple[LimitSpec, str]  # a limit and the key it guards


class ExecutionGate(Generic[T]):
    """Admits or defers jobs of limited types; tracks the concurrency slots they hold.

    ``defer`` receives ``(item, delay)`` pairs and puts them back in Redis; ``spawn`` runs a
    coroutine as one of the worker's tracked tasks (so shutdown waits for it).
    """

    def __init__(
        self,
        redis: Redis,
        overrides: dict[str, LimitSpec],
        *,
        defer: Callable[[list[tuple[T, float]], LimitSpec, str], Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        on_decision: Callable[[LimitSpec, str, Decision], None] | None = None,
        prefix: str = PREFIX,
    ) -> None:
        self.redis = redis
        self.overrides = overrides
        self.prefix = prefix
        self._defer = defer
        self._spawn = spawn
        self._on_decision = on_decision
        self._limiters: dict[LimitSpec, RedisLimiter] = {}
        self._pending: dict[Group, list[_Waiting[T]]] = {}
        self._horizon: dict[Group, float] = {}
        self._held: dict[str, Group] = {}  # job id -> the concurrency limit it holds a slot of
        self._to_release: dict[Group, list[str]] = {}

    def limit_for(self, job_type: str, handler_limit: LimitSpec | None) -> LimitSpec | None:
        """The setting for the type wins over the handler's own; None: the job runs at once."""
        return self.overrides.get(job_type, handler_limit)

    def limiter(self, spec: LimitSpec) -> RedisLimiter:
        limiter = self._limiters.get(spec)
        if limiter is None:
            limiter = self._limiters[spec] = redis_limiter(self.redis, spec, prefix=self.prefix)
        return limiter

    # ---------------------------------------------------------------- admission

    def submit(
        self, spec: LimitSpec, key: str, item: T, job_id: str, start: Callable[[], None]
    ) -> None:
        """Queue a job for admission; every job submitted in this loop tick asks in one call."""
        group = (spec, key)
        waiting = self._pending.get(group)
        if waiting is None:
            waiting = self._pending[group] = []
            asyncio.get_running_loop().call_soon(self._flush, group)
        waiting.append(_Waiting(item, job_id, start))

    def _flush(self, group: Group) -> None:
        waiting = self._pending.pop(group, [])
        if waiting:
            self._spawn(self._admit(group, waiting))

    async def _admit(self, group: Group, waiting: list[_Waiting[T]]) -> None:
        spec, key = group
        ids = [w.job_id for w in waiting]
        try:
            decision = await self.limiter(spec).acquire(key, ids)
        except RedisError:
            decision = Decision(0, len(ids), RETRY_WHEN_UNREACHABLE, 0.0, 0.0, time.time())
        if self._on_decision is not None:
            self._on_decision(spec, key, decision)
        admitted, over = waiting[: decision.granted], waiting[decision.granted :]
        for w in admitted:
            if spec.algorithm == "concurrency":
                self._held[w.job_id] = group
            w.start()
        if not over:
            return
        planned = self.plan(group, decision, over)
        soon = [(w, delay) for w, delay in planned if delay <= LOCAL_WAIT]
        later = [(w.item, delay) for w, delay in planned if delay > LOCAL_WAIT]
        if soon:
            self._spawn(self._wait_and_retry(group, soon))
        if later:
            await self._defer(later, spec, key)

    async def _wait_and_retry(self, group: Group, soon: list[tuple[_Waiting[T], float]]) -> None:
        started = time.monotonic()
        for w, delay in soon:  # in slot order
            await asyncio.sleep(max(0.0, started + delay + WAKE_MARGIN - time.monotonic()))
            self.submit(group[0], group[1], w.item, w.job_id, w.start)

    def plan(self, group: Group, decision: Decision, items: list[U]) -> list[tuple[U, float]]:
        """Delays for the units not admitted: one expected slot each, after this worker's horizon
        (the slots it already promised to jobs it deferred earlier)."""
        now = time.monotonic()
        first = max(now + decision.retry_after, self._horizon.get(group, 0.0))
        interval = decision.interval
        out = [(item, first - now + i * interval) for i, item in enumerate(items)]
        self._horizon[group] = first + len(items) * interval
        return out

    # ---------------------------------------------------------------- concurrency slots

    def done(self, job_id: str) -> None:
        """A job left this worker (finished, failed, handed back): free its slot, if it held one."""
        group = self._held.pop(job_id, None)
        if group is None:
            return
        ids = self._to_release.get(group)
        if ids is None:
            ids = self._to_release[group] = []
            asyncio.get_running_loop().call_soon(self._flush_releases, group)
        ids.append(job_id)

    def _flush_releases(self, group: Group) -> None:
        ids = self._to_release.pop(group, [])
        if ids:
            self._spawn(self._release(group, ids))

    async def _release(self, group: Group, ids: list[str]) -> None:
        # Should Redis not answer, the slots come back when their leases expire.
        with contextlib.suppress(RedisError):
            await self.limiter(group[0]).release(group[1], ids)

    async def renew(self) -> None:
        """Extend the leases of the slots this worker's running jobs hold (the heartbeat)."""
        by_group: dict[Group, list[str]] = {}
        for job_id, group in self._held.items():
            by_group.setdefault(group, []).append(job_id)
        for (spec, key), ids in by_group.items():
            await self.limiter(spec).renew(key, ids)

    async def close(self) -> None:
        """At shutdown: give back every slot still held (jobs handed back or abandoned)."""
        for job_id in list(self._held):
            self.done(job_id)
        for group in list(self._to_release):
            await self._release(group, self._to_release.pop(group))
