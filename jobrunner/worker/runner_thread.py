"""Thread model: handlers run on a pool of N threads; async handlers on a loop per thread.

A thread cannot be interrupted, so the timeout is cooperative: past the deadline the context's
``cancelled`` flag is set, the overrun is recorded and the job retried, and the thread's slot
stays taken until the handler really returns (so the pool never runs more than N at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from jobrunner.job import Job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.invoke import call_sync
from jobrunner.worker.outcome import Outcome, outcome_from_exception


class ThreadRunner:
    model = "thread"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="jobrunner-job")

    async def start(self) -> None:
        return None

    async def run(
        self, job: Job, spec: HandlerSpec, ctx: JobContext, on_start: Callable[[], None]
    ) -> Outcome:
        await self._slots.acquire()
        on_start()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, call_sync, spec, job.payload, ctx)
        # The slot is freed when the thread is, not when we stop waiting for it.
        future.add_done_callback(lambda _: self._slots.release())
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

    async def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
