"""asyncio model: async handlers run on the worker's event loop (uvloop), cancelled on timeout.

Timeouts are enforced by one watchdog that scans the running jobs every 50 ms and cancels the
overdue ones, rather than an ``asyncio.timeout`` per job: a profile showed the per-job timer
(created, pushed on the loop's heap, cancelled) costing a quarter of a no-op job's time. The
price is precision: a job is cancelled up to 50 ms after its deadline.

Sync handlers are pushed to a small thread pool so they cannot block the loop; their timeout is
cooperative, as in the thread model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import msgspec

from jobrunner.job import Job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.invoke import call_sync, typed_payload
from jobrunner.worker.outcome import Kind, Outcome, outcome_from_exception, succeeded
from jobrunner.worker.slots import Slots


class AsyncioRunner:
    model = "asyncio"

    def __init__(
        self, concurrency: int, sync_threads: int = 8, watchdog_interval: float = 0.05
    ) -> None:
        self.concurrency = concurrency
        self.capacity = concurrency
        self.watchdog_interval = watchdog_interval
        self._slots = Slots(concurrency)
        self._pool = ThreadPoolExecutor(sync_threads, thread_name_prefix="jobrunner-sync")
        self._running: dict[asyncio.Task[object], JobContext] = {}
        self._overdue: set[asyncio.Task[object]] = set()
        self._cancelled: set[asyncio.Future[Outcome]] = set()  # stopped on request
        self._watchdog: asyncio.Task[None] | None = None
        self._contexts: dict[asyncio.Future[Outcome], JobContext] = {}

    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self._watch_deadlines(), name="asyncio-watchdog")

    def submit(
        self,
        job: Job,
        spec: HandlerSpec,
        ctx: JobContext,
        on_start: Callable[[], None],
        raw: bytes,
    ) -> asyncio.Future[Outcome]:
        future = asyncio.ensure_future(self._run(job, spec, ctx, on_start))
        self._contexts[future] = ctx
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: asyncio.Future[Outcome]) -> None:
        self._contexts.pop(future, None)
        self._cancelled.discard(future)

    def cancel(self, future: asyncio.Future[Outcome]) -> None:
        """Cancel its task: the handler sees CancelledError (a sync one in the pool only its
        context's ``cancelled`` flag), and the job ends cancelled."""
        ctx = self._contexts.get(future)
        if ctx is None or future.done():
            return
        self._cancelled.add(future)
        ctx.cancel("cancelled on request")
        future.cancel()

    async def _run(
        self, job: Job, spec: HandlerSpec, ctx: JobContext, on_start: Callable[[], None]
    ) -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        try:
            return await self._run_in_slot(task, job, spec, ctx, on_start)
        except asyncio.CancelledError:
            if task not in self._cancelled:
                raise  # the worker is shutting down: not ours to swallow
            task.uncancel()
            return Outcome(Kind.CANCELLED, "cancelled while running")

    async def _run_in_slot(
        self,
        task: asyncio.Task[object],
        job: Job,
        spec: HandlerSpec,
        ctx: JobContext,
        on_start: Callable[[], None],
    ) -> Outcome:
        await self._slots.acquire()
        try:
            on_start()
            if not spec.is_async:
                return await _run_sync_in_pool(self._pool, spec, job, ctx)
            ctx.deadline = time.monotonic() + ctx.timeout
            try:
                payload = typed_payload(spec, job.payload)
            except msgspec.ValidationError as exc:
                return Outcome(Kind.DEAD, f"the payload does not fit {spec.payload_type}: {exc}")
            args = (payload, ctx) if spec.takes_context else (payload,)
            self._running[task] = ctx
            try:
                value = await spec.fn(*args)
            except asyncio.CancelledError:
                if task not in self._overdue:
                    raise
                task.uncancel()
                return outcome_from_exception(
                    TimeoutError(f"cancelled after its {ctx.timeout}s timeout")
                )
            except Exception as exc:
                return outcome_from_exception(exc)
            finally:
                del self._running[task]
                self._overdue.discard(task)
            return succeeded(value)
        finally:
            self._slots.release()

    async def _watch_deadlines(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_interval)
            now = time.monotonic()
            for task, ctx in list(self._running.items()):
                if now > ctx.deadline and task not in self._overdue:
                    self._overdue.add(task)
                    ctx.cancelled.set()
                    task.cancel()

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _run_sync_in_pool(
    pool: ThreadPoolExecutor, spec: HandlerSpec, job: Job, ctx: JobContext
) -> Outcome:
    """Run a sync handler on ``pool``; past its deadline, flag it cancelled and stop waiting."""
    future = asyncio.get_running_loop().run_in_executor(pool, call_sync, spec, job.payload, ctx)
    try:
        return await asyncio.wait_for(asyncio.shield(future), ctx.timeout)
    except TimeoutError:
        ctx.cancelled.set()
        return outcome_from_exception(
            TimeoutError(f"overran its {ctx.timeout}s timeout (thread left to finish)")
        )
    except asyncio.CancelledError:
        ctx.cancelled.set()
        raise
