"""``make demo``: an embedded Redis, one worker process, a burst of mixed jobs, a live view.

It enqueues a few thousand jobs (no-ops, simulated e-mails, image resizes, CPU burns and a flaky
type that fails half the time), watches the queue drain live in the terminal, then stops the
worker with SIGTERM (a graceful shutdown) and prints a summary. ``REDIS_URL`` uses that Redis
instead of starting one. Results go to ``results/demo-summary.json``, the worker's JSON log
beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobrunner.connection import async_redis
from jobrunner.job import Job, new_job_id
from jobrunner.queue import QueueStats, ReliableQueue
from jobrunner.redis_server import RedisServer, redis_url_from_env

# type: (share of the burst, payload, max_retries)
MIX: dict[str, tuple[float, dict[str, Any], int]] = {
    "noop": (0.55, {}, 3),
    "email": (0.20, {"latency": 0.25, "to": "ada@example.com"}, 3),
    "resize_image": (0.05, {"size": 512}, 3),
    "cpu_burn": (0.05, {"iterations": 300_000}, 3),
    "flaky": (0.15, {"p": 0.5}, 2),
}


def make_jobs(total: int, rng: random.Random) -> list[Job]:
    types = list(MIX)
    weights = [MIX[t][0] for t in types]
    jobs = []
    for job_type in rng.choices(types, weights, k=total):
        _, payload, retries = MIX[job_type]
        jobs.append(Job(id=new_job_id(), type=job_type, payload=payload, max_retries=retries))
    return jobs


def start_worker(
    redis_url: str, log_path: Path, model: str, concurrency: int
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JOBRUNNER_MAINTENANCE_INTERVAL": "0.1"}
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "jobrunner.cli", "worker", "--redis-url", redis_url,
             "--model", model, "--concurrency", str(concurrency), "--log-format", "json"],
            stdout=log, stderr=log, env=env,
        )  # fmt: skip


def render(stats: QueueStats, total: int, rate: float, elapsed: float) -> Table:
    c = stats.counters
    table = Table(title=f"queue 'default' draining — {elapsed:5.1f}s", min_width=60)
    for column in ("ready", "scheduled", "in flight", "done", "retried", "dead", "jobs/s"):
        table.add_column(column, justify="right")
    table.add_row(
        str(stats.ready), str(stats.scheduled), str(stats.reserved),
        f"{c.get('processed', 0)}/{total}", str(c.get("retried", 0)), str(stats.dead),
        f"{rate:,.0f}",
    )  # fmt: skip
    return table


async def drive(redis_url: str, total: int, seed: int, console: Console) -> dict[str, Any]:
    redis = async_redis(redis_url)
    queue = ReliableQueue(redis)
    try:
        jobs = make_jobs(total, random.Random(seed))
        started = time.monotonic()
        await queue.enqueue_jobs(jobs)
        console.print(f"enqueued {total:,} jobs in {time.monotonic() - started:.2f}s")
        progress = Progress(
            TextColumn("drained"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        bar = progress.add_task("drain", total=total)
        history: list[tuple[float, int]] = []
        stats = await queue.stats("default")
        group = Table.grid()
        with Live(group, console=console, refresh_per_second=8, transient=False) as live:
            while True:
                stats = await queue.stats("default")
                finished = stats.counters.get("processed", 0) + stats.dead
                now = time.monotonic()
                history.append((now, stats.counters.get("processed", 0)))
                window = [h for h in history if now - h[0] <= 1.0]
                rate = (window[-1][1] - window[0][1]) / max(1e-9, window[-1][0] - window[0][0])
                progress.update(bar, completed=finished)
                grid = Table.grid()
                grid.add_row(render(stats, total, rate, now - started))
                grid.add_row(progress)
                live.update(grid)
                if finished >= total:
                    break
                await asyncio.sleep(0.125)
        console.print()
        elapsed = time.monotonic() - started
        dead = await queue.dead_jobs("default", limit=3)
        return {
            "jobs": total,
            "processed": stats.counters.get("processed", 0),
            "retried": stats.counters.get("retried", 0),
            "dead": stats.dead,
            "seconds": round(elapsed, 2),
            "jobs_per_second": round(total / elapsed),
            "dead_examples": [
                {"id": r.job.id, "type": r.job.type, "attempts": r.attempts, "error": r.last_error}
                for r in dead
            ],
        }
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--model", default="asyncio", choices=["asyncio", "thread", "process"])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "demo-worker.log"
    with ExitStack() as stack:
        url = redis_url_from_env()
        if url is None:
            server = stack.enter_context(RedisServer())
            url = server.url
            console.print(f"[bold]embedded Redis[/] on {url} (data in {server.data_dir})")
        else:
            console.print(f"[bold]Redis[/] from REDIS_URL: {url}")
        worker = start_worker(url, log_path, args.model, args.concurrency)

        def kill_worker() -> None:  # only if something went wrong before the graceful stop
            if worker.poll() is None:
                worker.kill()

        stack.callback(kill_worker)
        console.print(
            f"[bold]worker[/] pid {worker.pid}: model={args.model} concurrency={args.concurrency}"
        )
        summary = asyncio.run(drive(url, args.jobs, args.seed, console))
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    summary["worker_exit_code"] = code
    summary["worker_summary"] = _last_event(log_path, "worker stopped")
    (args.out / "demo-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(console, summary, args.out, log_path)
    return 0 if code == 0 else 1


def _last_event(log_path: Path, event: str) -> dict[str, Any] | None:
    found = None
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found = record
    return found


def _print_summary(console: Console, summary: dict[str, Any], out: Path, log_path: Path) -> None:
    table = Table(title="demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("jobs", "processed", "retried", "dead", "seconds", "jobs_per_second",
                "worker_exit_code"):  # fmt: skip
        table.add_row(
            key, f"{summary[key]:,}" if isinstance(summary[key], int) else str(summary[key])
        )
    console.print(table)
    for example in summary["dead_examples"]:
        console.print(
            f"  dead: {example['type']} after {example['attempts']} attempts: {example['error']}"
        )
    if summary["worker_summary"]:
        s = summary["worker_summary"]
        console.print(
            "worker shutdown: "
            + ", ".join(
                f"{k}={s.get(k, 0)}" for k in ("completed", "failed", "retried", "dead", "requeued")
            )
        )
    console.print(f"summary: {out / 'demo-summary.json'}   worker log: {log_path}")


if __name__ == "__main__":
    raise SystemExit(main())
