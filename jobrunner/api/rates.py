"""Recent rates per queue: sample the lifetime counters every second, keep a minute of them.

Rates come from differences of Redis's own counters (enqueued, processed, failed, dead), so they
count the work of every API and worker process, not just this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from jobrunner.queue import ReliableQueue

RATE_COUNTERS = ("enqueued", "processed", "failed", "dead")
WINDOWS = (10, 60)  # seconds


class RateTracker:
    def __init__(
        self,
        queue: ReliableQueue,
        queues: Sequence[str],
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.queues = list(queues)  # the declared queues: one round trip a sample for all
        self.interval = interval
        self.clock = clock
        self._samples: dict[str, deque[tuple[float, dict[str, int]]]] = {}
        self._task: asyncio.Task[None] | None = None

    def add_sample(self, name: str, at: float, counters: dict[str, int]) -> None:
        history = self._samples.setdefault(name, deque(maxlen=max(WINDOWS) + 2))
        history.append((at, {k: counters.get(k, 0) for k in RATE_COUNTERS}))

    async def sample(self) -> None:
        now = self.clock()
        for stats in await self.queue.stats_many(self.queues):
            self.add_sample(stats.name, now, stats.counters)

    def rates(self, name: str) -> dict[str, float]:
        """``{"processed_per_s_10s": ..., "enqueued_per_s_60s": ...}``; empty until two samples."""
        history = self._samples.get(name)
        if not history or len(history) < 2:
            return {}
        newest_at, newest = history[-1]
        out: dict[str, float] = {}
        for window in WINDOWS:
            oldest_at, oldest = next(
                ((at, c) for at, c in history if newest_at - at <= window), history[0]
            )
            span = newest_at - oldest_at
            for counter in RATE_COUNTERS:
                rate = (newest[counter] - oldest[counter]) / span if span > 0 else 0.0
                out[f"{counter}_per_s_{window}s"] = round(rate, 2)
        return out

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rate-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(RedisError):  # Redis down: no sample, rates go stale
                await self.sample()
            await asyncio.sleep(self.interval)
