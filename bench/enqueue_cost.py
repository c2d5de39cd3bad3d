"""What one enqueue costs, one job at a time, as an application calls it first.

    python -m bench.enqueue_cost [--jobs 20000] [--out results]

Sequential calls on one connection, no worker running: ``SyncClient.enqueue`` and
``Client.enqueue`` (asyncio, one await after another). For each: jobs/s (a rate this machine
moves), and what holds across machines: the client's CPU µs per enqueue (``process_time``),
Redis's CPU µs per enqueue (``INFO cpu``) and Redis commands per enqueue (``INFO commandstats``,
the commands the Lua script runs included). Writes ``results/bench-enqueue-cost.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from rich.console import Console

from bench.progress import bench_progress
from jobrunner.client import Client
from jobrunner.dev.redis_server import RedisServer
from jobrunner.registry import Registry
from jobrunner.sync_client import SyncClient

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = {"to": "ada@example.com", "n": 1}


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def measured(client: redis.Redis, count: int, run: Callable[[], None]) -> dict[str, float]:
    client.flushall()
    client.config_resetstat()
    redis_before, cpu_before, started = redis_cpu(client), time.process_time(), time.perf_counter()
    run()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    redis_used = redis_cpu(client) - redis_before
    stats = client.info("commandstats")
    commands = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",
                                                                     "cmdstat_config"))  # fmt: skip
    return {
        "jobs_per_s": round(count / seconds, 1),
        "client_cpu_us": round(cpu / count * 1e6, 1),
        "redis_cpu_us": round(redis_used / count * 1e6, 1),
        "redis_commands": round(commands / count, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    registry = Registry()  # no handlers: the producer cannot check types, as a bare script
    report: dict[str, Any] = {"jobs": args.jobs, "paths": {}}
    with RedisServer() as server, bench_progress(console) as progress:
        admin = redis.Redis.from_url(server.url)
        task = progress.add_task("enqueueing", total=2 * args.jobs)

        def sync_path() -> None:
            with SyncClient.from_url(server.url, registry=registry) as client:
                for n in range(args.jobs):
                    client.enqueue("email", PAYLOAD)
                    if n % 100 == 99:  # the bar costs CPU too: a hundredth of the calls
                        progress.advance(task, 100)

        async def async_calls() -> None:
            async with Client.from_url(server.url, registry=registry) as client:
                for n in range(args.jobs):
                    await client.enqueue("email", PAYLOAD)
                    if n % 100 == 99:
                        progress.advance(task, 100)

        report["paths"]["SyncClient.enqueue"] = measured(admin, args.jobs, sync_path)
        report["paths"]["Client.enqueue"] = measured(
            admin, args.jobs, lambda: asyncio.run(async_calls())
        )
        admin.close()
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    report.update(commit=head, load_average=os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-enqueue-cost.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print_json(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
