"""The worker: fetch a batch under a lease, hand jobs to a runner, ack or retry, shut down cleanly.

One asyncio loop (uvloop) does all the Redis I/O for the worker whatever the concurrency model;
the runner decides where handlers execute. Round trips are batched both ways: one ``reserve``
serves up to ``batch_size`` jobs, and completions are buffered and acked together by a flusher.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import RedisError

from jobrunner.backoff import Backoff
from jobrunner.clock import SYSTEM_CLOCK, Clock
from jobrunner.config import Settings
from jobrunner.errors import PayloadDecodeError, WorkerFailed
from jobrunner.job import Job, decode_job
from jobrunner.logs import Throttle, flush_logs, get_logger
from jobrunner.metrics import WorkerMetrics
from jobrunner.queue import ReliableQueue, Reservation
from jobrunner.ratelimit.base import Decision
from jobrunner.ratelimit.gate import ExecutionGate
from jobrunner.ratelimit.spec import LimitSpec, parse_limits
from jobrunner.registry import HandlerSpec, JobContext, Registry
from jobrunner.shards import logical_of
from jobrunner.tracing import current_span, end_run, start_run, trace_id_of, tracer
from jobrunner.worker.acks import AckBuffer
from jobrunner.worker.components import Periodic, task_stacks
from jobrunner.worker.outcome import Kind, Outcome
from jobrunner.worker.runner import Runner
from jobrunner.worker.starts import StartBuffer

T = TypeVar("T")
LOG_FLUSH_INTERVAL = 0.2  # seconds an info line may wait in the log buffer
UNKNOWN_TYPE = "<unknown>"  # the type label of jobs no handler here serves


@dataclass(eq=False)
class _InFlight:
    reservation: Reservation
    started: bool = False  # its handler began (the runner said so)
    job: Job | None = None
    spec: HandlerSpec | None = None
    ctx: JobContext | None = None
    future: asyncio.Future[Outcome] | None = None  # once handed to the runner
    cancel_requested: bool = False
    span: Any = None  # its attempt's span, with tracing on (jobrunner/tracing.py)

    def mark_started(self) -> None:
        self.started = True

    def lease(self) -> tuple[str, str, int]:
        r = self.reservation
        return r.queue, r.id, r.token


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
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.runner = runner
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        self.clock = clock
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.metrics.expect(registry.names(), settings.queues)
        self.counts: Counter[str] = Counter()
        self.window = runner.concurrency + settings.effective_prefetch
        self._inflight: dict[str, _InFlight] = {}
        self._turn = 0  # which shard of a sharded queue is reserved from first
        self._tasks: set[asyncio.Task[None]] = set()  # failures being recorded
        self._running: set[asyncio.Future[Outcome]] = set()  # jobs the runner has
        self._waiting: deque[_InFlight] = deque()  # admitted, waiting for room in the runner
        self._room = asyncio.Event()
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._failure: BaseException | None = None  # a loop ended on an unexpected error
        self._log = get_logger(worker=self.worker_id)
        self._throttle = Throttle()  # repeated warnings during an outage: one a second
        self._traced = tracer() is not None  # tracing.setup ran before: one test a job if off
        lease_renewal = min(settings.heartbeat_interval, settings.lease / 3)
        self._components = [
            Periodic("heartbeat", lease_renewal, self._heartbeat),
            Periodic("maintenance", settings.maintenance_interval, self._maintain),
            Periodic("log-flush", LOG_FLUSH_INTERVAL, self._flush_logs),
        ]
        self._acks = AckBuffer(queue, self.counts, self._log, self.metrics, written=self._room.set)
        self._starts: StartBuffer[_InFlight] = StartBuffer(
            queue, self._log, _InFlight.lease, started=self._submit, lost=self._lost,
            acks=self._acks,
        )  # fmt: skip
        # Whether an execution limit could hold a reserved job back (then reserve marks none).
        self._may_hold = bool(settings.limits) or any(
            spec.limit is not None for spec in map(registry.get, registry.names()) if spec
        )
        # Execution limits: a job over its type's limit is deferred, not run (ratelimit.gate).
        self._gate: ExecutionGate[tuple[Reservation, str]] = ExecutionGate(
            queue.redis, parse_limits(settings.limits), defer=self._defer, spawn=self._spawn,
            on_decision=self._limit_decided, prefix=queue.prefix,
        )  # fmt: skip

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

    def dump_state(self) -> None:
        """Log where this worker's jobs are and what each of its tasks awaits (``SIGUSR1``):
        a worker that holds jobs without running them says which step they wait for."""
        self._log.warning(
            "worker state",
            in_flight=len(self._inflight),
            waiting_for_room=len(self._waiting),
            waiting_for_start_mark=len(self._starts),
            running=len(self._running),
            unacked=self._acks.held,
            recording_failures=len(self._tasks),
            stopping=self._stopping.is_set(),
            tasks=task_stacks(),
        )

    async def run(self) -> dict[str, int]:
        """Run until stopped; returns the shutdown summary counts."""
        await self.runner.start()
        self._watch(self._acks.start())
        self._watch(self._starts.start())
        for component in self._components:
            self._watch(component.start())
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
        if self._failure is not None:
            raise WorkerFailed(f"worker loop failed: {self._failure!r}") from self._failure
        return dict(self.counts)

    def _watch(self, task: asyncio.Task[None]) -> None:
        """A background loop that ends on an error it did not expect stops the worker.

        Living on would be worse than a crash: the heartbeat would keep renewing the leases of
        jobs nothing here will run any more (a dead start marker, say), so no other worker
        would ever get them. Stopped, the worker hands its jobs back and exits non-zero for its
        supervisor to restart.
        """

        def ended(t: asyncio.Task[None]) -> None:
            if t.cancelled() or (error := t.exception()) is None or self._failure is not None:
                return
            self._failure = error
            self._log.error("worker loop failed; stopping", loop=t.get_name(), error=repr(error),
                            exc_info=error)  # fmt: skip
            self._stopping.set()
            self._room.set()

        task.add_done_callback(ended)

    async def _drain(self) -> None:
        await self._wait_for_in_flight(self.settings.grace)
        # Past the grace period: abandon what still runs, then stop recording failures (a
        # failure not recorded is a job still in flight, handed back below like the rest).
        pending: list[asyncio.Future[Any]] = [*self._running, *self._tasks]
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._tasks:  # jobs that failed in the last instant: let their failure be recorded
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._starts.stop()  # jobs not marked yet were never started: released below
        await self._release_unfinished()
        with contextlib.suppress(RedisError):
            await self._gate.close()
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
            while (self._running or self._tasks) and not forced.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                waiting: list[asyncio.Future[Any]] = [*self._running, *self._tasks, forced]
                await asyncio.wait(
                    waiting,
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            forced.cancel()

    async def _release_unfinished(self) -> None:
        by_queue: dict[str, list[tuple[str, int, bool]]] = {}
        for entry in self._inflight.values():
            r = entry.reservation
            by_queue.setdefault(r.queue, []).append((r.id, r.token, entry.started))
        for queue, items in by_queue.items():
            # A few tries only, at shutdown: should they all fail, the leases expire and the
            # reaper returns the jobs.
            released = await self._write("release", self.queue.release, queue, items, tries=5)
            self.counts["requeued"] += released or 0
        self._inflight.clear()

    # ---------------------------------------------------------------- fetching

    async def _fetch_loop(self) -> None:
        # Refill in batches: wait until a good share of the prefetch is free rather than
        # reserving one job per round trip as single slots free up. Runners never starve: while
        # room < refill, at least prefetch - refill jobs are still queued for them.
        refill = max(1, min(self.settings.batch_size, self.settings.effective_prefetch // 2))
        while not self._stopping.is_set():
            # completions not yet acked hold their leases too: a worker holds at most window
            room = self.window - len(self._inflight) - self._acks.held
            if room < refill and (room <= 0 or self._inflight):
                self._room.clear()
                await self._room.wait()
                continue
            try:
                if await self._reserve(room):
                    continue
                # Nothing ready: block until a transition readies jobs, or idle_poll_max passes.
                serving = await self.queue.serving(self.settings.queues)
                await self.queue.wait_for_work(serving, self.settings.idle_poll_max)
            except RedisError as exc:
                if (held := self._throttle.allow("reserve")) is not None:
                    self._log.warning("reserve failed; retrying", error=str(exc), suppressed=held)
                await self._sleep_unless_stopping(self.settings.idle_poll_max * 4)

    async def _reserve(self, room: int) -> int:
        got = 0
        # a sharded queue's shards take turns at coming first: none waits behind the others
        self._turn += 1
        for name in await self.queue.serving(self.settings.queues, self._turn):
            want = min(room - got, self.settings.batch_size)
            # Jobs that will run at once get their start mark from reserve itself: no start
            # round trip before them. Not where an execution limit may hold a job back (a job
            # marked but not run would be charged if this worker died meanwhile).
            free = self.runner.capacity - len(self._running) - len(self._starts)
            free -= len(self._waiting)
            start = 0 if self._may_hold else max(0, min(want, free))
            if self.settings.charge_on == "reserve":
                start = want  # every job charged now: no start marks later
            batch = await self.queue.reserve(name, want, self.settings.lease, start)
            for reservation in batch:
                entry = self._inflight[reservation.id] = _InFlight(reservation)
                self._start(entry)
            got += len(batch)
            if got >= room:
                break
        return got

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # ---------------------------------------------------------------- running

    def _start(self, entry: _InFlight) -> None:
        """Hand one reserved job to the runner; its outcome arrives in ``_finished``."""
        r = entry.reservation
        try:
            job = decode_job(r.raw)
        except PayloadDecodeError as exc:
            self._spawn(self._settle(r, Outcome(Kind.DEAD, str(exc)), "?", None))
            return
        spec = self.registry.get(job.type)
        if spec is None:
            outcome = Outcome(Kind.DEAD, f"unknown job type {job.type!r}")
            # one metric label for every unknown type: a producer cannot mint label series
            self._spawn(self._settle(r, outcome, UNKNOWN_TYPE, None))
            return
        ctx = JobContext(
            job_id=job.id,
            type=job.type,
            attempt=r.attempts,
            timeout=spec.timeout_for(job),
            worker_id=self.worker_id,
        )
        limit = self._gate.limit_for(job.type, spec.limit)
        if limit is not None:
            run = functools.partial(self._run, entry, job, spec, ctx)
            self._gate.submit(limit, limit.key or job.type, (r, job.type), r.id, run)
            return
        self._run(entry, job, spec, ctx)

    def _run(self, entry: _InFlight, job: Job, spec: HandlerSpec, ctx: JobContext) -> None:
        """Admitted: wait for room in the runner, then for the start mark (``StartBuffer``)."""
        entry.job, entry.spec, entry.ctx = job, spec, ctx
        self._waiting.append(entry)
        self._pump()

    def _pump(self) -> None:
        """Send waiting jobs to be marked started while the runner has room for them."""
        room = self.runner.capacity - len(self._running) - len(self._starts)
        while room > 0 and self._waiting and not self._stopping.is_set():
            entry = self._waiting.popleft()
            if entry.cancel_requested:
                self._spawn(self._cancelled(entry.reservation, "cancelled before it started"))
                continue
            if entry.reservation.marked:
                self._submit(entry)  # reserve wrote its start mark
            else:
                self._starts.add(entry)
            room -= 1

    def _submit(self, entry: _InFlight) -> None:
        """Its start mark is in Redis: hand the job to the runner."""
        if self._stopping.is_set():
            return  # never started: handed back by the drain, its attempt refunded
        if entry.cancel_requested:
            self._spawn(self._cancelled(entry.reservation, "cancelled before it started"))
            return
        job, spec, ctx, r = entry.job, entry.spec, entry.ctx, entry.reservation
        assert job is not None
        assert spec is not None
        assert ctx is not None
        if self._traced and job.tp:  # a child of its enqueue span, in the job's trace
            entry.span = start_run(job.tp, job.type, r.queue, job.id, r.attempts,
                                   r.enqueued_ms, r.reserved_ms - r.enqueued_ms)  # fmt: skip
        started = self.clock.monotonic()
        if entry.span is None:
            future = self.runner.submit(job, spec, ctx, entry.mark_started, r.raw)
        else:  # current while the runner takes it: an asyncio task inherits it (its handler's
            with current_span(entry.span):  # spans nest under the attempt's)
                future = self.runner.submit(job, spec, ctx, entry.mark_started, r.raw)
        entry.future = future
        self._running.add(future)
        future.add_done_callback(
            lambda f: self._finished(entry, job.type, spec.backoff, started, f)
        )

    def _lost(self, entry: _InFlight) -> None:
        """Its lease was taken over before it started: someone else has the job now. Its room
        in the runner goes to the next job waiting (without this, mid-failover, the jobs behind
        it waited forever while the heartbeat renewed their leases)."""
        self.counts["leases_lost"] += 1
        self._forget(entry.reservation)
        self._pump()

    def request_cancel(self, queue: str, job_ids: list[str]) -> None:
        """Stop the jobs held here whose cancellation was asked for (seen by the reaper)."""
        for job_id in job_ids:
            entry = self._inflight.get(job_id)
            if entry is None or entry.reservation.queue != queue or entry.cancel_requested:
                continue
            entry.cancel_requested = True
            if entry.future is not None:
                self.runner.cancel(entry.future)
            # not handed over yet: _pump and _submit end it cancelled when its turn comes

    async def _cancelled(self, r: Reservation, why: str) -> None:
        """End a job cancelled: never started, or stopped on request."""
        done = await self._write("cancel", self.queue.finish_cancelled, r.queue,
                                 [(r.id, r.token, why)])  # fmt: skip
        if done:
            self.counts["cancelled"] += 1
            entry = self._inflight.get(r.id)
            job = entry.job if entry is not None else None
            job_type = job.type if job is not None else UNKNOWN_TYPE
            self.metrics.cancelled.labels(job_type, logical_of(r.queue)).inc()
            log = self._job_log(job.tp if job is not None else None)
            log.info("job", job_id=r.id, type=job_type, attempt=r.attempts,
                     outcome="cancelled", result="cancelled", error=why)  # fmt: skip
        self._forget(r)

    def _finished(
        self,
        entry: _InFlight,
        job_type: str,
        backoff: Backoff,
        started: float,
        future: asyncio.Future[Outcome],
    ) -> None:
        """A runner is done with a job: ack it here and now, or start recording a failure."""
        self._running.discard(future)
        self._pump()  # its room in the runner goes to the next job waiting
        if future.cancelled():
            if entry.span is not None:
                end_run(entry.span, "abandoned", None)
            return  # abandoned at shutdown: still in flight, released by the drain
        r = entry.reservation
        error = future.exception()
        if error is not None:  # a bug in a runner must cost one attempt, not the worker
            self._log.error("runner failed", job_id=r.id, error=repr(error))
            outcome = Outcome(Kind.CRASHED, f"runner failed: {error!r}")
        else:
            outcome = future.result()
        if entry.span is not None:
            end_run(entry.span, outcome.kind.value, outcome.error)
        tp = entry.job.tp if entry.job is not None else None
        run_seconds = self.clock.monotonic() - started
        if outcome.ok:  # the hot path: no task, no await
            self._acks.add(r.queue, r.id, r.token, outcome.result)
            self.counts["completed"] += 1
            wait = (r.reserved_ms - r.enqueued_ms) / 1000
            self.metrics.succeeded(job_type, logical_of(r.queue), wait, run_seconds)
            self._forget(r)
            self._log_outcome(r, job_type, outcome, "done", run_seconds, tp)
        elif outcome.kind is Kind.NOT_RUN:
            self._spawn(self._give_back(r))
        elif outcome.kind is Kind.CANCELLED:
            self._spawn(self._cancelled(r, outcome.error or "cancelled"))
        else:
            self._spawn(self._settle(r, outcome, job_type, backoff, run_seconds, tp))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _defer(
        self, items: list[tuple[tuple[Reservation, str], float]], limit: LimitSpec, key: str
    ) -> None:
        """Jobs over their execution limit go back to scheduled, due when capacity is expected."""
        by_queue: dict[str, list[tuple[str, int, float]]] = {}
        for (r, _), delay in items:
            by_queue.setdefault(r.queue, []).append((r.id, r.token, delay))
        for queue, batch in by_queue.items():
            deferred = await self._write("defer", self.queue.defer, queue, batch)
            self.counts["deferred"] += deferred or 0
        for (r, job_type), _ in items:
            self.metrics.deferred.labels(job_type, logical_of(r.queue), key).inc()
            self._forget(r)  # if the write failed, the lease expires and the reaper returns it

    def _limit_decided(self, limit: LimitSpec, key: str, decision: Decision) -> None:
        self.metrics.limit_available.labels(key, limit.algorithm).set(decision.remaining)

    async def _give_back(self, r: Reservation) -> None:
        """Its process died before it began: hand it back untouched at once."""
        released = await self._write(
            "release", self.queue.release, r.queue, [(r.id, r.token, False)]
        )
        self.counts["requeued"] += released or 0
        self._forget(r)  # if even that failed, the lease expires and the reaper returns it

    async def _settle(
        self,
        r: Reservation,
        outcome: Outcome,
        job_type: str,
        backoff: Backoff | None,
        run_seconds: float = 0.0,
        tp: str | None = None,
    ) -> None:
        """Record a failed attempt (retry later or dead) and write its log line."""
        dead = outcome.kind is Kind.DEAD or backoff is None
        delay = outcome.delay
        if delay is None and backoff is not None:
            delay = backoff.delay(r.attempts, r.last_delay)
        result = await self._fail(r, outcome.error or outcome.kind.value, delay or 0.0, dead)
        self.metrics.failed_attempt(job_type, logical_of(r.queue), result, run_seconds)
        self._forget(r)
        self._log_outcome(r, job_type, outcome, result, run_seconds, tp)

    def _job_log(self, tp: str | None) -> Any:
        """The logger for a job's line: with its trace id when it carries a trace context."""
        return self._log if tp is None else self._log.bind(trace_id=trace_id_of(tp))

    def _log_outcome(
        self,
        r: Reservation,
        job_type: str,
        outcome: Outcome,
        result: str,
        run_seconds: float,
        tp: str | None = None,
    ) -> None:
        """The one log line per job outcome."""
        self._job_log(tp).info(
            "job",
            job_id=r.id,
            type=job_type,
            attempt=r.attempts,
            wait_ms=r.reserved_ms - r.enqueued_ms,
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
        self,
        what: str,
        op: Callable[..., Awaitable[T]],
        *args: Any,
        tries: int = 12,
        **kwargs: Any,
    ) -> T | None:
        """Run one Redis write, retrying through a Redis outage (12 tries: about a minute).

        Gives up with None: every write here is backed by the lease, so a job whose outcome
        could not be recorded is redelivered, never lost.
        """
        for attempt in range(tries):
            try:
                return await op(*args, **kwargs)
            except RedisError as exc:
                if (held := self._throttle.allow(what)) is not None:
                    self._log.warning(
                        f"{what} failed; retrying",
                        error=str(exc),
                        attempt=attempt + 1,
                        suppressed=held,
                    )
                await asyncio.sleep(min(10.0, 0.05 * 2**attempt))
        return None

    def _forget(self, r: Reservation) -> None:
        # Only our own entry: the same id may have been reserved again under a newer lease.
        entry = self._inflight.get(r.id)
        if entry is not None and entry.reservation is r:
            del self._inflight[r.id]
            self._gate.done(r.id)  # frees its concurrency slot, if it held one
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
        await self._gate.renew()
        self.metrics.in_flight.set(len(self._inflight))
        self.metrics.heartbeat.set(self.clock.time())
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
        for name in await self.queue.serving(self.settings.queues):
            promoted = await self.queue.promote(name)
            requeued, dead, cancel = await self.queue.reap(name)
            if cancel:
                self.request_cancel(name, cancel)
            if promoted or requeued or dead:
                self.counts["reaped"] += requeued
                if requeued or dead:
                    self._log.info(
                        "reaped expired leases", queue=name, requeued=requeued, dead=dead
                    )


SUMMARY_KEYS = ("completed", "failed", "retried", "dead", "cancelled", "requeued", "stale")
