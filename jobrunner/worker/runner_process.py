"""Process model: N child processes run handlers; the parent keeps leases, acks and timeouts.

Each child has a short pipeline of jobs (``per_child_prefetch``), sent in batches, so the pipe's
round trip is paid once per batch, not once per job. Outcomes come back in batches too, so the
parent cannot tell from them which job a child is running; instead each child bumps a counter
in shared memory as it starts a job (no syscall). With it the parent knows, at any moment and
after a crash, which job is running, which ones finished unreported and which never started:

* past its timeout, the running job's child is SIGKILLed and replaced, and the job retried;
* a child that dies on its own (segfault, ``os._exit``) is a crash of the job it was running;
  jobs that finished but were not yet reported, and jobs not started, are handed back untouched
  (the former run again: at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from jobrunner.job import Job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.child import child_main
from jobrunner.worker.outcome import OK, Kind, Outcome

_mp = multiprocessing.get_context("spawn")
CHILD_START_TIMEOUT = 60.0


@dataclass(eq=False)
class _Dispatched:
    job: Job
    raw: bytes  # the spec as stored: sent to the child as it is
    ctx: JobContext
    future: asyncio.Future[Outcome]
    on_start: Callable[[], None]
    started_at: float = 0.0
    child: _Child | None = None


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection
    started: Any  # multiprocessing RawValue("q"): jobs this child has begun, written by the child
    received: int = 0  # outcomes the parent has read
    pipeline: deque[_Dispatched] = field(default_factory=deque)
    outbox: list[tuple[str, bytes, int]] = field(default_factory=list)
    timed_out: bool = False
    cancelled: bool = False  # killed to stop the job it was running, on request

    def running_index(self) -> int:
        """Index in ``pipeline`` of the job the child is running now (-1: none)."""
        return min(int(self.started.value) - self.received, len(self.pipeline)) - 1

    def mark_started(self, now: float) -> _Dispatched | None:
        """Stamp every job the child has begun; returns the one running now."""
        running = self.running_index()
        for i in range(running + 1):
            entry = self.pipeline[i]
            if not entry.started_at:
                entry.started_at = now
                entry.on_start()
        return self.pipeline[running] if running >= 0 else None


class ProcessRunner:
    model = "process"

    def __init__(
        self,
        concurrency: int,
        *,
        imports: list[str],
        worker_id: str,
        per_child_prefetch: int = 16,
        watchdog_interval: float = 0.05,
    ) -> None:
        self.concurrency = concurrency
        self.capacity = concurrency * per_child_prefetch  # what the children's pipelines hold
        self.imports = imports
        self.worker_id = worker_id
        self.per_child_prefetch = per_child_prefetch
        self.watchdog_interval = watchdog_interval
        self.children: list[_Child] = []
        self.replaced = 0
        self._backlog: deque[_Dispatched] = deque()  # submitted, waiting for pipeline room
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False
        self._replacing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        spawned = await asyncio.gather(
            *(loop.run_in_executor(None, self._spawn) for _ in range(self.concurrency))
        )
        for child in spawned:
            self._watch(child)
        self._watchdog = asyncio.create_task(self._watch_deadlines(), name="process-watchdog")

    def _spawn(self) -> _Child:
        parent_conn, child_conn = _mp.Pipe()
        started = _mp.RawValue("q", 0)
        process = _mp.Process(
            target=child_main,
            args=(child_conn, started, self.imports, self.worker_id),
            name="jobrunner-child",
            daemon=True,
        )
        process.start()
        child_conn.close()
        child = _Child(process=process, conn=parent_conn, started=started)
        # Wait for its imports, so no job's timeout starts while the child is still booting.
        if not parent_conn.poll(CHILD_START_TIMEOUT) or parent_conn.recv() != "ready":
            _stop_child(child, timeout=0)
            raise RuntimeError(f"child process did not start within {CHILD_START_TIMEOUT}s")
        return child

    def _watch(self, child: _Child) -> None:
        self.children.append(child)
        asyncio.get_running_loop().add_reader(child.conn.fileno(), self._on_readable, child)
        self._dispatch()

    def submit(
        self,
        job: Job,
        spec: HandlerSpec,
        ctx: JobContext,
        on_start: Callable[[], None],
        raw: bytes,
    ) -> asyncio.Future[Outcome]:
        entry = _Dispatched(job, raw, ctx, asyncio.get_running_loop().create_future(), on_start)
        entry.future.add_done_callback(lambda f: self._abandoned(entry, f))
        self._backlog.append(entry)
        self._dispatch()
        return entry.future

    def cancel(self, future: asyncio.Future[Outcome]) -> None:
        """A job still in the backlog ends cancelled; the one a child is running ends with its
        child, which is killed and replaced. One queued in a child's pipeline behind another
        has been sent already: it runs."""
        entry = next((e for e in self._backlog if e.future is future), None)
        if entry is not None:
            self._backlog.remove(entry)
            future.set_result(Outcome(Kind.CANCELLED, "cancelled before it started"))
            return
        for child in list(self.children):
            running = child.mark_started(time.monotonic())
            if running is not None and running.future is future:
                child.cancelled = True
                child.process.kill()
                self._child_gone(child)
                return

    def _dispatch(self) -> None:
        """Move jobs from the backlog into the least busy children's pipelines, while room."""
        loop = asyncio.get_running_loop()
        while self._backlog and self.children:
            child = min(self.children, key=lambda c: len(c.pipeline))
            if len(child.pipeline) >= self.per_child_prefetch:
                return
            entry = self._backlog.popleft()
            if entry.future.done():  # abandoned while it waited
                continue
            entry.child = child
            child.pipeline.append(entry)
            if not child.outbox:
                loop.call_soon(self._send, child)
            child.outbox.append((entry.job.id, entry.raw, entry.ctx.attempt))

    def _abandoned(self, entry: _Dispatched, future: asyncio.Future[Outcome]) -> None:
        """Shutdown cancelled a job: note whether its child had begun it (for the refund)."""
        if future.cancelled() and entry.child is not None and entry.child in self.children:
            entry.child.mark_started(time.monotonic())

    def _send(self, child: _Child) -> None:
        """Send every job queued for ``child`` this loop iteration as one message."""
        batch, child.outbox = child.outbox, []
        if not batch or child not in self.children:
            return
        try:
            child.conn.send(batch)
        except OSError:
            self._child_gone(child)

    def _on_readable(self, child: _Child) -> None:
        try:
            while child.conn.poll():
                for result in child.conn.recv():  # one per job, in the order they were sent
                    entry = child.pipeline.popleft()
                    child.received += 1
                    if not entry.started_at:
                        entry.on_start()
                    if not entry.future.done():
                        entry.future.set_result(
                            OK if result is None else Outcome(Kind(result[0]), *result[1:])
                        )
        except (EOFError, OSError):
            self._child_gone(child)
        self._dispatch()

    def _child_gone(self, child: _Child) -> None:
        """The child exited or was killed: settle its jobs and start a replacement."""
        if child not in self.children:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(child.conn.fileno())
        self.children.remove(child)
        child.process.join(timeout=1)
        code = child.process.exitcode
        running = child.running_index()
        for index, entry in enumerate(child.pipeline):
            if entry.future.done():
                continue
            if index == running and child.cancelled:
                result = Outcome(Kind.CANCELLED, "cancelled while running (its process killed)")
            elif index == running and child.timed_out:
                result = Outcome(Kind.TIMEOUT, f"killed after its {entry.ctx.timeout}s timeout")
            elif index == running:
                result = Outcome(Kind.CRASHED, f"worker process died (exit code {code})")
            else:  # finished but unreported, or never started: run it again
                result = Outcome(Kind.NOT_RUN)
            entry.future.set_result(result)
        child.pipeline.clear()
        if self._stopping:
            child.conn.close()
        else:
            self.replaced += 1
            task = asyncio.create_task(self._replace(child), name="process-replace")
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _replace(self, dead: _Child) -> None:
        try:
            child = await asyncio.get_running_loop().run_in_executor(None, self._spawn)
            if self._stopping:
                _stop_child(child)
            else:
                self._watch(child)
        finally:
            # Closed only now: had its descriptor been freed earlier, the new child's pipe
            # could reuse the number while the event loop still tracks the old one, and the
            # new child's outcomes would never be read.
            dead.conn.close()

    async def _watch_deadlines(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_interval)
            now = time.monotonic()
            for child in list(self.children):
                running = child.mark_started(now)
                if running is not None and now - running.started_at > running.ctx.timeout:
                    child.timed_out = True
                    child.process.kill()
                    self._child_gone(child)

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog:
            self._watchdog.cancel()
        if self._replacing:
            await asyncio.gather(*self._replacing, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for child in list(self.children):
            loop.remove_reader(child.conn.fileno())
            if child.pipeline:  # still busy past the grace period: its jobs are handed back
                child.process.kill()
            for entry in child.pipeline:
                if not entry.future.done():
                    entry.future.set_result(Outcome(Kind.NOT_RUN))
        for entry in self._backlog:
            if not entry.future.done():
                entry.future.set_result(Outcome(Kind.NOT_RUN))
        self._backlog.clear()
        children, self.children = self.children, []
        await asyncio.gather(*(loop.run_in_executor(None, _stop_child, c) for c in children))


def _stop_child(child: _Child, timeout: float = 5.0) -> None:
    with contextlib.suppress(OSError):
        child.conn.send(None)
    child.process.join(timeout)
    if child.process.is_alive():
        child.process.kill()
        child.process.join()
    child.conn.close()
