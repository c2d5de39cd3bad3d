"""jobrunner against the established Python job queues: same machine, same Redis, one run.

    python -m bench.compare_queues [--jobs N] [--repeats R] [--quick] [--only rq,huey]
                                   [--handler noop|io] [--out DIR]

``--handler io`` gives every library's task the same work, one Redis round trip (INCR), instead
of nothing; its report goes to ``compare-queues-io.{json,md,png}``.

For each library of ``bench/competitors/`` that is installed (``pip install 'jobrunner[compare]'``;
one that is not, or that fails to import, is skipped with the reason printed), and R times with
the libraries interleaved (the order rotates every repeat):

1. a private redis-server on a free port (never the shared one on 6379) is flushed;
2. N no-op jobs are enqueued with the library's own client, in a fresh process, through its
   fastest documented path (a bulk call where the library has one); only the enqueue calls are
   timed, not the import or the connection: **enqueue jobs/s**;
3. the keys holding the waiting jobs are renamed away (held back, as bench/test_drain.py does),
   ONE worker process of the library is started with its default settings, and once it says it
   is ready (its own ready log line, a documented start-up hook, or for jobrunner its first
   heartbeat) the keys are put back. Completion is read from the library's own state where it
   keeps some (a counter, a registry, its set of unfinished jobs, the stream's acknowledgements)
   or else from a counter the no-op task increments; the drain is timed from the first poll that
   sees a job completed to the poll that sees all N (polled every 5 ms), so neither the worker's
   start-up nor its idle-poll delay is counted: **drain jobs/s**;
4. the worker's process group is stopped (SIGTERM, then SIGKILL if it lingers) and the jobs
   completed are counted once more.

Every rate is reported as the median with worst..best, and as a ratio to jobrunner's rate in the
same repeat: the machine is small and shared, and ratios within a repeat are what is comparable.
Writes ``compare-queues.json`` (with the machine, versions and exact command), ``.md`` and
``.png`` into ``--out`` (default ``results/``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.competitors import BY_KEY, HANDLER_ENV, IO_KEY, SPECS, URL_ENV, Spec, io_mode
from bench.progress import bench_progress
from jobrunner.dev.redis_server import RedisServer
from jobrunner.lab.loadgen.result import source_commit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JOBS = 10_000
QUICK_JOBS = 1_000
DEFAULT_REPEATS = 3
POLL = 0.005  # the drain's timing resolution
READY_POLL = 0.02
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
STALL_TIMEOUT = 30.0  # no job completed for this long: the drain is abandoned
HELD_SUFFIX = ":bench-held"
BASELINE = "jobrunner"

CAVEATS = (
    "Concurrency is each library's default and differs widely: jobrunner runs 100 jobs at once "
    "on asyncio, taskiq up to 100, arq and SAQ 10, Dramatiq 8 threads, Huey 1 thread, Celery solo "
    "1 and prefork 2 child processes, and RQ forks a work horse per job (its SimpleWorker, which "
    "does not fork, is a documented alternative). For no-op jobs this mostly measures each "
    "library's per-job overhead and round trips, not how it scales with slow jobs.",
    "Dramatiq, Huey and Celery keep no completion state by default, so their no-op task INCRs a "
    "Redis counter: one round trip per job that the others do not pay (jobrunner, RQ, arq, SAQ "
    "and taskiq are counted from state they keep anyway).",
    "Enqueue: jobrunner and RQ have bulk paths (pipelined batches of 1000); arq, SAQ and taskiq "
    "have none, and are driven 100 calls at a time with asyncio.gather; Dramatiq, Huey and Celery "
    "are called once per job, as documented.",
    "Delivery guarantees differ, and so does the work they cost: jobrunner holds a lease on each "
    "job until it is acknowledged; Huey pops a job off its list and Celery acknowledges it before "
    "running it (acks_late is off by default), so a killed worker loses those.",
    "Per-job logging at the default level differs (see the last column of the table above): "
    "jobrunner, RQ, arq, Huey and taskiq write lines per job to their output, the others none.",
    "arq polls its queue every 0.5 s (poll_delay) and reads at most 100 job ids per poll at its "
    "defaults, which caps it near 200 jobs/s; a shorter poll_delay would raise that.",
    "taskiq's stream broker keeps its consumer group inside the stream, so its jobs could not be "
    "held back while the worker started; like the others it is timed from its first completed "
    "job, so its start-up is not counted either.",
    "The drain is timed from the first poll that sees a job completed: a worker's latency to pick "
    "up the first job (arq's polling, Dramatiq's back-off when idle) is not counted, only its "
    "steady rate. jobrunner's drain of N jobs takes a fraction of a second, so its 5 ms polling "
    "resolution is a few per cent of its rate.",
)

IO_CAVEAT = (
    "With --handler io every task does the same work, one Redis INCR: jobrunner's "
    "`redis_incr_async` (an `async def` on redis-py's asyncio client), RQ's, arq's, SAQ's and "
    "taskiq's task an INCR of bench:io, and Dramatiq's, Huey's and Celery's the INCR of their "
    "completion counter, which their no-op task does anyway; the harness checks the count."
)

SKIP_HINTS = {
    "arq": "arq's releases require redis-py < 6, which would downgrade the redis-py that jobrunner "
    "installs, so it is not in the compare extra; `pip install --no-deps arq` to measure it anyway",
}


# ----------------------------------------------------------------------------- processes


class WorkerProcess:
    """A worker in its own session (process group), with its output in a file."""

    live: set[WorkerProcess] = set()

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.process.pid
        WorkerProcess.live.add(self)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def exited(self) -> int | None:
        return self.process.poll()

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the worker (its own shutdown stops its children), then SIGKILL the group."""
        code: int | None = None
        try:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            deadline = time.monotonic() + 5.0
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)  # children finishing their own shutdown
        finally:
            if self._group_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pgid, signal.SIGKILL)
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self._log.close()
            WorkerProcess.live.discard(self)
        return code

    @classmethod
    def kill_all(cls) -> None:
        for worker in list(cls.live):
            worker.stop(timeout=2.0)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ----------------------------------------------------------------------------- results


@dataclass
class Run:
    key: str
    repeat: int
    order: int
    jobs: int
    enqueue_seconds: float | None = None
    enqueue_rate: float | None = None
    queued: int | None = None
    held_back: bool = False
    startup_seconds: float | None = None
    first_done_seconds: float | None = None  # from release (or ready) to the first completion
    drain_seconds: float | None = None
    drain_jobs_timed: int = 0
    drain_rate: float | None = None
    timed_from: str = "first completion"
    completed: int | None = None  # the completion measure when the drain ended
    counted: int | None = None  # counted again after the worker stopped
    io_calls: int | None = None  # with --handler io: INCRs of IO_KEY the tasks made
    exit_code: int | None = None
    output_lines: int | None = None  # what the worker logged (some log a line per job)
    ok: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Summary:
    median: float | None
    worst: float | None
    best: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Summary:
        seen = [v for v in values if v is not None]
        if not seen:
            return cls(None, None, None)
        return cls(statistics.median(seen), min(seen), max(seen))


# ----------------------------------------------------------------------------- harness


def worker_env(module: ModuleType, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env[URL_ENV] = url
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # so the ready line reaches the log file at once
    env.pop("PYTHONWARNINGS", None)
    adjust: Callable[[dict[str, str]], dict[str, str]] | None = getattr(module, "worker_env", None)
    return adjust(env) if adjust else env


def waiting(client: redis.Redis, keys: Sequence[str]) -> int:
    total = 0
    for key in keys:
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "list":
            total += int(client.llen(key))
        elif kind == "zset":
            total += int(client.zcard(key))
        elif kind == "stream":
            total += int(client.xlen(key))
    return total


class Harness:
    def __init__(self, url: str, console: Console, progress: Progress, log_dir: Path) -> None:
        self.url = url
        self.console = console
        self.progress = progress
        self.log_dir = log_dir
        self.client = redis.Redis.from_url(url)

    def close(self) -> None:
        self.client.close()

    def enqueue(self, spec: Spec, run: Run, module: ModuleType) -> bool:
        env = worker_env(module, self.url)
        command = [sys.executable, "-m", "bench.competitors", "enqueue", spec.module, str(run.jobs)]
        task = self.progress.add_task(f"{spec.label}: enqueue {run.jobs:,}", total=None)
        try:
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
            )
        finally:
            self.progress.remove_task(task)
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            run.notes.append(f"enqueue failed (exit {done.returncode}): {tail}")
            return False
        report = json.loads(done.stdout.strip().splitlines()[-1])
        run.enqueue_seconds = float(report["seconds"])
        run.enqueue_rate = run.jobs / run.enqueue_seconds if run.enqueue_seconds > 0 else None
        queued: Callable[[redis.Redis], int] | None = getattr(module, "queued", None)
        run.queued = queued(self.client) if queued else waiting(self.client, module.HELD_KEYS)
        if module.HELD_KEYS and run.queued != run.jobs:
            run.notes.append(f"enqueue left {run.queued:,} jobs waiting, not {run.jobs:,}")
            return False
        return True

    def wait_ready(self, spec: Spec, run: Run, module: ModuleType, worker: WorkerProcess) -> bool:
        spawned = time.perf_counter()
        while True:
            if module.ready(self.client, worker.output()):
                run.startup_seconds = time.perf_counter() - spawned
                return True
            code = worker.exited()
            if code is not None:
                run.notes.append(f"worker exited with {code} before it was ready")
                return False
            if time.perf_counter() - spawned > READY_TIMEOUT:
                run.notes.append(f"worker not ready after {READY_TIMEOUT:.0f}s")
                return False
            time.sleep(READY_POLL)

    def drain(self, spec: Spec, run: Run, module: ModuleType, worker: WorkerProcess) -> None:
        n = run.jobs
        task = self.progress.add_task(f"{spec.label}: drain", total=n)
        try:
            released = time.perf_counter()
            first: tuple[float, int] | None = None
            last_change, last_count = released, -1
            while True:
                count = int(module.done(self.client, n))
                now = time.perf_counter()
                if count != last_count:
                    last_change, last_count = now, count
                    self.progress.update(task, completed=count)
                if first is None and count > 0:
                    first = (now, count)
                    run.first_done_seconds = now - released
                if count >= n:
                    break
                if worker.exited() is not None:
                    run.notes.append(f"worker exited with {worker.exited()} at {count:,} of {n:,}")
                    run.completed = count
                    return
                if now - last_change > STALL_TIMEOUT:
                    run.notes.append(f"stalled at {count:,} of {n:,} for {STALL_TIMEOUT:.0f}s")
                    run.completed = count
                    return
                time.sleep(POLL)
        finally:
            self.progress.remove_task(task)
        run.completed = count
        assert first is not None
        first_at, first_count = first
        if first_count < n and now > first_at:
            run.drain_jobs_timed = n - first_count
            run.drain_seconds = now - first_at
        elif run.held_back and now > released:
            # Everything completed within one poll: fall back to timing from the release.
            run.timed_from = "release"
            run.drain_jobs_timed = n
            run.drain_seconds = now - released
            run.notes.append("all jobs done within one poll: timed from the release")
        else:
            run.notes.append("all jobs done within one poll: no rate")
            return
        run.drain_rate = run.drain_jobs_timed / run.drain_seconds

    def run(self, spec: Spec, module: ModuleType, repeat: int, order: int, jobs: int) -> Run:
        run = Run(key=spec.key, repeat=repeat, order=order, jobs=jobs)
        self.client.flushall()
        if not self.enqueue(spec, run, module):
            return run
        held = [key for key in module.HELD_KEYS if self.client.exists(key)]
        for key in held:
            self.client.rename(key, key + HELD_SUFFIX)
        run.held_back = bool(held)
        log_path = self.log_dir / f"{spec.key}-{repeat}.log"
        worker = WorkerProcess(
            module.worker_command(spec.variant), worker_env(module, self.url), log_path
        )
        try:
            ready_task = self.progress.add_task(f"{spec.label}: worker starting", total=None)
            try:
                is_ready = self.wait_ready(spec, run, module, worker)
            finally:
                self.progress.remove_task(ready_task)
            if is_ready:
                if held:
                    with self.client.pipeline(transaction=True) as pipe:
                        for key in held:
                            pipe.rename(key + HELD_SUFFIX, key)
                        pipe.execute()  # an idle worker blocked on the list wakes
                else:
                    run.timed_from = "first completion (jobs not held back)"
                self.drain(spec, run, module, worker)
        finally:
            run.exit_code = worker.stop()
            run.output_lines = len(worker.output().splitlines())
        counted: Callable[[redis.Redis], int] | None = getattr(module, "counted", None)
        run.counted = counted(self.client) if counted else int(module.done(self.client, jobs))
        if io_mode():
            run.io_calls = int(self.client.get(IO_KEY) or 0)
        if run.counted != jobs:
            run.notes.append(f"counted {run.counted:,} completed jobs after the stop, not {jobs:,}")
        if run.exit_code != 0:
            run.notes.append(f"worker exit code {run.exit_code}")
            tail = worker.output().strip().splitlines()[-3:]
            if tail and run.drain_rate is None:
                run.notes.append("worker said: " + " | ".join(line[:160] for line in tail))
        run.ok = run.drain_rate is not None and run.completed == jobs and run.counted == jobs
        return run


# ----------------------------------------------------------------------------- report


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def unmet_requirements(distribution: str) -> list[str]:
    """Requirements of an installed library that the installed packages do not meet."""
    from packaging.requirements import InvalidRequirement, Requirement

    unmet = []
    for text in importlib.metadata.requires(distribution) or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = package_version(req.name)
        met = have is None or req.specifier.contains(have, prereleases=True)
        if not met:
            unmet.append(f"{req.name}{req.specifier} (installed: {have})")
    return unmet


def machine_info(redis_version: str, specs: Sequence[Spec]) -> dict[str, Any]:
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    names = ["jobrunner", "redis", "hiredis", *sorted({s.distribution for s in specs})]
    names += ["dramatiq", "kombu", "taskiq"]  # what the libraries above run on
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity) if affinity is not None else None,
        "load_average_at_start": list(load) if load else None,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis_server": redis_version,
        "commit": source_commit(),
        "packages": {name: package_version(name) for name in dict.fromkeys(names)},
    }


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.995 else f"{value:.2g}x"  # 0.0011x, not 0.00x


def cell(text: object) -> str:
    """Text for a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def fmt_summary(s: Summary, fmt: Callable[[float | None], str]) -> str:
    if s.median is None:
        return "-"
    return f"{fmt(s.median)} ({fmt(s.worst)}..{fmt(s.best)})"


def per_repeat(runs: list[Run], values: list[float | None]) -> dict[str, float | None]:
    return {str(run.repeat): value for run, value in zip(runs, values, strict=True)}


def summarise(runs: list[Run], specs: Sequence[Spec], repeats: int) -> dict[str, dict[str, Any]]:
    """Per library: medians with worst..best, and ratios to jobrunner within each repeat."""
    by = {(r.key, r.repeat): r for r in runs}
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        mine = [by[(spec.key, i)] for i in range(repeats) if (spec.key, i) in by]
        if not mine:
            continue
        drain_ratios: list[float | None] = []
        enqueue_ratios: list[float | None] = []
        for run in mine:
            base = by.get((BASELINE, run.repeat))
            drain_ratios.append(
                run.drain_rate / base.drain_rate
                if base and base.drain_rate and run.drain_rate and run.ok and base.ok
                else None
            )
            enqueue_ratios.append(
                run.enqueue_rate / base.enqueue_rate
                if base and base.enqueue_rate and run.enqueue_rate
                else None
            )
        out[spec.key] = {
            "label": spec.label,
            "jobs": sorted({r.jobs for r in mine}),
            "runs_ok": sum(r.ok for r in mine),
            "runs": len(mine),
            "drain_rate": asdict(Summary.of([r.drain_rate if r.ok else None for r in mine])),
            "enqueue_rate": asdict(Summary.of([r.enqueue_rate for r in mine])),
            "drain_ratio_per_repeat": per_repeat(mine, drain_ratios),
            "enqueue_ratio_per_repeat": per_repeat(mine, enqueue_ratios),
            "drain_ratio": asdict(Summary.of(drain_ratios)),
            "enqueue_ratio": asdict(Summary.of(enqueue_ratios)),
            "startup_seconds": asdict(Summary.of([r.startup_seconds for r in mine])),
            "first_done_seconds": asdict(Summary.of([r.first_done_seconds for r in mine])),
            "log_lines_per_job": statistics.median((r.output_lines or 0) / r.jobs for r in mine),
        }
    return out


def summary_of(d: dict[str, Any]) -> Summary:
    return Summary(d["median"], d["worst"], d["best"])


def rich_table(summary: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="drain and enqueue, jobs/s: median (worst..best); ratio to jobrunner")
    for column in ("library", "jobs", "drain jobs/s", "drain vs jobrunner", "enqueue jobs/s",
                   "enqueue vs jobrunner", "ok runs"):  # fmt: skip
        table.add_column(column, justify="left" if column == "library" else "right")
    for s in summary.values():
        table.add_row(
            s["label"],
            ", ".join(f"{j:,}" for j in s["jobs"]),
            fmt_summary(summary_of(s["drain_rate"]), fmt_rate),
            fmt_summary(summary_of(s["drain_ratio"]), fmt_ratio),
            fmt_summary(summary_of(s["enqueue_rate"]), fmt_rate),
            fmt_summary(summary_of(s["enqueue_ratio"]), fmt_ratio),
            f"{s['runs_ok']}/{s['runs']}",
        )
    return table


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    c = report["config"]
    summary = report["summary"]
    lines = [
        "# jobrunner against the established Python job queues",
        "",
        f"Measured {report['date']} by `{report['command']}`: {c['repeats']} repeat(s), the "
        "libraries interleaved (the order rotates every repeat), each against the same private "
        f"redis-server {m['redis_server']} on {m['cpu_count']} CPUs ({m['machine']}, "
        f"{m['python']}). Redis, the worker, the enqueuing client and the harness shared the "
        "machine. Ratios compare a library with jobrunner in the same repeat; the median and "
        "the worst..best of those ratios are shown.",
        "",
        "| library | jobs per run | drain jobs/s, median (worst..best) | drain vs jobrunner "
        "| enqueue jobs/s, median (worst..best) | enqueue vs jobrunner | ok runs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary.values():
        lines.append(
            f"| {s['label']} | {', '.join(f'{j:,}' for j in s['jobs'])} "
            f"| {fmt_summary(summary_of(s['drain_rate']), fmt_rate)} "
            f"| {fmt_summary(summary_of(s['drain_ratio']), fmt_ratio)} "
            f"| {fmt_summary(summary_of(s['enqueue_rate']), fmt_rate)} "
            f"| {fmt_summary(summary_of(s['enqueue_ratio']), fmt_ratio)} "
            f"| {s['runs_ok']}/{s['runs']} |"
        )
    lines += [
        "",
        "## How each library was driven",
        "",
        "| library | version | worker (ONE process, default settings) | enqueue path "
        "| completion detected by | jobs held back while the worker started "
        "| worker log lines per job |",
        "|---|---|---|---|---|---|---:|",
    ]
    for key, lib in report["libraries"].items():
        if key not in summary:
            continue
        lines.append(
            f"| {cell(lib['label'])} | {lib['version']} | {cell(lib['worker'])} "
            f"| {cell(lib['enqueue_path'])} | {cell(lib['completion'])} "
            f"| {'yes' if lib['held_back'] else 'no'} "
            f"| {summary[key]['log_lines_per_job']:.1f} |"
        )
    if report["skipped"]:
        lines += ["", "## Skipped", ""]
        lines += [f"- **{key}**: {why}" for key, why in report["skipped"].items()]
    notes = [
        f"- {lib['label']}: {note}"
        for lib in report["libraries"].values()
        for note in lib.get("notes", [])
    ]
    notes += [
        f"- {BY_KEY[r['key']].label}, repeat {r['repeat'] + 1}: {note}"
        for r in report["runs"]
        for note in r["notes"]
    ]
    if notes:
        lines += ["", "## Notes", "", *notes]
    caveats = (
        [IO_CAVEAT, *CAVEATS[:1], *CAVEATS[2:]]
        if report["config"].get("handler") == "io"
        else CAVEATS
    )
    lines += ["", "## What is not equal between them", "", *(f"- {c}" for c in caveats)]
    lines += [
        "",
        "## Method",
        "",
        "Enqueue: N no-op jobs with the library's own client in a fresh process; the client is "
        "built and connected first, and only the enqueue calls (building each job included) are "
        "timed. Drain: the keys that hold the waiting jobs are renamed away while ONE worker "
        "process starts, and put back once it is ready (its ready log line, a documented "
        "start-up hook, or jobrunner's first heartbeat); the rate counts the jobs completed from "
        f"the first poll that saw one completed to the poll that saw all N (every "
        f"{c['poll_interval_s'] * 1000:.0f} ms), so neither start-up nor a worker's idle-poll "
        "delay is timed. The completed jobs are counted again after the worker has stopped. "
        "Concurrency is each library's default, which differs a lot (see the worker column): "
        "this is what each does out of the box on one process, not a tuned best.",
        "",
    ]
    return "\n".join(lines)


def chart(summary: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    keys = list(summary)[::-1]  # jobrunner on top
    labels = [summary[k]["label"] for k in keys]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.42 * len(keys) + 1.6), sharey=True)
    for ax, metric, name in (
        (axes[0], "drain_rate", "drain, 1 worker process (jobs/s)"),
        (axes[1], "enqueue_rate", "enqueue, 1 client (jobs/s)"),
    ):
        s = [summary_of(summary[k][metric]) for k in keys]
        med = [x.median or 0.0 for x in s]
        lo = [(x.median - x.worst) if x.median is not None else 0.0 for x in s]  # type: ignore[operator]
        hi = [(x.best - x.median) if x.median is not None else 0.0 for x in s]  # type: ignore[operator]
        colors = ["#2b6cb0" if k == BASELINE else "#a0aec0" for k in keys]
        ax.barh(labels, med, xerr=[lo, hi], color=colors, capsize=3, ecolor="#1a202c")
        positive = [v for v in med if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_xscale("log")
        for y, (value, x) in enumerate(zip(med, s, strict=True)):
            if value > 0 and x.best is not None:
                ax.text(x.best * 1.04, y, f" {value:,.0f}", va="center", fontsize=8)
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel(name + (", log scale" if ax.get_xscale() == "log" else ""))
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.18)
    fig.suptitle(title, fontsize=10)
    fig.text(
        0.5, 0.005, "bars: median of the repeats; whiskers: worst..best", ha="center", fontsize=8
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare_queues",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--jobs", type=int, help=f"jobs per run (default {DEFAULT_JOBS:,})")
    parser.add_argument("--repeats", type=int, help=f"default {DEFAULT_REPEATS} (quick: 1)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_JOBS:,} jobs, 1 repeat unless given"
    )
    parser.add_argument(
        "--only",
        help="comma-separated libraries besides jobrunner (default: all): "
        + ", ".join(s.key for s in SPECS if s.key != BASELINE),
    )
    parser.add_argument(
        "--handler", choices=["noop", "io"], default="noop",
        help="what each task does: nothing, or one Redis round trip (INCR) in every library",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("results"), help="output directory")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 20:
        parser.error("--jobs must be at least 20")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.only:
        unknown = [k for k in args.only.split(",") if k and k not in BY_KEY]
        if unknown:
            parser.error(f"unknown libraries: {', '.join(unknown)}")
    return args


def selected(args: argparse.Namespace) -> list[Spec]:
    if not args.only:
        return list(SPECS)
    wanted = {BASELINE, *(k for k in args.only.split(",") if k)}
    return [s for s in SPECS if s.key in wanted]


def jobs_for(spec: Spec, n: int, quick: bool) -> int:
    """N, or N / divisor for a very slow worker (not in --quick mode, where N is small anyway)."""
    return n if quick else max(20, n // spec.jobs_divisor)


def load(specs: Sequence[Spec], console: Console) -> tuple[dict[str, ModuleType], dict[str, str]]:
    """Import each competitor's module (the server URL is already in the environment)."""
    modules: dict[str, ModuleType] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        if importlib.util.find_spec(spec.import_name) is None:
            hint = SKIP_HINTS.get(spec.key, "pip install 'jobrunner[compare]'")
            skipped[spec.key] = f"{spec.distribution} is not installed ({hint})"
            continue
        try:
            modules[spec.key] = importlib.import_module(f"bench.competitors.{spec.module}")
        except Exception as exc:  # any library's import problem skips that library only
            skipped[spec.key] = f"importing it failed: {type(exc).__name__}: {exc}"
    for key, why in skipped.items():
        console.print(f"[yellow]skipping {key}[/]: {why}")
    return modules, skipped


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl+C, so every worker group is stopped on the way out."""
    signals = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in signals}
    atexit.register(WorkerProcess.kill_all)
    try:
        yield
    finally:
        WorkerProcess.kill_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n: int = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    repeats: int = args.repeats or (1 if args.quick else DEFAULT_REPEATS)
    specs = selected(args)
    console = Console(width=None if sys.stdout.isatty() else 160)
    command = shlex.join(
        ["python", "-m", "bench.compare_queues", *(argv if argv is not None else sys.argv[1:])]
    )
    progress = bench_progress(console, transient=True)
    runs: list[Run] = []
    started = time.monotonic()
    with (
        interrupts_as_exceptions(),
        tempfile.TemporaryDirectory(prefix="compare-queues-") as tmp,
        RedisServer() as server,
    ):
        assert server.port != 6379, "never the shared Redis"
        os.environ[URL_ENV] = server.url  # the competitor modules build their clients on import
        os.environ[HANDLER_ENV] = args.handler  # read by the task modules, here and in workers
        modules, skipped = load(specs, console)
        active = [s for s in specs if s.key in modules]
        if BASELINE not in modules:
            console.print(f"[red]jobrunner itself could not be loaded: {skipped.get(BASELINE)}")
            return 2
        console.print(
            f"private redis-server at {server.url}; {n:,} jobs per run, {repeats} repeat(s): "
            + ", ".join(s.key for s in active)
        )
        harness = Harness(server.url, console, progress, Path(tmp))
        redis_version = str(harness.client.info("server").get("redis_version", "unknown"))
        failed_to_enqueue: set[str] = set()
        try:
            with progress:
                overall = progress.add_task("repeats", total=repeats * len(active))
                for repeat in range(repeats):
                    shift = repeat % len(active)
                    order = active[shift:] + active[:shift]
                    for position, spec in enumerate(order):
                        if spec.key in failed_to_enqueue:
                            progress.advance(overall)
                            continue
                        jobs = jobs_for(spec, n, args.quick)
                        run = harness.run(spec, modules[spec.key], repeat, position, jobs)
                        runs.append(run)
                        progress.advance(overall)
                        shown = f"{run.drain_rate:,.0f} jobs/s" if run.drain_rate else "no rate"
                        enq = f"{run.enqueue_rate:,.0f} jobs/s" if run.enqueue_rate else "-"
                        mark = "" if run.ok else " [red]FAILED[/]"
                        progress.console.print(
                            f"repeat {repeat + 1}/{repeats} {spec.label}: drain {shown} "
                            f"({jobs:,} jobs), enqueue {enq}{mark}"
                            + (f" [dim]{'; '.join(run.notes)}[/]" if run.notes else "")
                        )
                        if run.enqueue_rate is None:
                            failed_to_enqueue.add(spec.key)
                            skipped[spec.key] = "; ".join(run.notes) or "enqueue failed"
        finally:
            harness.close()

    summary = summarise(runs, active, repeats)
    console.print(rich_table(summary))
    libraries: dict[str, dict[str, Any]] = {}
    for spec in active:
        module = modules[spec.key]
        notes = [f"its requirement {u} is not met" for u in unmet_requirements(spec.distribution)]
        if jobs_for(spec, n, args.quick) != n:
            notes.append(f"very slow: {jobs_for(spec, n, args.quick):,} jobs per run, not {n:,}")
        if not module.HELD_KEYS:
            notes.append(
                "jobs not held back while the worker started (see the module); the drain is "
                "still timed from its first completed job"
            )
        libraries[spec.key] = {
            "label": spec.label,
            "distribution": spec.distribution,
            "version": package_version(spec.distribution),
            "module": f"bench.competitors.{spec.module}",
            "worker": (
                module.WORKER[spec.variant] if isinstance(module.WORKER, dict) else module.WORKER
            ),
            "worker_command": shlex.join(module.worker_command(spec.variant)),
            "enqueue_path": module.ENQUEUE_PATH,
            "completion": module.COMPLETION,
            "held_back": bool(module.HELD_KEYS),
            "notes": notes,
        }
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "argv": [
            sys.executable,
            "-m",
            "bench.compare_queues",
            *(argv if argv is not None else sys.argv[1:]),
        ],
        "machine": machine_info(redis_version, active),
        "config": {
            "jobs": n,
            "repeats": repeats,
            "quick": args.quick,
            "handler": args.handler,
            "poll_interval_s": POLL,
            "redis_url": server.url,
            "baseline": BASELINE,
            "order_per_repeat": [
                [s.key for s in active[r % len(active) :] + active[: r % len(active)]]
                for r in range(repeats)
            ],
            "wall_seconds": round(time.monotonic() - started, 1),
        },
        "libraries": libraries,
        "skipped": skipped,
        "summary": summary,
        "runs": [asdict(r) for r in runs],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "compare-queues" if args.handler == "noop" else f"compare-queues-{args.handler}"
    json_path = args.out / f"{stem}.json"
    md_path = args.out / f"{stem}.md"
    png_path = args.out / f"{stem}.png"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(report), encoding="utf-8")
    chart(
        summary,
        png_path,
        f"One worker process per library, {n:,} no-op jobs, {repeats} repeat(s), "
        f"{report['machine']['cpu_count']} CPUs, redis-server {redis_version}",
    )
    console.print(f"wrote {json_path}, {md_path} and {png_path}")
    bad = [r for r in runs if not r.ok]
    if bad:
        console.print(f"[red]{len(bad)} run(s) did not complete cleanly[/]")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every worker group and the server were stopped on the way out
        print("interrupted: no results written", file=sys.stderr)
        sys.exit(130)
