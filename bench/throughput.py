"""The headline throughput figures, each measured in one run on one machine.

    python -m bench.throughput [--jobs N] [--quick] [--out results/]

Against a private redis-server (never the one on 6379), flushed between scenarios:

* enqueue: ``enqueue_jobs`` of N no-op jobs from one client in chunks of 1000, and N/10
  sequential ``await queue.enqueue(...)`` calls. Building the ``Job`` objects is not timed.
* drain: N no-op jobs are enqueued while no worker runs, and their ready list is parked under
  another key; then worker processes are started (``python -m jobrunner.cli worker``, default
  settings): one for each model, and two for asyncio. Once every worker has sent its first
  heartbeat the list is put back, and the rate is timed from the first poll that sees jobs
  processed to the poll at which the queue's ``processed`` counter reaches N (polled every
  10 ms), so process start-up is not counted and two workers start on equal terms. Workers are
  then stopped with SIGTERM and must exit with code 0.

The figures go to the terminal and to ``bench-throughput.json`` and ``bench-throughput.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from bench.progress import bench_progress
from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer
from jobrunner.job import Job, new_job_id
from jobrunner.lab.loadgen.result import git_output
from jobrunner.queue import ReliableQueue

T = TypeVar("T")

QUEUE = "default"
CHUNK = 1000
POLL = 0.01
STOP_TIMEOUT = 60.0
LIVE_TIMEOUT = 60.0
DEFAULT_JOBS = 200_000  # long enough that the fastest drain takes seconds, not a blink
QUICK_JOBS = 5_000

DRAIN_SCENARIOS: tuple[tuple[str, str, int], ...] = (
    ("asyncio", "asyncio", 1),
    ("thread", "thread", 1),
    ("process", "process", 1),
    ("asyncio_2proc", "asyncio", 2),
)

# The goals of the issue, next to the figures they apply to.
GOAL_DRAIN_ASYNCIO = 10_000.0
GOAL_DRAIN_2PROC = 16_000.0
GOAL_ENQUEUE_MANY = 50_000.0
GOAL_ENQUEUE_ONE = 5_000.0
GOAL_MODEL_RATIO = 0.5  # thread and process within 2x of asyncio


@dataclass
class EnqueueResult:
    name: str
    jobs: int
    seconds: float
    rate: float
    verified: bool


@dataclass
class DrainResult:
    name: str
    model: str
    workers: int
    jobs: int
    measured_jobs: int = 0
    seconds: float = 0.0
    rate: float | None = None
    startup_seconds: float | None = None
    exit_codes: list[int | None] = field(default_factory=list)
    worker_info: list[dict[str, str]] = field(default_factory=list)
    final_stats: dict[str, int] = field(default_factory=dict)
    worker_output: list[str] = field(default_factory=list)
    ok: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Figure:
    label: str
    value: float | None
    unit: str
    goal: str
    met: bool | None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where uvloop exists (not on Windows), else asyncio's default one."""
    if sys.platform != "win32":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def noop_jobs(count: int, start: int = 0) -> list[Job]:
    return [Job(id=new_job_id(), type="noop", payload={"seq": start + i}) for i in range(count)]


def worker_env() -> dict[str, str]:
    """This environment without jobrunner settings, so workers run with the defaults."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("JOBRUNNER_") and key != "REDIS_URL"
    }


def parked_key(ready: str) -> str:
    """Where the ready list waits while the workers start (same hash tag as the queue)."""
    return f"{ready}:parked"


def log_event(line: str) -> str:
    """The event of a worker's JSON log line ("<level>: <event>"), or the line itself."""
    try:
        record = json.loads(line.split(": ", 1)[1])
        return f"{record['level']}: {record['event']}"
    except (IndexError, ValueError, KeyError, TypeError):
        return line[:80]


def _is_routine(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("level") in ("debug", "info")


class Bench:
    """The client side of every scenario: one event loop, one Redis client, one queue."""

    def __init__(
        self, url: str, console: Console, progress: Progress, log_level: str = "info"
    ) -> None:
        self.url = url
        self.log_level = log_level
        self.console = console
        self.progress = progress
        self.loop = new_event_loop()
        self.redis = async_redis(url)
        self.queue = ReliableQueue(self.redis)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        try:
            self.run(self.redis.aclose())
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    # ---------------------------------------------------------------- helpers

    def flush(self) -> None:
        self.run(self.redis.flushall())

    def counters(self) -> dict[str, int]:
        stats = self.run(self.queue.stats(QUEUE))
        return {
            "ready": stats.ready,
            "scheduled": stats.scheduled,
            "reserved": stats.reserved,
            "dead": stats.dead,
            **stats.counters,
        }

    def redis_version(self) -> str:
        info: dict[str, Any] = self.run(self.redis.info("server"))
        return str(info.get("redis_version", "unknown"))

    async def _enqueue_chunks(self, chunks: Sequence[list[Job]], task: TaskID) -> float:
        started = time.perf_counter()
        for chunk in chunks:
            await self.queue.enqueue_jobs(chunk)
            self.progress.advance(task, len(chunk))
        return time.perf_counter() - started

    def fill(self, count: int, description: str) -> float:
        """Enqueue ``count`` no-op jobs in chunks of CHUNK; returns the seconds it took."""
        chunks = [noop_jobs(min(CHUNK, count - i), i) for i in range(0, count, CHUNK)]
        task = self.progress.add_task(description, total=count)
        seconds = self.run(self._enqueue_chunks(chunks, task))
        self.progress.update(task, completed=count)
        return seconds

    def warm_up(self) -> None:
        """Open the connection and load the scripts once, so no timed call pays for it."""
        self.fill(CHUNK, "warm-up")
        self.flush()

    # ---------------------------------------------------------------- enqueue

    def enqueue_many(self, count: int) -> EnqueueResult:
        self.flush()
        seconds = self.fill(count, f"enqueue_many ({count:,} jobs, chunks of {CHUNK})")
        verified = self.counters()["ready"] == count
        return EnqueueResult("enqueue_many", count, seconds, count / seconds, verified)

    async def _enqueue_one_by_one(self, count: int, task: TaskID) -> float:
        started = time.perf_counter()
        for i in range(count):
            await self.queue.enqueue("noop", {"seq": i})
            if i % 100 == 99:
                self.progress.advance(task, 100)
        return time.perf_counter() - started

    def enqueue_one(self, count: int) -> EnqueueResult:
        self.flush()
        task = self.progress.add_task(f"enqueue one at a time ({count:,} jobs)", total=count)
        seconds = self.run(self._enqueue_one_by_one(count, task))
        self.progress.update(task, completed=count)
        verified = self.counters()["ready"] == count
        return EnqueueResult("enqueue_one", count, seconds, count / seconds, verified)

    # ---------------------------------------------------------------- drain

    def spawn_worker(self, model: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "jobrunner.cli", "worker",
            "--model", model,
            "--redis-url", self.url,
            "--log-level", self.log_level, "--log-format", "json",
            "--import", "jobrunner.lab.handlers.demo",
        ]  # fmt: skip
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=worker_env(),
        )

    @staticmethod
    def _exited(result: DrainResult, processes: Sequence[subprocess.Popen[bytes]]) -> bool:
        codes = [p.returncode for p in processes if p.poll() is not None]
        if codes:
            result.notes.append(f"a worker exited early with code {codes[0]}")
        return bool(codes)

    async def _wait_until_live(
        self,
        result: DrainResult,
        processes: Sequence[subprocess.Popen[bytes]],
        spawned_at: float,
    ) -> bool:
        """Poll the worker registry until every worker has sent its first heartbeat."""
        deadline = spawned_at + LIVE_TIMEOUT
        while True:
            live = await self.queue.live_workers(max_age=30.0)
            now = time.perf_counter()
            if len(live) >= result.workers:
                result.worker_info = list(live.values())
                result.startup_seconds = now - spawned_at
                return True
            if self._exited(result, processes):
                return False
            if now > deadline:
                result.notes.append(
                    f"{len(live)} of {result.workers} workers live after {now - spawned_at:.0f}s"
                )
                return False
            await asyncio.sleep(POLL)

    async def _watch_drain(
        self,
        result: DrainResult,
        processes: Sequence[subprocess.Popen[bytes]],
        spawned_at: float,
        task: TaskID,
    ) -> None:
        """Release the parked jobs once every worker is live, then time the drain."""
        keys = self.queue.keys(QUEUE)
        if not await self._wait_until_live(result, processes, spawned_at):
            return
        await self.redis.rename(parked_key(keys.ready), keys.ready)
        n = result.jobs
        deadline = time.perf_counter() + 30.0 + n / 200
        start_at: float | None = None
        start_count = 0
        while True:
            stats = await self.queue.stats(QUEUE)
            now = time.perf_counter()
            processed = stats.counters.get("processed", 0)
            self.progress.update(task, completed=processed)
            if start_at is None and processed:
                start_at, start_count = now, processed
            if processed >= n:
                break
            if now > deadline:
                result.notes.append(f"timed out: {processed:,} of {n:,} processed")
                return
            if self._exited(result, processes):
                return
            await asyncio.sleep(POLL)
        result.measured_jobs = n - start_count
        result.seconds = now - (start_at or now)
        if result.measured_jobs > 0 and result.seconds > 0:
            result.rate = result.measured_jobs / result.seconds
        else:
            result.notes.append(f"all {n:,} jobs done within one poll: no rate measured")

    def stop_workers(
        self,
        processes: Sequence[subprocess.Popen[bytes]],
        logs: Sequence[IO[bytes]],
        output: list[str],
    ) -> list[int | None]:
        """SIGTERM every worker, wait for it, and collect what it logged (warnings and up)."""
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process, log in zip(processes, logs[: len(processes)], strict=True):
            try:
                codes.append(process.wait(timeout=STOP_TIMEOUT))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes.append(None)
            log.seek(0)
            text = log.read().decode(errors="replace").strip()
            # Per-job lines at info level are the workload, not news: keep warnings and up.
            notable = [line for line in text.splitlines() if not _is_routine(line)]
            if notable:
                tail = notable[-20:]
                output += [f"worker {process.pid}: {line}" for line in tail]
                self.console.print(f"[yellow]worker {process.pid} output:[/]")
                self.console.print("\n".join(tail), markup=False, highlight=False, soft_wrap=True)
        return codes

    def drain(self, name: str, model: str, workers: int, n: int) -> DrainResult:
        result = DrainResult(name=name, model=model, workers=workers, jobs=n)
        self.flush()
        self.fill(n, f"{name}: pre-fill {n:,} jobs")
        before = self.counters()
        if before["ready"] != n:
            result.notes.append(f"pre-fill left {before['ready']:,} ready jobs, not {n:,}")
            return result
        # Park the ready list until every worker is live, so that all of them start on equal
        # terms and no worker's start-up is timed; the job hashes stay where they are.
        ready = self.queue.keys(QUEUE).ready
        self.run(self.redis.rename(ready, parked_key(ready)))
        task = self.progress.add_task(f"{name}: drain by {workers} {model} worker(s)", total=n)
        with contextlib.ExitStack() as stack:
            logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(workers)]
            processes: list[subprocess.Popen[bytes]] = []
            try:
                spawned_at = time.perf_counter()
                processes = [self.spawn_worker(model, log) for log in logs]
                self.run(self._watch_drain(result, processes, spawned_at, task))
            finally:
                result.exit_codes = self.stop_workers(processes, logs, result.worker_output)
        result.final_stats = self.counters()
        bad_exit = [code for code in result.exit_codes if code != 0]
        if bad_exit:
            result.notes.append(f"worker exit codes {result.exit_codes} (expected 0)")
        s = result.final_stats
        clean = (
            s.get("processed", 0) == n
            and s["ready"] == s["reserved"] == s["scheduled"] == s["dead"] == 0
            and not s.get("stale", 0)
        )
        if not clean:
            result.notes.append(f"unexpected final queue state: {s}")
        if result.worker_output:
            events = Counter(log_event(line) for line in result.worker_output)
            logged = ", ".join(f"{event!r} x{count}" for event, count in events.items())
            result.notes.append(f"workers logged {logged}")
        result.ok = result.rate is not None and not bad_exit and clean
        return result


# -------------------------------------------------------------------- report


def machine_info(redis_version: str) -> dict[str, Any]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity) if affinity is not None else None,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis_server": redis_version,
        "source": source_revision(),
        "packages": {
            name: version(name) for name in ("jobrunner", "redis", "hiredis", "uvloop", "msgspec")
        },
    }


def source_revision() -> dict[str, Any]:
    """The commit measured, and whether the package had uncommitted changes at the time."""
    changes = git_output("status", "--porcelain", "--", "jobrunner")
    return {"commit": git_output("rev-parse", "HEAD"), "jobrunner_dirty": bool(changes)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None else value >= goal


def figures(enqueues: dict[str, EnqueueResult], drains: dict[str, DrainResult]) -> list[Figure]:
    def rate(name: str) -> float | None:
        return drains[name].rate if name in drains else None

    asyncio_rate = rate("asyncio")
    thread_ratio = ratio(rate("thread"), asyncio_rate)
    process_ratio = ratio(rate("process"), asyncio_rate)
    within = f">= {GOAL_MODEL_RATIO:g}x asyncio (within 2x)"
    return [
        Figure(
            f"enqueue_many, 1 client, chunks of {CHUNK}",
            enqueues["enqueue_many"].rate,
            "jobs/s",
            f">= {GOAL_ENQUEUE_MANY:,.0f}",
            at_least(enqueues["enqueue_many"].rate, GOAL_ENQUEUE_MANY),
        ),
        Figure(
            "enqueue one at a time, 1 client",
            enqueues["enqueue_one"].rate,
            "jobs/s",
            f">= {GOAL_ENQUEUE_ONE:,.0f}",
            at_least(enqueues["enqueue_one"].rate, GOAL_ENQUEUE_ONE),
        ),
        Figure(
            "drain, asyncio, 1 process",
            asyncio_rate,
            "jobs/s",
            f">= {GOAL_DRAIN_ASYNCIO:,.0f}",
            at_least(asyncio_rate, GOAL_DRAIN_ASYNCIO),
        ),
        Figure(
            "drain, thread, 1 process",
            rate("thread"),
            "jobs/s",
            within,
            at_least(thread_ratio, GOAL_MODEL_RATIO),
        ),
        Figure(
            "drain, process, 1 process",
            rate("process"),
            "jobs/s",
            within,
            at_least(process_ratio, GOAL_MODEL_RATIO),
        ),
        Figure(
            "drain, asyncio, 2 processes",
            rate("asyncio_2proc"),
            "jobs/s",
            f">= {GOAL_DRAIN_2PROC:,.0f}",
            at_least(rate("asyncio_2proc"), GOAL_DRAIN_2PROC),
        ),
        Figure(
            "ratio thread / asyncio",
            thread_ratio,
            "x",
            f">= {GOAL_MODEL_RATIO:g}",
            at_least(thread_ratio, GOAL_MODEL_RATIO),
        ),
        Figure(
            "ratio process / asyncio",
            process_ratio,
            "x",
            f">= {GOAL_MODEL_RATIO:g}",
            at_least(process_ratio, GOAL_MODEL_RATIO),
        ),
        Figure(
            "ratio 2 processes / 1 process (asyncio)",
            ratio(rate("asyncio_2proc"), asyncio_rate),
            "x",
            "-",
            None,
        ),
    ]


def fmt_value(figure: Figure) -> str:
    if figure.value is None:
        return "n/a"
    if figure.unit == "x":
        return f"{figure.value:.2f}x"
    return f"{figure.value:,.0f} {figure.unit}"


def fmt_met(met: bool | None) -> str:
    return "-" if met is None else "met" if met else "MISSED"


def rich_table(rows: list[Figure]) -> Table:
    table = Table(title="jobrunner throughput")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_column("status")
    for row in rows:
        status = fmt_met(row.met)
        style = {"met": "green", "MISSED": "red"}.get(status, "")
        table.add_row(
            row.label, fmt_value(row), row.goal, f"[{style}]{status}[/]" if style else "-"
        )
    return table


def drain_table(drains: dict[str, DrainResult]) -> Table:
    table = Table(title="drain runs")
    for column in ("scenario", "jobs timed", "seconds", "start-up s", "exit codes", "notes"):
        table.add_column(column)
    for d in drains.values():
        table.add_row(
            d.name,
            f"{d.measured_jobs:,}",
            f"{d.seconds:.2f}",
            f"{d.startup_seconds:.2f}" if d.startup_seconds is not None else "-",
            ",".join(str(c) for c in d.exit_codes),
            "; ".join(d.notes) or "-",
        )
    return table


def markdown(
    rows: list[Figure],
    drains: dict[str, DrainResult],
    enqueues: dict[str, EnqueueResult],
    report: dict[str, Any],
) -> str:
    m = report["machine"]
    source = m["source"]
    lines = [
        "# jobrunner throughput",
        "",
        f"Measured {report['date']} by `python -m bench.throughput"
        f"{' --quick' if report['config']['quick'] else ''}` "
        f"({report['config']['jobs']:,} jobs per drain), one run on one machine: "
        f"{m['cpu_count']} CPUs ({m['machine']}), {m['python']}, redis-server {m['redis_server']}, "
        f"{m['platform']}. Source: commit `{source['commit']}`"
        f"{' with uncommitted changes in jobrunner/' if source['jobrunner_dirty'] else ''}. "
        "Workers ran with default settings; Redis, the workers and the measuring client shared "
        "the machine.",
        "",
        "| figure | value | goal | status |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {r.label} | {fmt_value(r)} | {r.goal} | {fmt_met(r.met)} |" for r in rows]
    lines += [
        "",
        "| run | jobs | timed jobs | seconds | start-up s | concurrency | worker exit codes "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for e in enqueues.values():
        lines.append(f"| {e.name} | {e.jobs:,} | {e.jobs:,} | {e.seconds:.3f} | - | - | - | - |")
    for d in drains.values():
        startup = f"{d.startup_seconds:.2f}" if d.startup_seconds is not None else "-"
        codes = ", ".join(str(c) for c in d.exit_codes)
        notes = "; ".join(d.notes) or "-"
        concurrency = ", ".join(w.get("concurrency", "?") for w in d.worker_info) or "-"
        lines.append(
            f"| drain {d.name} | {d.jobs:,} | {d.measured_jobs:,} | {d.seconds:.3f} | {startup} "
            f"| {concurrency} | {codes} | {notes} |"
        )
    lines += [
        "",
        "Drain: the jobs were enqueued before the workers started and held back (their ready "
        "list parked under another key) until every worker had sent its first heartbeat; the rate "
        "counts the jobs processed from the first poll that saw one processed until the "
        f"`processed` counter reached the total, polled every {POLL * 1000:.0f} ms. Start-up is "
        "the time from spawning the worker process(es) to the last first heartbeat. Enqueue: "
        "building the `Job` objects is not timed.",
        "",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--jobs", type=int, help=f"jobs per drain (default {DEFAULT_JOBS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_JOBS:,} jobs per drain")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output directory")
    parser.add_argument(
        "--log-level",
        default="info",
        help="the workers' log level; the default (info) logs one JSON line per job, as in use",
    )
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 10:
        parser.error("--jobs must be at least 10")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n: int = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    one_by_one = max(10, n // 10)
    console = Console()
    enqueues: dict[str, EnqueueResult] = {}
    drains: dict[str, DrainResult] = {}
    progress = bench_progress(console)
    redis_version = "unknown"
    with RedisServer() as server:
        assert server.port != 6379, "never the shared Redis"
        console.print(f"private redis-server at {server.url}; {n:,} jobs per drain")
        with progress:
            bench = Bench(server.url, console, progress, args.log_level)
            try:
                redis_version = bench.redis_version()
                bench.warm_up()
                enqueues["enqueue_many"] = bench.enqueue_many(n)
                enqueues["enqueue_one"] = bench.enqueue_one(one_by_one)
                for e in enqueues.values():
                    progress.console.print(f"{e.name}: {e.rate:,.0f} jobs/s ({e.jobs:,} jobs)")
                for name, model, workers in DRAIN_SCENARIOS:
                    d = bench.drain(name, model, workers, n)
                    drains[name] = d
                    shown = f"{d.rate:,.0f} jobs/s" if d.rate is not None else "no rate"
                    progress.console.print(f"drain {name}: {shown} {'; '.join(d.notes)}")
            finally:
                bench.close()

    rows = figures(enqueues, drains)
    console.print(rich_table(rows))
    console.print(drain_table(drains))
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "jobs": n,
            "quick": args.quick,
            "enqueue_one_jobs": one_by_one,
            "enqueue_chunk": CHUNK,
            "poll_interval_s": POLL,
            "worker_command": "python -m jobrunner.cli worker --model M --redis-url URL "
            f"--log-level {args.log_level} --log-format json",
        },
        "figures": [asdict(r) for r in rows],
        "enqueue": {name: asdict(e) for name, e in enqueues.items()},
        "drain": {name: asdict(d) for name, d in drains.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "bench-throughput.json"
    md_path = args.out / "bench-throughput.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(rows, drains, enqueues, report), encoding="utf-8")
    console.print(f"wrote {json_path} and {md_path}")
    failed = [d.name for d in drains.values() if not d.ok]
    failed += [e.name for e in enqueues.values() if not e.verified]
    if failed:
        console.print(f"[red]runs that did not complete cleanly: {', '.join(failed)}[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
