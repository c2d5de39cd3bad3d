"""The main loop of a process-model child: receive batches of jobs, run them, report outcomes.

The child first sends ``"ready"`` once its handlers are imported. Then messages are lists over
a ``multiprocessing`` pipe: in, ``[(job_id, raw_spec, attempt), ...]`` (``None`` asks the child
to exit); out, one outcome per job in the order the jobs came, ``None`` for a success that
returned nothing (the cheapest thing to pickle) else ``(kind, error, delay, result)``. Outcomes
are batched too: sent when the child runs out of work, when 32 are waiting, or by a flusher
thread every few milliseconds, so a job that hangs never holds back the outcomes of jobs that
finished before it. The child does no Redis I/O: the parent holds leases and acks, so killing a
child never strands a job.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from jobrunner.errors import PayloadDecodeError
from jobrunner.job import decode_job
from jobrunner.registry import JobContext, Registry, load_handlers
from jobrunner.worker.invoke import call_handler, serve_on_own_loop
from jobrunner.worker.outcome import Kind, Outcome

FLUSH_EVERY = 32
FLUSH_INTERVAL = 0.005


class _Outbox:
    """Outcomes waiting to be sent; flushed by the main loop or the timer thread."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.items: list[tuple[str, str, float | None, bytes | None] | None] = []
        self.lock = threading.Lock()

    def add(self, outcome: Outcome) -> int:
        with self.lock:
            plain = outcome.ok and outcome.result is None  # the common case: cheapest to pickle
            report = (outcome.kind.value, outcome.error, outcome.delay, outcome.result)
            self.items.append(None if plain else report)
            return len(self.items)

    def flush(self) -> None:
        with self.lock:
            if self.items:
                self.conn.send(self.items)
                self.items = []


async def _run_one(registry: Registry, message: tuple[str, bytes, int], label: str) -> Outcome:
    _job_id, raw, attempt = message
    try:
        job = decode_job(raw)
    except PayloadDecodeError as exc:
        return Outcome(Kind.DEAD, str(exc))
    spec = registry.get(job.type)
    if spec is None:
        return Outcome(Kind.DEAD, f"unknown job type {job.type!r} in child")
    ctx = JobContext(
        job_id=job.id,
        type=job.type,
        attempt=attempt,
        timeout=spec.timeout_for(job),
        worker_id=label,
    )
    return await call_handler(spec, job.payload, ctx)


def child_main(conn: Connection, started: Any, imports: list[str], worker_id: str) -> None:
    # The parent decides when children stop; a Ctrl+C in the terminal must not kill them mid-job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    registry = load_handlers(imports)
    conn.send("ready")  # the parent starts no job's clock before the imports are done
    label = f"{worker_id}/child-{os.getpid()}"
    outbox = _Outbox(conn)
    stop = threading.Event()

    def flush_periodically() -> None:
        while not stop.wait(FLUSH_INTERVAL):
            try:
                outbox.flush()
            except OSError:
                return

    threading.Thread(target=flush_periodically, name="outbox-flusher", daemon=True).start()

    async def serve() -> None:
        # Blocking reads inside a coroutine, on purpose: this loop only ever runs our handlers.
        pending: deque[Any] = deque()
        while True:
            if not pending:
                outbox.flush()
                batch = conn.recv()
                if batch is None:
                    return
                pending.extend(batch)
            message = pending.popleft()
            started.value += 1  # shared memory: tells the parent which job is running
            if outbox.add(await _run_one(registry, message, label)) >= FLUSH_EVERY:
                outbox.flush()

    try:
        serve_on_own_loop(serve)
    except (EOFError, OSError):
        return
    finally:
        stop.set()
