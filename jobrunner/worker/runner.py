"""The interface the worker core uses to execute jobs; one implementation per concurrency model.

The core owns fetching, leases and acks; a runner only decides *where* a handler runs and how
its timeout is enforced. ``submit`` hands a job over and returns at once with a future of its
``Outcome`` (no task per job unless the model needs one: the asyncio model runs the handler in
one). Each runner bounds its own concurrency, calls ``on_start`` when the handler really
begins, and never fails the future for a handler's failure: that is an ``Outcome`` too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from jobrunner.job import Job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.outcome import Outcome


class Runner(Protocol):
    model: str
    concurrency: int
    capacity: int  # jobs it takes at once; the core submits no more (the rest wait unstarted)

    async def start(self) -> None: ...

    def submit(
        self,
        job: Job,
        spec: HandlerSpec,
        ctx: JobContext,
        on_start: Callable[[], None],
        raw: bytes,
    ) -> asyncio.Future[Outcome]:
        """Start one job; cancelling the future abandons it (shutdown).

        ``raw`` is the job as Redis stored it: the process model hands these bytes to a child
        as they are, rather than encoding the decoded job again.
        """
        ...

    def cancel(self, future: asyncio.Future[Outcome]) -> None:
        """Stop the job behind ``future`` if this model can: its future then ends with
        ``Kind.CANCELLED`` (a job it cannot stop ends with its own outcome)."""
        ...

    async def stop(self) -> None:
        """Release threads and processes, once every future is done or cancelled."""
        ...
