"""Completions waiting to be acked, sent in batches by one background task.

Jobs finish one at a time but are acked together: whatever completed while the previous ack was
on its way goes in the next call, so under load one round trip acks a whole batch and when idle
an ack leaves at once. On a Redis error the completions are kept and sent again: a completion is
never dropped, and one that cannot be sent at all leaves its lease to expire (a redelivery).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from jobrunner.logs import Throttle
from jobrunner.metrics import WorkerMetrics
from jobrunner.queue import ReliableQueue
from jobrunner.shards import logical_of

FINAL_TRIES = 20
STREAM_GAP = 0.01  # an ack sent less than this ago: completions are streaming in
LINGER = 0.001  # how long a completion in a stream waits for company
LINGER_BATCH = 32  # no wait once this many are waiting


class AckBuffer:
    def __init__(
        self,
        queue: ReliableQueue,
        counts: Counter[str],
        log: Any,
        metrics: WorkerMetrics,
        written: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self.metrics = metrics
        self.counts = counts
        self._log = log
        self._written = written
        # Completions not yet written, waiting or on the wire: their leases are still held in
        # Redis, so the worker counts them in its window (a SIGKILL now runs them again).
        self.held = 0
        self._pending: dict[str, list[tuple[str, int, bytes | None]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._throttle = Throttle()
        self._closing = False

    def add(self, queue: str, job_id: str, token: int, result: bytes | None = None) -> None:
        self._pending.setdefault(queue, []).append((job_id, token, result))
        self.held += 1
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="ack-flusher")
        return self._task

    async def stop(self) -> None:
        """Stop the background task, then send what is left (trying for a while).

        The task is asked to stop, not cancelled: a cancellation that arrives while an ack is
        on the wire can be swallowed by the Redis client (seen with redis-py 8.1), and the
        task then waited for work forever, hanging the worker's shutdown.
        """
        self._closing = True
        self._wake.set()
        if self._task is not None:  # a failure of its own was reported when it ended
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush(final=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            # In a stream of completions that trickle in (a thread pool finishing jobs one by
            # one), wait a moment for more before sending: a round trip then acks several
            # jobs, not one. A lone completion after a quiet spell leaves at once.
            if loop.time() - last < STREAM_GAP and self._waiting() < LINGER_BATCH:
                await asyncio.sleep(LINGER)
            last = loop.time()
            await self.flush()

    def _waiting(self) -> int:
        return sum(len(items) for items in self._pending.values())

    async def flush(self, *, final: bool = False) -> None:
        """Send buffered completions; on a Redis error keep them and try again."""
        delay = 0.05
        tries = 0
        while self._pending:
            queue, items = next(iter(self._pending.items()))
            del self._pending[queue]
            try:
                stale = await self.queue.ack(queue, items)
            except RedisError as exc:
                self._pending.setdefault(queue, []).extend(items)
                tries += 1
                if self._closing and not final:
                    return  # stop() sends what is left, with a bounded number of tries
                if final and tries > FINAL_TRIES:
                    self._log.error("could not ack before exit", jobs=len(items), error=str(exc))
                    return
                if (held := self._throttle.allow("ack")) is not None:
                    self._log.warning(
                        "ack failed; retrying", jobs=len(items), error=str(exc), suppressed=held
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.settled(queue, len(items), stale)

    def take(self, queue: str) -> list[tuple[str, int, bytes | None]]:
        """The completions waiting for ``queue``, to ride in another call (a start mark's):
        the caller reports back with ``settled``, or ``put_back`` if the call failed."""
        return self._pending.pop(queue, [])

    def put_back(self, queue: str, items: list[tuple[str, int, bytes | None]]) -> None:
        if items:
            self._pending.setdefault(queue, [])[:0] = items
            self._wake.set()

    def settled(self, queue: str, written: int, stale: list[str]) -> None:
        """``written`` completions were written; ``stale`` of them were refused (their lease
        was taken over)."""
        self.held -= written
        self._written()
        if stale:
            self.counts["stale"] += len(stale)
            self.counts["completed"] -= len(stale)
            self.metrics.stale.labels(logical_of(queue)).inc(len(stale))
            self._log.warning("stale completions rejected", ids=stale[:10], count=len(stale))
