"""What one enqueue costs, as an application calls it, beside Huey and Dramatiq in the same run.

    python -m bench.enqueue_cost [--jobs 20000] [--repeats 3] [--out results]

No worker running; a private redis-server, flushed before each path. Paths:

* ``SyncClient.enqueue`` and ``Client.enqueue`` (asyncio on uvloop, as the API serves): one
  call after another on one client, the path an application calls first;
* the same clients with 64 asyncio tasks / 16 threads calling at once: the auto-pipelining;
* Huey (calling a task: one LPUSH) and Dramatiq (``actor.send()``), one call after another, where
  installed (``pip install 'jobrunner[compare]'``);
* the floor: a bare PING round trip, one after another, through redis-py and through a raw
  socket (no job, no client library): what no enqueue that waits for its reply can beat.

For each: jobs/s (a rate this machine moves), and what holds across machines: the client's CPU
µs per enqueue (``process_time``: every thread of the process, syscalls included), Redis's CPU
µs per enqueue (``INFO cpu``) and Redis commands per enqueue (``INFO commandstats``, the commands
a Lua script runs included). The paths alternate, ``--repeats`` rounds, and the median is kept;
each round's ratio to Huey's rate is computed within the round. Writes
``results/bench-enqueue-cost.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import uvloop
from rich.console import Console

from bench.parked import head_commit
from bench.progress import bench_progress
from jobrunner.client import Client
from jobrunner.dev.redis_server import RedisServer
from jobrunner.registry import Registry
from jobrunner.sync_client import SyncClient

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = {"to": "ada@example.com", "n": 1}
TASKS, THREADS = 64, 16
PEER = "Huey (one call per job)"
FLOOR_CLIENT = "floor: redis-py PING, no job"
FLOOR_RAW = "floor: raw socket PING, no client library"


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def measured(client: redis.Redis, count: int, run: Callable[[], None]) -> dict[str, float]:
    """Run ``run`` (``count`` enqueues) on a flushed server; its rate and costs per job."""
    client.flushall()
    client.config_resetstat()
    redis_before, cpu_before, started = redis_cpu(client), time.process_time(), time.perf_counter()
    run()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    redis_used = redis_cpu(client) - redis_before
    stats = client.info("commandstats")
    ignored = ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config", "cmdstat_flushall")
    commands = sum(v["calls"] for k, v in stats.items() if k not in ignored)
    return {
        "jobs_per_s": count / seconds,
        "client_cpu_us": cpu / count * 1e6,
        "redis_cpu_us": redis_used / count * 1e6,
        "redis_commands": commands / count,
    }


def jobrunner_paths(url: str, jobs: int) -> dict[str, Any]:
    registry = Registry()  # no handlers: the producer cannot check types, as a bare script

    def sync_one_at_a_time() -> None:
        with SyncClient.from_url(url, registry=registry) as client:
            for _ in range(jobs):
                client.enqueue("email", PAYLOAD)

    def sync_threads() -> None:
        with SyncClient.from_url(url, registry=registry) as client:

            def produce(count: int) -> None:
                for _ in range(count):
                    client.enqueue("email", PAYLOAD)

            threads = [threading.Thread(target=produce, args=(jobs // THREADS,))
                       for _ in range(THREADS)]  # fmt: skip
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    async def async_one_at_a_time() -> None:
        async with Client.from_url(url, registry=registry) as client:
            for _ in range(jobs):
                await client.enqueue("email", PAYLOAD)

    async def async_tasks() -> None:
        async with Client.from_url(url, registry=registry) as client:

            async def produce(count: int) -> None:
                for _ in range(count):
                    await client.enqueue("email", PAYLOAD)

            await asyncio.gather(*(produce(jobs // TASKS) for _ in range(TASKS)))

    return {
        "SyncClient.enqueue": sync_one_at_a_time,
        "Client.enqueue": lambda: uvloop.run(async_one_at_a_time()),
        f"SyncClient.enqueue, {THREADS} threads": sync_threads,
        f"Client.enqueue, {TASKS} tasks": lambda: uvloop.run(async_tasks()),
    }


def peer_paths(url: str, jobs: int) -> dict[str, Any]:
    """Huey and Dramatiq, built (and connected) before they are timed; absent when missing."""
    paths: dict[str, Any] = {}
    try:
        from huey import RedisHuey
    except ImportError:
        pass
    else:
        huey = RedisHuey("bench-enqueue", url=url)
        noop = huey.task()(lambda: None)

        def huey_calls() -> None:
            huey.storage.conn.ping()
            for _ in range(jobs):
                noop()

        paths[PEER] = huey_calls
    try:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
    except ImportError:
        pass
    else:
        broker = RedisBroker(url=url)
        dramatiq.set_broker(broker)
        actor = dramatiq.actor(lambda: None, actor_name="noop", broker=broker)

        def dramatiq_sends() -> None:
            for _ in range(jobs):
                actor.send()

        paths["Dramatiq (actor.send)"] = dramatiq_sends
    return paths


def floor_paths(url: str, jobs: int) -> dict[str, Any]:
    """What no enqueue can beat, one call after another: a bare round trip (PING) through
    redis-py's blocking client, and through a raw socket with no client library at all."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379

    def redis_py_pings() -> None:
        client = redis.Redis(host=host, port=port)
        try:
            for _ in range(jobs):
                client.ping()
        finally:
            client.close()

    def raw_pings() -> None:
        with socket.create_connection((host, port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(jobs):
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(64) != b"+PONG\r\n":
                    raise RuntimeError("a PING not answered PONG at once")

    return {FLOOR_CLIENT: redis_py_pings, FLOOR_RAW: raw_pings}


def summarised(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in rounds[0]:
        runs = [r[name] for r in rounds]
        row = {k: round(statistics.median(run[k] for run in runs), 2) for k in runs[0]}
        if PEER in rounds[0]:
            ratios = [r[name]["jobs_per_s"] / r[PEER]["jobs_per_s"] for r in rounds]
            row["rate_ratio_to_huey"] = round(statistics.median(ratios), 3)
        row["jobs_per_s"] = round(row["jobs_per_s"])
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    rounds: list[dict[str, dict[str, float]]] = []
    with RedisServer() as server, bench_progress(console) as progress:
        admin = redis.Redis.from_url(server.url)
        paths = {**jobrunner_paths(server.url, args.jobs), **peer_paths(server.url, args.jobs),
                 **floor_paths(server.url, args.jobs)}  # fmt: skip
        task = progress.add_task("enqueueing", total=len(paths) * args.repeats)
        for _ in range(args.repeats):
            rounds.append({})
            for name, run in paths.items():
                progress.update(task, description=name)
                rounds[-1][name] = measured(admin, args.jobs, run)
                progress.advance(task)
        admin.close()
    head = head_commit()
    report: dict[str, Any] = {
        "jobs": args.jobs, "repeats": args.repeats, "paths": summarised(rounds),
        "commit": head, "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-enqueue-cost.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print_json(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
