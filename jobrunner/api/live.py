"""The dashboard's live feed: one sampler reads Redis once a second, every viewer shares it.

However many browsers watch, Redis sees the same two pipelined round trips per tick (depths and
counters of every queue, every worker's heartbeat and description), and each tick is encoded once
as a server-sent event that all streams send as is. So the page costs the same whether one person
or fifty watch, and nothing about it grows with the job rate.

It reads the keys named in ``jobrunner/keys.py`` directly rather than through ``ReliableQueue``,
whose per-queue methods would cost a round trip per queue and per worker on every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from jobrunner.calls import QueueStats, stats_commands, stats_each
from jobrunner.keys import QueueKeys, worker_key, workers_key
from jobrunner.queue import ReliableQueue
from jobrunner.shards import combined

HISTORY_POINTS = 600  # ten minutes at one tick a second
WORKER_MAX_AGE = 60.0  # seconds: older heartbeats are gone from the table
# One point of the charts: time, then the totals over every queue.
POINT_FIELDS = ("t", "ready", "scheduled", "in_flight", "dead",
                "enqueued_per_s", "processed_per_s", "failed_per_s")  # fmt: skip
AVERAGED = ("run_ms", "turnaround_ms")  # ack.lua's sums: per-queue latency without a histogram
RATED = ("enqueued", "processed", "failed")
RECONNECT_MS = 1000


def sse(event: str, data: str) -> bytes:
    """One server-sent event; ``data`` is a single line of JSON."""
    return f"event: {event}\ndata: {data}\n\n".encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | str:
    text = _text(value)
    return int(text) if text.lstrip("-").isdigit() else text


class LiveFeed:
    """Samples Redis every ``interval`` seconds while the app runs and fans each tick out."""

    def __init__(
        self,
        queue: ReliableQueue,
        queues: Sequence[str],
        interval: float = 1.0,
        history: int = HISTORY_POINTS,
        worker_max_age: float = WORKER_MAX_AGE,
    ) -> None:
        self.queue = queue
        self.queues = sorted(queues)  # the declared queues: what a tick reads is bounded
        self.interval = interval
        self.worker_max_age = worker_max_age
        self.points: deque[list[float]] = deque(maxlen=history)
        self.latest: dict[str, Any] = {}
        self.samples = 0  # ticks read from Redis since start: shared, never per viewer
        self.viewers = 0
        self._event = b""
        self._seq = 0
        self._closed = False
        self._changed = asyncio.Condition()
        self._previous: dict[str, tuple[float, dict[str, int]]] = {}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ sampling

    async def read(self) -> dict[str, Any]:
        """One snapshot: every queue's depths, counters and rates, and the live workers."""
        redis = self.queue.redis
        prefix = self.queue.prefix
        # TIME alone: a cluster pipeline refuses a command without a key
        sec, usec = await redis.time()
        beats: list[Any] = await redis.zrange(workers_key(prefix), 0, -1, withscores=True)
        now = int(sec) + int(usec) / 1e6
        held = {queue: await self.queue.holding(queue) for queue in self.queues}
        names = [name for queue in self.queues for name in held[queue]]  # shards, each
        live = [(_text(w), now - score / 1000) for w, score in beats]
        live = [(w, age) for w, age in live if age <= self.worker_max_age]
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                for command, key in stats_commands(QueueKeys(name, prefix)):
                    getattr(pipe, command)(key)
            for worker_id, _ in live:
                pipe.hgetall(worker_key(worker_id, prefix))
            replies = await pipe.execute()
        split = len(replies) - len(live)  # the queues' reads, then a description per worker
        each = {s.name: s for s in stats_each(names, replies[:split])}
        queues = []
        for queue in self.queues:
            view = self._queue_view(now, combined(queue, [each[n] for n in held[queue]]))
            if len(held[queue]) > 1:  # a sharded queue: one row, each shard's depths beside
                view["shards"] = [_depths(each[name]) for name in held[queue]]
            queues.append(view)
        workers = []
        for (worker_id, age), info in zip(live, replies[split:], strict=True):
            if info:  # the description expired between the two round trips
                row: dict[str, Any] = {_text(k): _int(v) for k, v in info.items()}
                workers.append({"id": worker_id, **row, "heartbeat_age": round(age, 2)})
        return {"t": now, "queues": queues, "workers": workers, "error": None}

    def _queue_view(self, now: float, stats: QueueStats) -> dict[str, Any]:
        name, counters = stats.name, stats.counters
        view: dict[str, Any] = {**_depths(stats), "counters": counters}
        before = self._previous.get(name)
        self._previous[name] = (now, counters)
        for counter in RATED:
            rate = 0.0
            if before is not None and now > before[0]:
                delta = counters.get(counter, 0) - before[1].get(counter, 0)
                rate = max(0.0, delta / (now - before[0]))
            view[f"{counter}_per_s"] = round(rate, 1)
        for total in AVERAGED:  # average milliseconds of the jobs done since the last tick
            average = None
            if before is not None:
                done = counters.get("processed", 0) - before[1].get("processed", 0)
                spent = counters.get(total, 0) - before[1].get(total, 0)
                average = round(spent / done, 1) if done > 0 else None
            view[f"{total}_avg"] = average
        return view

    async def tick(self) -> None:
        """Read once, remember the point, and wake every stream with the encoded tick."""
        try:
            snapshot = await self.read()
        except RedisError as exc:
            snapshot = {**self.latest, "error": f"Redis does not answer: {exc}"}
        else:
            qs = snapshot["queues"]
            point = [round(snapshot["t"], 3)]
            point += [sum(q[f] for q in qs) for f in POINT_FIELDS[1:]]
            self.points.append(point)
        self.samples += 1
        self.latest = snapshot
        encoded = sse("tick", json.dumps(snapshot, separators=(",", ":")))
        async with self._changed:
            self._event = encoded
            self._seq += 1
            self._changed.notify_all()

    def history(self) -> dict[str, Any]:
        """The chart points kept so far, column by column, and the latest snapshot."""
        columns = {f: [p[i] for p in self.points] for i, f in enumerate(POINT_FIELDS)}
        return {"fields": list(POINT_FIELDS), "points": columns, "latest": self.latest}

    # ------------------------------------------------------------------ streaming

    async def stream(self) -> AsyncIterator[bytes]:
        """Server-sent events for one viewer: the history, then every tick until closed."""
        self.viewers += 1
        try:
            yield f"retry: {RECONNECT_MS}\n".encode() + sse("history", json.dumps(self.history()))
            seen = self._seq
            while not self._closed:
                async with self._changed:
                    await self._changed.wait_for(partial(self._moved_on, seen))
                if self._closed:
                    return
                seen = self._seq
                yield self._event
        finally:
            self.viewers -= 1

    def _moved_on(self, seen: int) -> bool:
        return self._seq != seen or self._closed

    async def close(self) -> None:
        """End every stream (the server is shutting down); new streams end at once."""
        self._closed = True
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dashboard-feed")

    async def stop(self) -> None:
        await self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.tick()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))


def _depths(stats: QueueStats) -> dict[str, Any]:
    return {"name": stats.name, "ready": stats.ready, "scheduled": stats.scheduled,
            "in_flight": stats.reserved, "dead": stats.dead, "paused": stats.paused}  # fmt: skip
