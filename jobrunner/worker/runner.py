"""The interface the worker core uses to execute jobs; one implementation per concurrency model.

The core owns fetching, leases and acks; a runner only decides *where* a handler runs and how
its timeout is enforced. Each runner bounds its own concurrency, marks ``ctx.started`` (via the
``on_start`` callback) when the handler really begins, and never raises for a handler's failure:
it returns an ``Outcome``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from jobrunner.job import Job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.outcome import Outcome


class Runner(Protocol):
    model: str
    concurrency: int

    async def start(self) -> None: ...

    async def run(
        self, job: Job, spec: HandlerSpec, ctx: JobContext, on_start: Callable[[], None]
    ) -> Outcome:
        """Run one job; cancelling this coroutine abandons the job (shutdown)."""
        ...

    async def stop(self) -> None:
        """Release threads and processes, once every ``run`` has returned or been cancelled."""
        ...
