"""Record a py-spy flamegraph of one worker process draining no-op jobs.

``python -m bench.profile_worker --model asyncio --jobs 100000`` pre-fills a private Redis,
starts ``jobrunner worker``, attaches ``py-spy record`` to it until the queue is drained and
writes ``profiles/worker-<model>.svg``
(``--gil`` samples only the thread holding the GIL, which is what explains the thread model).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from rich.progress import Progress

from jobrunner.connection import async_redis
from jobrunner.dev.profiling import record_command
from jobrunner.dev.redis_server import RedisServer
from jobrunner.job import Job, new_job_id
from jobrunner.queue import ReliableQueue


async def prefill(url: str, n: int) -> None:
    client = async_redis(url)
    try:
        queue = ReliableQueue(client, result_ttl=60)
        for start in range(0, n, 10_000):
            jobs = [Job(id=new_job_id(), type="noop") for _ in range(min(10_000, n - start))]
            await queue.enqueue_jobs(jobs)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="asyncio", choices=["asyncio", "thread", "process"])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--gil", action="store_true", help="sample only the GIL holder")
    parser.add_argument("--out", type=Path, default=Path("profiles"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    svg = args.out / f"worker-{args.model}{'-gil' if args.gil else ''}.svg"
    with RedisServer() as server:
        asyncio.run(prefill(server.url, args.jobs))
        worker = subprocess.Popen(
            [sys.executable, "-m", "jobrunner.cli", "worker", "--model", args.model,
             "--redis-url", server.url, "--log-level", "info", "--log-format", "json",
             "--import", "jobrunner.lab.handlers.demo"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        spy = subprocess.Popen(
            record_command(svg, pid=worker.pid, gil=args.gil),  # until interrupted
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(server.url)
        try:
            with Progress() as progress:
                task = progress.add_task(f"draining under py-spy ({args.model})", total=args.jobs)
                while (
                    done := int(client.hget("jr:{default}:stats", "processed") or 0)
                ) < args.jobs:
                    progress.update(task, completed=done)
                    if worker.poll() is not None or spy.poll() is not None:
                        raise SystemExit("the worker or py-spy exited early")
                    time.sleep(0.1)  # a progress display's refresh, not a wait for a condition
                progress.update(task, completed=args.jobs)
        finally:
            client.close()
            spy.send_signal(signal.SIGINT)  # py-spy writes the flamegraph when interrupted
            spy.wait(timeout=60)
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    print(f"wrote {svg} ({svg.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
