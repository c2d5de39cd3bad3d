"""The main loop of a process-model child: receive a job, run it, send back its outcome.

Messages are small tuples over a ``multiprocessing`` pipe: in ``(job_id, raw_spec, attempt)``
(``None`` asks the child to exit), out ``(job_id, outcome)``. The child does no Redis I/O; the
parent holds the leases and acks, so killing a child never strands a job.
"""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection

from jobrunner.errors import PayloadDecodeError
from jobrunner.job import decode_job
from jobrunner.registry import JobContext, load_handlers
from jobrunner.worker.invoke import call_sync
from jobrunner.worker.outcome import Kind, Outcome


def child_main(conn: Connection, imports: list[str], worker_id: str) -> None:
    # The parent decides when children stop; a Ctrl+C in the terminal must not kill them mid-job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    registry = load_handlers(imports)
    label = f"{worker_id}/child-{os.getpid()}"
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, raw, attempt = message
        try:
            job = decode_job(raw)
        except PayloadDecodeError as exc:
            conn.send((job_id, Outcome(Kind.DEAD, str(exc))))
            continue
        spec = registry.get(job.type)
        if spec is None:
            conn.send((job_id, Outcome(Kind.DEAD, f"unknown job type {job.type!r} in child")))
            continue
        ctx = JobContext(
            job_id=job.id, type=job.type, attempt=attempt, timeout=job.timeout, worker_id=label
        )
        conn.send((job_id, call_sync(spec, job.payload, ctx)))
