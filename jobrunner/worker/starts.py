"""Jobs about to start, marked started in Redis in batches before their handlers run.

A delivery is charged when a job starts, not when it is reserved: the reaper refunds the
attempt of a job whose lease ran out before it got a start mark. So the mark must be in Redis
before the handler runs (a job that kills its worker the moment it starts is still charged, and
dead after ``max_retries + 1`` starts), and it is written for many jobs at once: whatever became
ready to start while the previous mark was on its way goes in the next call, as acks do.

A job whose lease was taken over meanwhile is reported lost and not started. On a Redis error
the marks are sent again until the worker stops; jobs never marked are handed back unstarted.

Where a slot turns over, the completions waiting for their ack ride in the same call as the
next jobs' marks (``ReliableQueue.ack_and_start``): one round trip, not two (the thread model,
whose threads finish jobs one at a time, paid both nearly every job).

Jobs that go straight to free slots get their mark from reserve itself (``reserve(start=n)``),
so a job sent to an idle worker costs no extra round trip. The mark is written when the job is
handed to the runner: a job handed over in the same instant as one that kills the process may
be charged for a start whose first line never ran. What the mark protects is the prefetch: a
job still waiting for a slot is never charged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from redis.exceptions import RedisError

from jobrunner.logs import Throttle
from jobrunner.queue import ReliableQueue
from jobrunner.worker.acks import AckBuffer

T = TypeVar("T", bound=Hashable)


class StartBuffer(Generic[T]):
    def __init__(
        self,
        queue: ReliableQueue,
        log: Any,
        lease_of: Callable[[T], tuple[str, str, int]],
        started: Callable[[T], None],
        lost: Callable[[T], None],
        acks: AckBuffer | None = None,
    ) -> None:
        self.queue = queue
        self._acks = acks  # completions waiting for their ack ride along with the marks
        self._log = log
        self._lease_of = lease_of  # item -> (queue, job id, token)
        self._started = started
        self._lost = lost
        self._pending: list[T] = []
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._throttle = Throttle()
        self._closing = False

    def __len__(self) -> int:
        """Jobs waiting for their mark, or with their mark on its way."""
        return len(self._pending) + self._in_flight

    def add(self, item: T) -> None:
        self._pending.append(item)
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="start-marker")
        return self._task

    async def stop(self) -> list[T]:
        """Stop marking; returns the jobs never marked (to be handed back unstarted)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:  # a failure of its own was reported when it ended
            await asyncio.gather(self._task, return_exceptions=True)
        left, self._pending = self._pending, []
        return left

    async def _run(self) -> None:
        delay = 0.05
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            self._in_flight = len(batch)
            try:
                lost = await self._mark(batch)
            except RedisError as exc:
                self._pending[:0] = batch  # kept, in order, for the next try
                if (held := self._throttle.allow("start")) is not None:
                    self._log.warning("start marks failed; retrying", jobs=len(batch),
                                      error=str(exc), suppressed=held)  # fmt: skip
                self._in_flight = 0
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                self._wake.set()
                continue
            delay = 0.05
            self._in_flight = 0
            for item in batch:
                (self._lost if item in lost else self._started)(item)

    async def _mark(self, batch: list[T]) -> set[T]:
        by_queue: dict[str, list[T]] = {}
        for item in batch:
            by_queue.setdefault(self._lease_of(item)[0], []).append(item)
        lost: set[T] = set()
        for queue, items in by_queue.items():
            pairs = [(lease[1], lease[2]) for lease in map(self._lease_of, items)]
            acks = self._acks.take(queue) if self._acks is not None else []
            if acks:  # the jobs whose ends freed these slots: one round trip for both
                assert self._acks is not None
                try:
                    stale, gone_list = await self.queue.ack_and_start(queue, acks, pairs)
                except BaseException:
                    self._acks.put_back(queue, acks)
                    raise
                self._acks.settled(queue, len(acks), stale)
                gone = set(gone_list)
            else:
                gone = set(await self.queue.start(queue, pairs))
            lost.update(item for item in items if self._lease_of(item)[1] in gone)
        return lost
