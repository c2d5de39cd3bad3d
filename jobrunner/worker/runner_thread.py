"""Thread model: handlers run on a pool of N threads, each serving jobs from a loop of its own.

The hand-off, not the handler, is what costs on short jobs: every thread woken for a job
fights the others for the GIL. So a new job wakes an idle thread only when no thread is already
looking for work, and a thread that takes a job wakes one more only if work is left (the
"spinning thread" idea of Go's scheduler): a burst of short jobs is drained by one or two
threads, a burst of blocking jobs fans out to all of them. Finished jobs come back through a
deque, with one event-loop wake-up per burst rather than one per job.

A thread cannot be interrupted, so the timeout is cooperative: a watchdog sets the context's
``cancelled`` flag once the deadline passes and reports the overrun (the job is retried); the
thread stays busy until the handler returns, so the pool never runs more than N at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from jobrunner.job import Job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.tracing import tracer
from jobrunner.worker.invoke import call_handler, serve_on_own_loop
from jobrunner.worker.outcome import Kind, Outcome, outcome_from_exception


@dataclass(eq=False)
class _Work:
    job: Job
    spec: HandlerSpec
    ctx: JobContext
    future: asyncio.Future[Outcome]
    on_start: Callable[[], None]
    # the submitter's context (its attempt's span), with tracing on: the handler's own spans
    # nest under its attempt as on the asyncio model; None when off (no task a job)
    context: contextvars.Context | None = None


class ThreadRunner:
    model = "thread"

    def __init__(self, concurrency: int, watchdog_interval: float = 0.05) -> None:
        self.concurrency = concurrency
        self.capacity = concurrency
        self.watchdog_interval = watchdog_interval
        self._work: deque[_Work] = deque()
        self._cv = threading.Condition(threading.Lock())
        self._idle = 0  # threads waiting on the condition
        self._searching = 0  # threads woken (or between jobs) that will take the next job
        self._closing = False
        self._finished: deque[tuple[_Work, Outcome]] = deque()
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._running: set[_Work] = set()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for i in range(self.concurrency):
            thread = threading.Thread(
                target=self._thread_main, name=f"jobrunner-job-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._watchdog = asyncio.create_task(self._watch_deadlines(), name="thread-watchdog")

    def submit(
        self,
        job: Job,
        spec: HandlerSpec,
        ctx: JobContext,
        on_start: Callable[[], None],
        raw: bytes,
    ) -> asyncio.Future[Outcome]:
        assert self._loop is not None, "start() first"
        context = contextvars.copy_context() if tracer() is not None else None
        work = _Work(job, spec, ctx, self._loop.create_future(), on_start, context)
        # Abandoned (shutdown): a thread that has not picked it up yet will skip it.
        work.future.add_done_callback(lambda f: _cancel_if_abandoned(f, ctx))
        with self._cv:
            self._work.append(work)
            if self._searching == 0 and self._idle:
                self._searching += 1
                self._cv.notify()
        return work.future

    def cancel(self, future: asyncio.Future[Outcome]) -> None:
        """A job not begun ends cancelled at once; a running one has its context's
        ``cancelled`` flag set (``ctx.check()`` raises ``JobCancelled``): a thread cannot be
        interrupted, so a handler that never looks runs to its end."""
        with self._cv:
            waiting = next((w for w in self._work if w.future is future), None)
            running = next((w for w in list(self._running) if w.future is future), None)
        work = waiting or running
        if work is None or future.done():
            return
        work.ctx.cancel("cancelled on request")
        if waiting is not None:
            future.set_result(Outcome(Kind.CANCELLED, "cancelled before it started"))

    def _thread_main(self) -> None:
        serve_on_own_loop(self._serve_jobs)

    async def _serve_jobs(self) -> None:
        # Waiting for the next job blocks this thread, loop and all, on purpose: between jobs
        # the thread's loop has nothing to do (one job at a time per thread).
        while (work := self._next_work()) is not None:
            if work.ctx.is_cancelled():
                continue
            work.on_start()
            self._running.add(work)
            call = call_handler(work.spec, work.job.payload, work.ctx)
            if work.context is None:
                outcome = await call
            else:  # in the attempt's context: the handler's spans are its children
                outcome = await asyncio.get_running_loop().create_task(call, context=work.context)
            self._running.discard(work)
            self._finished.append((work, outcome))
            with self._wake_lock:
                wake = not self._wake_pending
                self._wake_pending = True
            if wake:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._deliver)

    def _next_work(self) -> _Work | None:
        """Take the next job, sleeping while there is none; None once the runner stops."""
        with self._cv:
            self._searching += 1  # between jobs, this thread will take whatever comes next
            while not self._work:
                if self._closing:
                    return None
                self._searching -= 1
                self._idle += 1
                self._cv.wait()
                self._idle -= 1
                # whoever notified us already counted us as searching
            work = self._work.popleft()
            self._searching -= 1
            if self._work and self._searching == 0 and self._idle:
                self._searching += 1
                self._cv.notify()
            return work

    def _deliver(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        while self._finished:
            work, outcome = self._finished.popleft()
            if not work.future.done():
                work.future.set_result(outcome)

    async def _watch_deadlines(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_interval)
            now = time.monotonic()
            for work in list(self._running):
                if work.ctx.deadline and now > work.ctx.deadline and not work.future.done():
                    work.ctx.cancelled.set()
                    work.future.set_result(
                        outcome_from_exception(
                            TimeoutError(
                                f"overran its {work.ctx.timeout}s timeout (thread left to finish)"
                            )
                        )
                    )

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._threads.clear()


def _cancel_if_abandoned(future: asyncio.Future[Outcome], ctx: JobContext) -> None:
    if future.cancelled():
        ctx.cancelled.set()
