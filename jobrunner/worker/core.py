"""The worker: fetch a batch under a lease, hand jobs to a runner, ack or retry, shut down cleanly.

One asyncio loop (uvloop) does all the Redis I/O for the worker whatever the concurrency model;
the runner decides where handlers execute. Round trips are batched both ways: one ``reserve``
serves up to ``batch_size`` jobs, and completions are buffered and acked together by a flusher.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import RedisError

from jobrunner.backoff import Backoff
from jobrunner.clock import SYSTEM_CLOCK, Clock
from jobrunner.config import Settings
from jobrunner.errors import PayloadDecodeError
from jobrunner.job import decode_job
from jobrunner.logs import flush_logs, get_logger
from jobrunner.queue import ReliableQueue, Reservation
from jobrunner.registry import JobContext, Registry
from jobrunner.worker.acks import AckBuffer
from jobrunner.worker.components import Periodic
from jobrunner.worker.outcome import Kind, Outcome
from jobrunner.worker.runner import Runner

T = TypeVar("T")
LOG_FLUSH_INTERVAL = 0.2  # seconds an info line may wait in the log buffer


@dataclass
class _InFlight:
    reservation: Reservation
    started: bool = False


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Processes jobs from ``settings.queues`` (first = highest priority) until stopped."""

    def __init__(
        self,
        queue: ReliableQueue,
        registry: Registry,
        runner: Runner,
        settings: Settings,
        *,
        worker_id: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.runner = runner
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.window = runner.concurrency + settings.effective_prefetch
        self._inflight: dict[str, _InFlight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._log = get_logger(worker=self.worker_id)
        lease_renewal = min(settings.heartbeat_interval, settings.lease / 3)
        self._components = [
            Periodic("heartbeat", lease_renewal, self._heartbeat),
            Periodic("maintenance", settings.maintenance_interval, self._maintain),
            Periodic("log-flush", LOG_FLUSH_INTERVAL, self._flush_logs),
        ]
        self._acks = AckBuffer(queue, self.counts, self._log)

    # ---------------------------------------------------------------- lifecycle

    def request_stop(self) -> None:
        """First signal: stop fetching, let in-flight jobs finish within the grace period."""
        if self._stopping.is_set():
            self._log.warning("second signal: handing back in-flight jobs now")
            self.force_stop()
            return
        self._log.info("worker stopping", in_flight=len(self._inflight), grace=self.settings.grace)
        self._stopping.set()
        self._room.set()

    def force_stop(self) -> None:
        """Second signal: stop waiting; jobs still running are handed back, not lost."""
        self._stopping.set()
        self._forced.set()
        self._room.set()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def run(self) -> dict[str, int]:
        """Run until stopped; returns the shutdown summary counts."""
        await self.runner.start()
        self._acks.start()
        for component in self._components:
            component.start()
        self._log.info(
            "worker started",
            model=self.runner.model,
            concurrency=self.runner.concurrency,
            queues=self.settings.queues,
            pid=os.getpid(),
        )
        try:
            await self._fetch_loop()
        finally:
            await self._drain()
        return dict(self.counts)

    async def _drain(self) -> None:
        await self._wait_for_in_flight(self.settings.grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._release_unfinished()
        await self._acks.stop()
        for component in self._components:
            await component.stop()
        await self.runner.stop()
        with contextlib.suppress(RedisError):
            await self.queue.remove_worker(self.worker_id)
        self._log.info("worker stopped", **{k: self.counts[k] for k in SUMMARY_KEYS})

    async def _wait_for_in_flight(self, grace: float) -> None:
        """Let running jobs finish, until the grace period ends or a second signal comes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        forced = asyncio.create_task(self._forced.wait())
        try:
            while self._tasks and not forced.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.wait(
                    [*self._tasks, forced], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            forced.cancel()

    async def _release_unfinished(self) -> None:
        by_queue: dict[str, list[tuple[str, int, bool]]] = {}
        for entry in self._inflight.values():
            r = entry.reservation
            by_queue.setdefault(r.queue, []).append((r.id, r.token, entry.started))
        for queue, items in by_queue.items():
            for attempt in range(5):
                try:
                    self.counts["requeued"] += await self.queue.release(queue, items)
                    break
                except RedisError as exc:
                    # If this never succeeds the leases expire and the reaper returns the jobs.
                    self._log.warning("release failed", error=str(exc), attempt=attempt + 1)
                    await asyncio.sleep(0.2 * (attempt + 1))
        self._inflight.clear()

    # ---------------------------------------------------------------- fetching

    async def _fetch_loop(self) -> None:
        idle = 0.001
        # Refill in batches: wait until a good share of the prefetch is free rather than
        # reserving one job per round trip as single slots free up. Runners never starve: while
        # room < refill, at least prefetch - refill jobs are still queued for them.
        refill = max(1, min(self.settings.batch_size, self.settings.effective_prefetch // 2))
        while not self._stopping.is_set():
            room = self.window - len(self._inflight)
            if room < refill and (room <= 0 or self._inflight):
                self._room.clear()
                await self._room.wait()
                continue
            try:
                got = await self._reserve(room)
            except RedisError as exc:
                self._log.warning("reserve failed; retrying", error=str(exc))
                got = 0
                idle = self.settings.idle_poll_max * 4
            if got:
                idle = 0.001
                continue
            await self._sleep_unless_stopping(idle)
            idle = min(idle * 2, self.settings.idle_poll_max)

    async def _reserve(self, room: int) -> int:
        got = 0
        for name in self.settings.queues:
            want = min(room - got, self.settings.batch_size)
            batch = await self.queue.reserve(name, want, self.settings.lease)
            for reservation in batch:
                entry = self._inflight[reservation.id] = _InFlight(reservation)
                task = asyncio.create_task(self._handle(entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            got += len(batch)
            if got >= room:
                break
        return got

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # ---------------------------------------------------------------- running

    async def _handle(self, entry: _InFlight) -> None:
        r = entry.reservation
        try:
            job = decode_job(r.raw)
        except PayloadDecodeError as exc:
            await self._settle(r, Outcome(Kind.DEAD, str(exc)), "?", None)
            return
        spec = self.registry.get(job.type)
        if spec is None:
            await self._settle(
                r, Outcome(Kind.DEAD, f"unknown job type {job.type!r}"), job.type, None
            )
            return
        ctx = JobContext(
            job_id=job.id,
            type=job.type,
            attempt=r.attempts,
            timeout=spec.timeout_for(job),
            worker_id=self.worker_id,
        )

        def on_start() -> None:
            entry.started = True

        started = time.monotonic()
        try:
            outcome = await self.runner.run(job, spec, ctx, on_start)
        except Exception as exc:  # a bug in a runner must cost one attempt, not the worker
            self._log.exception("runner failed", job_id=r.id)
            outcome = Outcome(Kind.CRASHED, f"runner failed: {exc!r}")
        if outcome.kind is Kind.NOT_RUN:
            # Its process died before it began: hand it back untouched at once.
            released = await self._write(
                "release", self.queue.release, r.queue, [(r.id, r.token, False)]
            )
            self.counts["requeued"] += released or 0
            self._forget(r)  # if even that failed, the lease expires and the reaper returns it
            return
        await self._settle(r, outcome, job.type, spec.backoff, time.monotonic() - started)

    async def _settle(
        self,
        r: Reservation,
        outcome: Outcome,
        job_type: str,
        backoff: Backoff | None,
        run_seconds: float = 0.0,
    ) -> None:
        """Ack or fail the job and write its one log line."""
        wait_ms = r.reserved_ms - r.enqueued_ms
        result = "done"
        if outcome.ok:
            self._acks.add(r.queue, r.id, r.token)
            self.counts["completed"] += 1
        else:
            dead = outcome.kind is Kind.DEAD or backoff is None
            delay = outcome.delay
            if delay is None and backoff is not None:
                delay = backoff.delay(r.attempts, r.last_delay)
            result = await self._fail(r, outcome.error or outcome.kind.value, delay or 0.0, dead)
        self._forget(r)
        self._log.info(
            "job",
            job_id=r.id,
            type=job_type,
            attempt=r.attempts,
            wait_ms=wait_ms,
            run_ms=round(run_seconds * 1000, 3),
            outcome=outcome.kind.value,
            result=result,
            **({"error": outcome.error} if outcome.error else {}),
        )

    async def _fail(self, r: Reservation, error: str, delay: float, dead: bool) -> str:
        result = await self._write(
            "fail", self.queue.fail, r.queue, r.id, r.token, error, delay=delay, dead=dead
        )
        if result is None:
            return "unrecorded"  # the lease will expire and the reaper will redeliver it
        self.counts[
            "dead" if result == "dead" else "retried" if result == "scheduled" else result
        ] += 1
        self.counts["failed"] += 1
        return result

    async def _write(
        self, what: str, op: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T | None:
        """Run one Redis write, retrying through a Redis outage for about a minute.

        Gives up with None: every write here is backed by the lease, so a job whose outcome
        could not be recorded is redelivered, never lost.
        """
        for attempt in range(12):
            try:
                return await op(*args, **kwargs)
            except RedisError as exc:
                self._log.warning(f"{what} failed; retrying", error=str(exc), attempt=attempt + 1)
                await asyncio.sleep(min(10.0, 0.05 * 2**attempt))
        return None

    def _forget(self, r: Reservation) -> None:
        # Only our own entry: the same id may have been reserved again under a newer lease.
        entry = self._inflight.get(r.id)
        if entry is not None and entry.reservation is r:
            del self._inflight[r.id]
        self._room.set()

    # ---------------------------------------------------------------- background ticks

    async def _heartbeat(self) -> None:
        info: dict[str, Any] = {
            "model": self.runner.model,
            "concurrency": self.runner.concurrency,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queues": ",".join(self.settings.queues),
            "in_flight": len(self._inflight),
            "completed": self.counts["completed"],
            "failed": self.counts["failed"],
        }
        ttl = max(3 * self.settings.heartbeat_interval, self.settings.lease)
        await self.queue.heartbeat(self.worker_id, info, ttl)
        held: dict[str, list[tuple[str, int]]] = {}
        for entry in list(self._inflight.values()):
            held.setdefault(entry.reservation.queue, []).append(
                (entry.reservation.id, entry.reservation.token)
            )
        for queue, items in held.items():
            lost = await self.queue.extend(queue, items, self.settings.lease)
            # A job acked while the renewal was on its way is not lost: keep only those we
            # still hold under the same lease.
            tokens = dict(items)
            lost = [
                i for i in lost if (e := self._inflight.get(i)) and e.reservation.token == tokens[i]
            ]
            if lost:
                self.counts["leases_lost"] += len(lost)
                self._log.warning("leases lost", ids=lost[:10], count=len(lost))

    async def _flush_logs(self) -> None:
        flush_logs()

    async def _maintain(self) -> None:
        for name in self.settings.queues:
            promoted = await self.queue.promote(name)
            requeued, dead = await self.queue.reap(name)
            if promoted or requeued or dead:
                self.counts["reaped"] += requeued
                if requeued or dead:
                    self._log.info(
                        "reaped expired leases", queue=name, requeued=requeued, dead=dead
                    )


SUMMARY_KEYS = ("completed", "failed", "retried", "dead", "requeued", "stale")
