"""Process model: N child processes run handlers; the parent keeps leases, acks and timeouts.

Each child has a short pipeline of jobs (``per_child_prefetch``), sent in batches, so the pipe's
round trip is hidden behind the jobs before it and paid once per batch, not once per job. The
job at the head of a child's pipeline is the one running; when it passes its timeout the parent
SIGKILLs the child, reports a timeout, hands the jobs that had not started back untouched, and
starts a replacement. A child that dies on its own (a job that segfaults or calls ``os._exit``)
is reported as a crash of the job it was running.
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

from jobrunner.job import Job, encode_job
from jobrunner.registry import HandlerSpec, JobContext
from jobrunner.worker.child import child_main
from jobrunner.worker.outcome import Kind, Outcome

_mp = multiprocessing.get_context("spawn")


@dataclass
class _Dispatched:
    job: Job
    ctx: JobContext
    future: asyncio.Future[Outcome]
    on_start: Callable[[], None]
    started_at: float = 0.0

    def begin(self, now: float) -> None:
        self.started_at = now
        self.on_start()


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection
    pipeline: deque[_Dispatched] = field(default_factory=deque)
    outbox: list[tuple[str, bytes, int]] = field(default_factory=list)
    timed_out: bool = False


class ProcessRunner:
    model = "process"

    def __init__(
        self,
        concurrency: int,
        *,
        imports: list[str],
        worker_id: str,
        per_child_prefetch: int = 8,
        watchdog_interval: float = 0.05,
    ) -> None:
        self.concurrency = concurrency
        self.imports = imports
        self.worker_id = worker_id
        self.per_child_prefetch = per_child_prefetch
        self.watchdog_interval = watchdog_interval
        self.children: list[_Child] = []
        self.replaced = 0
        self._slots = asyncio.Semaphore(concurrency * per_child_prefetch)
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
        process = _mp.Process(
            target=child_main,
            args=(child_conn, self.imports, self.worker_id),
            name="jobrunner-child",
            daemon=True,
        )
        process.start()
        child_conn.close()
        return _Child(process=process, conn=parent_conn)

    def _watch(self, child: _Child) -> None:
        self.children.append(child)
        asyncio.get_running_loop().add_reader(child.conn.fileno(), self._on_readable, child)

    async def run(
        self, job: Job, spec: HandlerSpec, ctx: JobContext, on_start: Callable[[], None]
    ) -> Outcome:
        async with self._slots:
            child = min(self.children, key=lambda c: len(c.pipeline))
            entry = _Dispatched(job, ctx, asyncio.get_running_loop().create_future(), on_start)
            child.pipeline.append(entry)
            if len(child.pipeline) == 1:
                entry.begin(time.monotonic())
            if not child.outbox:
                asyncio.get_running_loop().call_soon(self._send, child)
            child.outbox.append((job.id, encode_job(job), ctx.attempt))
            return await entry.future

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
                for job_id, kind, error, delay in child.conn.recv():
                    entry = child.pipeline.popleft()
                    if entry.job.id != job_id:  # pragma: no cover - a protocol bug
                        raise RuntimeError(f"child answered {job_id}, expected {entry.job.id}")
                    if not entry.future.done():
                        entry.future.set_result(Outcome(Kind(kind), error, delay))
            if child.pipeline and not child.pipeline[0].started_at:
                child.pipeline[0].begin(time.monotonic())
        except (EOFError, OSError):
            self._child_gone(child)

    def _child_gone(self, child: _Child) -> None:
        """The child exited or was killed: settle its jobs and start a replacement."""
        if child not in self.children:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(child.conn.fileno())
        self.children.remove(child)
        child.process.join(timeout=1)
        code = child.process.exitcode
        for index, entry in enumerate(child.pipeline):
            if entry.future.done():
                continue
            if index == 0 and child.timed_out:
                result = Outcome(Kind.TIMEOUT, f"killed after its {entry.ctx.timeout}s timeout")
            elif index == 0 and entry.started_at:
                result = Outcome(Kind.CRASHED, f"worker process died (exit code {code})")
            else:
                result = Outcome(Kind.NOT_RUN)
            entry.future.set_result(result)
        child.pipeline.clear()
        child.conn.close()
        if not self._stopping:
            self.replaced += 1
            task = asyncio.create_task(self._replace(), name="process-replace")
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _replace(self) -> None:
        child = await asyncio.get_running_loop().run_in_executor(None, self._spawn)
        if self._stopping:
            _stop_child(child)
        else:
            self._watch(child)

    async def _watch_deadlines(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_interval)
            now = time.monotonic()
            for child in list(self.children):
                if not child.pipeline:
                    continue
                head = child.pipeline[0]
                if head.started_at and now - head.started_at > head.ctx.timeout:
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
            for entry in child.pipeline:
                if not entry.future.done():
                    entry.future.set_result(Outcome(Kind.NOT_RUN))
        children, self.children = self.children, []
        await asyncio.gather(*(loop.run_in_executor(None, _stop_child, c) for c in children))

    def child_pids(self) -> list[int]:
        return [c.process.pid for c in self.children if c.process.pid is not None]


def _stop_child(child: _Child, timeout: float = 5.0) -> None:
    with contextlib.suppress(OSError):
        child.conn.send(None)
    child.process.join(timeout)
    if child.process.is_alive():
        child.process.kill()
        child.process.join()
    child.conn.close()
