"""Notebook 2: the same worker core with asyncio, thread and process runners, on IO-bound,
CPU-bound and mixed jobs, at several concurrency levels.

One run: ``n`` jobs are laid out in Redis on a list no worker reads, moved to the ready list in
one ``RENAME``, and the worker drains them for at most ``window`` seconds. Measured: jobs
finished per second, each job's run time (from the worker's own log line), and the CPU the
worker's process tree used (cores busy = CPU seconds / wall seconds: the GIL shows as a ceiling
of one core). Jobs not started when the window closes are deleted, the ones in flight finish,
and the next run starts from an idle worker. Prefetch is 0 so a job's run time is its handler's
time, not time spent waiting inside the worker.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

from jobrunner.dev.redis_server import RedisServer
from jobrunner.dev.stack import Stack, wait_for
from jobrunner.job import Job, encode_job, new_job_id
from jobrunner.keys import QueueKeys
from jobrunner.lab.running import lab_stack
from jobrunner.lab.worker_log import LogTail

QUEUE = QueueKeys("default")
PARKED = QUEUE.ready + ":parked"
MODELS = ("asyncio", "thread", "process")
# No prefetch (a job's run time is its handler's); an idle worker polls every 2 ms at most, so a
# run's first job is not held back by the idle back-off.
WORKER_ENV = {"JOBRUNNER_PREFETCH": "0", "JOBRUNNER_IDLE_POLL_MAX": "0.002"}


@dataclass(frozen=True)
class Workload:
    """A job mix: (type, weight, payload) triples."""

    name: str
    kind: str
    mix: tuple[tuple[str, float, dict[str, Any]], ...]

    def draw(self, rng: random.Random, n: int) -> list[tuple[str, dict[str, Any]]]:
        types = [(t, p) for t, _, p in self.mix]
        return rng.choices(types, [w for _, w, _ in self.mix], k=n)


WORKLOADS = {
    "noop": Workload("noop", "nothing: the job system's own cost", (("noop", 1.0, {}),)),
    "email": Workload("email", "IO-bound: waits 50 ms", (("email", 1.0, {"latency": 0.05}),)),
    "cpu_burn": Workload(
        "cpu_burn",
        "CPU-bound, pure Python (holds the GIL)",
        (("cpu_burn", 1.0, {"iterations": 200_000}),),
    ),
    "resize_image": Workload(
        "resize_image", "CPU-bound, mostly in C (Pillow)", (("resize_image", 1.0, {"size": 384}),)
    ),
    "mixed": Workload(
        "mixed",
        "half email, a quarter each CPU type",
        (
            ("email", 0.5, {"latency": 0.05}),
            ("cpu_burn", 0.25, {"iterations": 200_000}),
            ("resize_image", 0.25, {"size": 384}),
        ),
    ),
}


def service_seconds(workload: Workload, tries: int = 3) -> float:
    """Mean seconds one job of the mix takes alone, timed here by calling the handlers (an IO
    wait counts as its latency). Used to size a run, not reported."""
    from jobrunner.lab.handlers import demo

    total = 0.0
    for job_type, weight, payload in workload.mix:
        if job_type == "noop":
            seconds = 1e-5
        elif job_type == "email":
            seconds = float(payload.get("latency", 0.05))
        else:
            func = {"cpu_burn": demo.cpu_burn, "resize_image": demo.resize_image}[job_type]
            seconds = math.inf
            for _ in range(tries):
                started = time.perf_counter()
                func(payload)
                seconds = min(seconds, time.perf_counter() - started)
        total += weight * seconds
    return total / sum(w for _, w, _ in workload.mix)


def jobs_for(level: int, seconds_per_job: float, window: float, cap: int) -> int:
    """Enough jobs that ``level`` slots cannot finish them within ``window`` (with a margin)."""
    most = level / max(seconds_per_job, 1e-4) * window
    return int(min(cap, max(2 * level + 10, math.ceil(most * 1.5))))


def park(client: redis.Redis, workload: Workload, n: int, rng: random.Random) -> list[str]:
    """Write ``n`` jobs as enqueue writes them, onto a list no worker reads."""
    ids = []
    with client.pipeline(transaction=False) as pipe:
        for job_type, payload in workload.draw(rng, n):
            job = Job(id=new_job_id(), type=job_type, payload=payload)
            pipe.hset(QUEUE.job(job.id), mapping={"d": encode_job(job), "mr": 0, "a": 0,
                                                  "s": "ready"})  # fmt: skip
            pipe.lpush(PARKED, job.id)
            ids.append(job.id)
        pipe.execute()
    return ids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def processed(client: redis.Redis) -> int:
    return int(client.hget(QUEUE.stats, "processed") or 0)


@dataclass
class Run:
    """One worker under one workload: the numbers a row of the sweep's table holds."""

    jobs_sent: int
    jobs_done: int
    seconds: float
    cpu_seconds: float
    run_ms: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.jobs_done / self.seconds if self.seconds > 0 else 0.0

    def row(self) -> dict[str, float]:
        ms = sorted(self.run_ms)
        return {
            "jobs_sent": self.jobs_sent,
            "jobs_done": self.jobs_done,
            "seconds": round(self.seconds, 4),
            "jobs_per_s": round(self.throughput, 1),
            "cores_busy": round(self.cpu_seconds / self.seconds, 3) if self.seconds else 0.0,
            "run_ms_p50": percentile(ms, 50),
            "run_ms_p99": percentile(ms, 99),
        }


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (NaN when there are none)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def measure(
    stack: Stack, tail: LogTail, workload: Workload, n: int, window: float, rng: random.Random,
    run_times: bool = True,
) -> Run:  # fmt: skip
    """Drain up to ``n`` parked jobs for at most ``window`` seconds with the stack's worker
    (``run_times``: read each job's run time from its log line; off when the worker does not
    log at info level)."""
    client = stack.client
    park(client, workload, n, rng)
    pid = stack.worker_pids()[0]
    tail.read()  # forget lines from before this run
    before = processed(client)
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    client.rename(PARKED, QUEUE.ready)  # idle workers block on the ready list: they wake
    while (done := processed(client) - before) < n and time.monotonic() - started < window:
        time.sleep(0.005)  # the poll period bounds the timing error
    seconds = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    client.delete(QUEUE.ready)  # jobs not started: never run
    wait_for(lambda: client.zcard(QUEUE.reserved) == 0, 120, "jobs in flight to finish")
    finished = processed(client) - before
    lines: list[dict[str, Any]] = []
    if not run_times:
        return Run(n, done, seconds, cpu)

    def logged() -> bool:
        lines.extend(tail.read())
        return len(lines) >= finished

    wait_for(logged, 10, "the worker's log lines", interval=0.05)
    return Run(n, done, seconds, cpu, [float(line["run_ms"]) for line in lines])


def sweep(
    models: Iterable[str] = MODELS,
    levels: Iterable[int] = (1, 2, 4, 8, 16),
    workloads: Iterable[str] = ("email", "cpu_burn", "resize_image", "mixed"),
    window: float = 1.0,
    repeats: int = 2,
    max_processes: int = 8,
    max_jobs: int = 20_000,
    seed: int = 2,
    log: Callable[[str], None] = print,
) -> Any:
    """Every model x level (process levels above ``max_processes`` skipped: each is a Python
    process) x workload x repeat; returns a DataFrame with one row per run."""
    import pandas as pd

    chosen = [WORKLOADS[name] for name in workloads]
    per_job = {w.name: service_seconds(w) for w in chosen}
    rng = random.Random(seed)
    rows = []
    with RedisServer() as server:
        for model in models:
            for level in levels:
                if model == "process" and level > max_processes:
                    continue
                flush = redis.Redis.from_url(server.url)
                flush.flushall()
                flush.close()
                started = time.monotonic()
                with lab_stack(
                    redis_url=server.url, api=False, workers=1, model=model, concurrency=level,
                    worker_metrics=False, env=WORKER_ENV,
                ) as stack:  # fmt: skip
                    tail = LogTail(stack.workers[0].log_path)
                    for repeat in range(repeats):
                        for w in chosen:  # workloads interleaved: drift hits them alike
                            n = jobs_for(level, per_job[w.name], window, max_jobs)
                            run = measure(stack, tail, w, n, window, rng)
                            labels = {"model": model, "concurrency": level,
                                      "workload": w.name, "repeat": repeat}  # fmt: skip
                            rows.append({**labels, **run.row()})
                log(f"{model:>8} x{level:<3} done in {time.monotonic() - started:4.1f}s")
    return pd.DataFrame(rows)


def plot_by_workload(
    frame: Any, y: str, ylabel: str, title: str, log_y: bool = False, ideal: str | None = None
) -> Any:
    """One panel per workload: ``y`` against concurrency, a line per model (mean, range)."""
    from jobrunner.lab.charts import MODEL_COLOURS, grid, mean_with_range

    names = list(dict.fromkeys(frame["workload"]))
    fig, axes = grid(len(names))
    for ax, name in zip(axes, names, strict=True):
        part = frame[frame["workload"] == name]
        mean_with_range(ax, part, "concurrency", y, "model", MODEL_COLOURS)
        if ideal == "cores":
            ax.axhline(psutil.cpu_count() or 1, color="grey", linestyle=":", linewidth=1,
                       label="all cores")  # fmt: skip
        ax.set_xscale("log", base=2)
        levels = sorted(set(part["concurrency"]))
        ax.set_xticks(levels, [str(v) for v in levels])
        if log_y:
            ax.set_yscale("log")
        ax.set_title(f"{name}\n({WORKLOADS[name].kind})", fontsize=9)
        ax.set_xlabel("concurrency (slots in one worker)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig
