"""Run a load: start the clients for the chosen model, show progress, then wait for the jobs
to finish and collect their finish times (recorded by the workers in each job's hash)."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import time
from typing import Any

import redis
import uvloop
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from jobrunner.errors import JobrunnerError
from jobrunner.keys import QueueKeys
from jobrunner.lab.loadgen.drivers import (
    Plan,
    Samples,
    process_main,
    run_async_clients,
    run_threads,
)
from jobrunner.lab.loadgen.result import LoadResult
from jobrunner.lab.loadgen.spec import LoadSpec

START_MARGIN = 0.05  # seconds between "go" and the first intended request


def run_load(spec: LoadSpec, *, redis_url: str | None = None, progress: bool = True) -> LoadResult:
    """Send the load described by ``spec``; then, given the Redis URL (the queue target's own
    by default), wait for the jobs and measure end-to-end latency."""
    spec.check()
    if spec.target == "queue":
        redis_url = redis_url or spec.url
    bar = _Bar(spec, progress)
    with bar:
        started = time.time()
        samples = _drive(spec, bar)
        sent_done = time.time()
        finished = (
            wait_for_jobs(redis_url, spec.queue, samples, spec.wait_for_completion, bar)
            if redis_url
            else {}
        )
    t0 = min((r[2] for r in samples.requests), default=started)
    return LoadResult(spec, samples, finished, t0=t0, sent_done=sent_done, redis_url=redis_url)


def _drive(spec: LoadSpec, bar: _Bar) -> Samples:
    if spec.model == "process":
        return _drive_processes(spec, bar)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            plan = Plan(spec, time.time() + START_MARGIN)
            if spec.model == "thread":
                box["samples"] = run_threads(spec, plan, bar.advance)
            else:
                box["samples"] = uvloop.run(
                    run_async_clients(spec, plan, plan.numbers(), spec.concurrency, 0, bar.advance)
                )
        except BaseException as exc:
            box["error"] = exc

    # The clients run off the caller's thread so a notebook (whose thread has a running loop)
    # can call this, and the progress bar keeps moving.
    worker = threading.Thread(target=target, name="loadgen", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        bar.refresh()
    if "error" in box:
        raise box["error"]
    samples: Samples = box["samples"]
    return samples


def _drive_processes(spec: LoadSpec, bar: _Bar) -> Samples:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Semaphore(0)
    go = ctx.Event()
    t0 = ctx.Value("d", 0.0, lock=False)
    counts = ctx.Array("q", spec.processes, lock=False)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=process_main, args=(spec, i, ready, go, t0, counts, results),
                    name=f"loadgen-{i}", daemon=True)
        for i in range(spec.processes)
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    try:
        for _ in procs:  # every process imported and connected: then start them together
            while not ready.acquire(timeout=0.1):
                if any(p.exitcode is not None for p in procs):
                    raise LoadError(_first_error(results) or "a load process exited at start")
        t0.value = time.time() + START_MARGIN
        go.set()
        merged = Samples()
        for _ in procs:
            while True:
                try:
                    kind, value = results.get(timeout=0.1)  # also the progress bar's period
                    break
                except queue.Empty:
                    bar.set(sum(counts))
                    if all(p.exitcode is not None for p in procs) and results.empty():
                        raise LoadError("a load process died without a result") from None
            if kind == "error":
                raise LoadError(f"a load process failed:\n{value}")
            merged.extend(value)
        bar.set(sum(counts))
        return merged
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        results.close()


def _first_error(results: Any) -> str | None:
    with contextlib.suppress(queue.Empty):
        kind, value = results.get(timeout=0.5)
        if kind == "error":
            return f"a load process failed:\n{value}"
    return None


class LoadError(JobrunnerError):
    """The load could not be sent (a client process failed)."""


FINISHED_STATES = ("done", "dead")


def wait_for_jobs(
    redis_url: str, queue: str, samples: Samples, timeout: float, bar: _Bar | None = None
) -> dict[str, tuple[str, float | None]]:
    """Job id -> (final state, finish time in seconds) for every acknowledged job, polling
    until all are done or dead or ``timeout`` passes (the rest keep their last state)."""
    keys = QueueKeys(queue)
    pending = [job_id for job_id, _ in samples.jobs]
    out: dict[str, tuple[str, float | None]] = {}
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
    if bar:
        bar.phase("jobs finished", len(pending))
    deadline = time.monotonic() + timeout
    try:
        while True:
            still: list[str] = []
            for start in range(0, len(pending), 2000):
                chunk = pending[start : start + 2000]
                with client.pipeline(transaction=False) as pipe:
                    for job_id in chunk:
                        pipe.hmget(keys.job(job_id), "s", "fu")
                    rows = pipe.execute()
                for job_id, (state, finished_us) in zip(chunk, rows, strict=True):
                    if state in FINISHED_STATES:
                        out[job_id] = (state, int(finished_us) / 1e6 if finished_us else None)
                    else:
                        out[job_id] = (state or "missing", None)
                        still.append(job_id)
            pending = still
            if bar:
                bar.set(len(samples.jobs) - len(pending))
            if not pending or time.monotonic() > deadline:
                return out
            time.sleep(0.1)  # polling the job states; this is the condition's own period
    finally:
        client.close()


class _Bar:
    """A rich progress bar over requests sent, then over jobs finished; silent if disabled."""

    def __init__(self, spec: LoadSpec, enabled: bool) -> None:
        self.enabled = enabled
        self._count = 0
        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled,
        )  # fmt: skip
        label = f"{spec.target} {spec.model} x{spec.concurrency} {spec.loop} loop: requests"
        self._task = self._progress.add_task(label, total=spec.requests)

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, n: int) -> None:
        with self._lock:
            self._count += n

    def refresh(self) -> None:
        self._progress.update(self._task, completed=self._count)

    def set(self, count: int) -> None:
        self._count = count
        self.refresh()

    def phase(self, description: str, total: int) -> None:
        self.refresh()
        self._task = self._progress.add_task(description, total=total)
        self._count = 0
