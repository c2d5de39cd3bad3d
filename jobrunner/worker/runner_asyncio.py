"""asyncio model: async handlers run on the worker's event loop (uvloop), cancelled on timeout.

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


class AsyncioRunner:
    model = "asyncio"

    def __init__(self, concurrency: int, sync_threads: int = 8) -> None:
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(sync_threads, thread_name_prefix="jobrunner-sync")

    async def start(self) -> None:
        return None

    async def run(
        self, job: Job, spec: HandlerSpec, ctx: JobContext, on_start: Callable[[], None]
    ) -> Outcome:
        async with self._slots:
            on_start()
            if not spec.is_async:
                return await _run_sync_in_pool(self._pool, spec, job, ctx)
            ctx.deadline = time.monotonic() + ctx.timeout
            args = (job.payload, ctx) if spec.takes_context else (job.payload,)
            try:
                async with asyncio.timeout(ctx.timeout):
                    await spec.fn(*args)
            except TimeoutError:
                ctx.cancelled.set()
                return outcome_from_exception(
                    TimeoutError(f"cancelled after its {ctx.timeout}s timeout")
                )
            except Exception as exc:
                return outcome_from_exception(exc)
            return OK

    async def stop(self) -> None:
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
