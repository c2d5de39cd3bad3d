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

from jobrunner.job import Job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.invoke import call_sync
from jobrunner.worker.outcome import OK, Outcome, outcome_from_exception
from jobrunner.worker.slots import Slots


class AsyncioRunner:
    model = "asyncio"

    def __init__(
        self, concurrency: int, sync_threads: int = 8, watchdog_interval: float = 0.05
    ) -> None:
        self.concurrency = concurrency
        self.watchdog_interval = watchdog_interval
        self._slots = Slots(concurrency)
        self._pool = ThreadPoolExecutor(sync_threads, thread_name_prefix="jobrunner-sync")
        self._running: dict[asyncio.Task[object], JobContext] = {}
        self._overdue: set[asyncio.Task[object]] = set()
        self._watchdog: asyncio.Task[None] | None = None

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
        return asyncio.ensure_future(self._run(job, spec, ctx, on_start))

    async def _run(
        self, job: Job, spec: HandlerSpec, ctx: JobContext, on_start: Callable[[], None]
    ) -> Outcome:
        await self._slots.acquire()
        try:
            on_start()
            if not spec.is_async:
                return await _run_sync_in_pool(self._pool, spec, job, ctx)
            task = asyncio.current_task()
            assert task is not None
            ctx.deadline = time.monotonic() + ctx.timeout
            args = (job.payload, ctx) if spec.takes_context else (job.payload,)
            self._running[task] = ctx
            try:
                await spec.fn(*args)
            except asyncio.CancelledError:
                if task not in self._overdue:
                    raise  # the worker is shutting down: not ours to swallow
                task.uncancel()
                return outcome_from_exception(
                    TimeoutError(f"cancelled after its {ctx.timeout}s timeout")
                )
            except Exception as exc:
                return outcome_from_exception(exc)
            finally:
                del self._running[task]
                self._overdue.discard(task)
            return OK
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
