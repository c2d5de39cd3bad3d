"""``make demo``: the whole stack on an embedded Redis, a burst of mixed jobs, a live view.

It starts Redis, the API and two worker processes (``jobrunner.dev.stack``), posts a few thousand
jobs through ``POST /jobs`` (no-ops, simulated e-mails, image resizes, CPU burns, and a flaky
type that fails half the time: some retry and succeed, some end in the dead-letter queue),
watches the queue drain live in the terminal, adds a worker part-way (watch the rate change),
records a flamegraph of a worker with py-spy while it works, then stops every worker gracefully
and prints a summary. ``REDIS_URL`` uses that Redis instead of starting one.

Written under ``demo-output/`` (ignored by git, so a demo leaves the checkout as it found it):
``demo-summary.json``, ``demo-drain.png`` (depth, in flight and throughput over time),
``demo-worker.svg`` (the flamegraph) and each process's JSON log under ``demo-logs/``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobrunner.dev.redis_server import redis_url_from_env
from jobrunner.dev.stack import Stack
from jobrunner.errors import JobrunnerError
from jobrunner.keys import QueueKeys

# type: (share of the burst, payload, max_retries)
MIX: dict[str, tuple[float, dict[str, Any], int]] = {
    "noop": (0.55, {}, 3),
    "email": (0.20, {"latency": 0.25, "to": "ada@example.com"}, 3),
    "resize_image": (0.05, {"size": 512}, 3),
    "cpu_burn": (0.05, {"iterations": 300_000}, 3),
    "flaky": (0.15, {"p": 0.5}, 2),
}
POST_BATCH = 500


def make_jobs(total: int, rng: random.Random) -> list[dict[str, Any]]:
    """Request bodies for ``POST /jobs``, drawn from MIX."""
    types = list(MIX)
    weights = [MIX[t][0] for t in types]
    jobs = []
    for job_type in rng.choices(types, weights, k=total):
        _, payload, retries = MIX[job_type]
        jobs.append({"type": job_type, "data": payload, "max_retries": retries})
    return jobs


def post_jobs(api_url: str, token: str, jobs: list[dict[str, Any]], progress: Progress) -> float:
    """Send ``jobs`` in batches through the API; returns the seconds it took."""
    task = progress.add_task("enqueued via POST /jobs", total=len(jobs))
    started = time.monotonic()
    for start in range(0, len(jobs), POST_BATCH):
        batch = jobs[start : start + POST_BATCH]
        request = urllib.request.Request(
            f"{api_url}/jobs", data=msgspec.json.encode({"jobs": batch}), method="POST",
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 202:
                raise JobrunnerError(f"POST /jobs answered {response.status}")
        progress.advance(task, len(batch))
    return time.monotonic() - started


class Sampler:
    """Queue depth and counters, once per tick, for the live table and the plot."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.keys = QueueKeys("default")
        self.rows: list[dict[str, float]] = []
        self.started = time.monotonic()

    def sample(self) -> dict[str, float]:
        depth = self.stack.depth()
        counters = self.stack.client.hgetall(self.keys.stats)
        row: dict[str, float] = {
            "t": time.monotonic() - self.started,
            **depth,
            "processed": int(counters.get("processed", 0)),
            "retried": int(counters.get("retried", 0)),
            "workers": len(self.stack.worker_pids()),
        }
        window = [r for r in self.rows if row["t"] - r["t"] <= 1.0] or [row]
        span = row["t"] - window[0]["t"]
        row["rate"] = (row["processed"] - window[0]["processed"]) / span if span > 0 else 0.0
        self.rows.append(row)
        return row


def render(row: dict[str, float], total: int) -> Table:
    table = Table(title=f"queue 'default' draining — {row['t']:5.1f}s", min_width=84)
    columns = ("workers", "ready", "scheduled", "in flight", "done", "retried", "dead", "jobs/s")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        str(int(row["workers"])), str(int(row["ready"])), str(int(row["scheduled"])),
        str(int(row["reserved"])), f"{int(row['processed'])}/{total}", str(int(row["retried"])),
        str(int(row["dead"])), f"{row['rate']:,.0f}",
    )  # fmt: skip
    return table


def watch(stack: Stack, total: int, add_worker_at: float, console: Console) -> Sampler:
    """Live table and bar until every job is done or dead; one more worker at the given share."""
    sampler = Sampler(stack)
    progress = Progress(
        TextColumn("drained"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    bar = progress.add_task("drain", total=total)
    adder: threading.Thread | None = None
    with Live(console=console, refresh_per_second=8) as live:
        while True:
            row = sampler.sample()
            finished = row["processed"] + row["dead"]
            progress.update(bar, completed=finished)
            live.update(Group(render(row, total), progress))
            if adder is None and finished >= add_worker_at * total:
                adder = threading.Thread(target=stack.add_worker, name="add-worker")
                adder.start()  # it waits for the heartbeat; the view keeps moving meanwhile
                console.log(f"adding a worker at {finished:,.0f} of {total:,} jobs")
            if finished >= total:
                break
            time.sleep(0.125)  # the view's refresh period
    console.print()
    if adder is not None:
        adder.join()
    return sampler


def plot(sampler: Sampler, path: Path) -> Path | None:
    """Depth, in flight and throughput over time; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    t = [r["t"] for r in sampler.rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    top.plot(t, [r["ready"] for r in sampler.rows], label="ready")
    top.plot(t, [r["scheduled"] for r in sampler.rows], label="scheduled (retry backoff)")
    top.plot(t, [r["reserved"] for r in sampler.rows], label="in flight")
    top.set_ylabel("jobs")
    top.legend(fontsize=8)
    top.set_title("make demo: the queue draining")
    bottom.plot(t, [r["rate"] for r in sampler.rows], color="tab:green", label="jobs/s (1 s)")
    added = next((r["t"] for r in sampler.rows if r["workers"] > sampler.rows[0]["workers"]), None)
    if added is not None:
        for ax in (top, bottom):
            ax.axvline(added, color="grey", linestyle="--", linewidth=1)
        bottom.annotate("+1 worker", (added, 0), fontsize=8, color="grey")
    bottom.set_ylabel("jobs processed per second")
    bottom.set_xlabel("seconds since the first job was posted")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def start_profile(pid: int, seconds: float, out: Path) -> threading.Thread | None:
    """py-spy on one worker for ``seconds``, in the background; None if py-spy is missing."""
    from jobrunner.dev.profiling import py_spy, record

    try:
        py_spy()
    except JobrunnerError:
        return None
    thread = threading.Thread(
        target=record,
        args=(out,),
        kwargs={"pid": pid, "seconds": seconds, "quiet": True},
        daemon=True,
    )  # quiet: py-spy's sampling notes and lag warnings would tear up the live view
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="asyncio", choices=["asyncio", "thread", "process"])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--add-worker-at", type=float, default=0.4,
                        help="share drained when one more worker starts (>1: never)")  # fmt: skip
    parser.add_argument("--profile-seconds", type=float, default=5.0, help="0: no flamegraph")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--profiles", type=Path, help="where the flamegraph goes (default: --out)")
    args = parser.parse_args(argv)
    args.profiles = args.profiles or args.out
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    url = redis_url_from_env()
    stack = Stack(
        workers=args.workers, model=args.model, concurrency=args.concurrency, redis_url=url,
        log_dir=args.out / "demo-logs", env={"JOBRUNNER_MAINTENANCE_INTERVAL": "0.1"},
    )  # fmt: skip
    console.print("[bold]starting[/] Redis, the API and the workers ...")
    with stack:
        console.print(stack.status())
        console.print(f"dashboard (this link signs you in): {stack.dashboard_url}")
        jobs = make_jobs(args.jobs, random.Random(args.seed))
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console) as progress:  # fmt: skip
            post_seconds = post_jobs(stack.api_url or "", stack.api_token, jobs, progress)
        flamegraph = args.profiles / "demo-worker.svg"
        profiler = None
        if args.profile_seconds > 0:
            args.profiles.mkdir(parents=True, exist_ok=True)
            profiler = start_profile(stack.worker_pids()[0], args.profile_seconds, flamegraph)
        started = time.monotonic()
        sampler = watch(stack, args.jobs, args.add_worker_at, console)
        elapsed = time.monotonic() - started
        dead = stack.client.zrange(QueueKeys("default").dead, 0, 2)
        examples = [_dead_example(stack, str(job_id)) for job_id in dead]
        workers = list(stack.workers)
        exit_codes = []
        for worker in workers:  # graceful: each drains and reports before it exits
            stack.remove_worker(worker.pid)
            exit_codes.append(worker.popen.returncode)
        if profiler is not None:
            profiler.join(timeout=args.profile_seconds + 30)
        last = sampler.sample()
    summary: dict[str, Any] = {
        "jobs": args.jobs,
        "processed": int(last["processed"]),
        "retried": int(last["retried"]),
        "dead": int(last["dead"]),
        "post_seconds": round(post_seconds, 2),
        "drain_seconds": round(elapsed, 2),
        "jobs_per_second": round(args.jobs / elapsed),
        "workers_at_end": len(workers),
        "worker_exit_codes": exit_codes,
        "worker_summaries": [_last_event(w.log_path, "worker stopped") for w in workers],
        "dead_examples": examples,
    }
    (args.out / "demo-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    written = {
        "summary": args.out / "demo-summary.json",
        "plot": plot(sampler, args.out / "demo-drain.png"),
        "flamegraph": flamegraph if profiler is not None and flamegraph.exists() else None,
        "logs": args.out / "demo-logs",
    }
    _print_summary(console, summary, written)
    return 0 if all(code == 0 for code in exit_codes) else 1


def _dead_example(stack: Stack, job_id: str) -> dict[str, Any]:
    fields = stack.client.hgetall(QueueKeys("default").job(job_id))
    spec = json.loads(fields.get("d", "{}"))
    return {"id": job_id, "type": spec.get("type"), "attempts": int(fields.get("a", 0)),
            "error": fields.get("e")}  # fmt: skip


def _last_event(log_path: Path, event: str) -> dict[str, Any] | None:
    found = None
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found = record
    return found


def _print_summary(console: Console, summary: dict[str, Any], written: dict[str, Any]) -> None:
    table = Table(title="demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("jobs", "processed", "retried", "dead", "post_seconds", "drain_seconds",
                "jobs_per_second", "workers_at_end", "worker_exit_codes"):  # fmt: skip
        value = summary[key]
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
    for example in summary["dead_examples"]:
        console.print(
            f"  dead: {example['type']} after {example['attempts']} attempts: {example['error']}"
        )
    totals: dict[str, int] = {}
    for s in filter(None, summary["worker_summaries"]):
        for key in ("completed", "failed", "retried", "dead", "requeued"):
            totals[key] = totals.get(key, 0) + int(s.get(key, 0))
    console.print("workers at shutdown: " + ", ".join(f"{k}={v}" for k, v in totals.items()))
    for label, path in written.items():
        console.print(f"{label:>10}: {path if path else '(not written: missing tool)'}")
    console.print("more: `jobrunner up` runs the stack for you to drive; `make bench` measures it")


if __name__ == "__main__":
    raise SystemExit(main())
