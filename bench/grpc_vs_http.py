"""gRPC Enqueue/EnqueueBatch against POST /jobs: jobs per second, in one run.

One ``jobrunner api`` and one ``jobrunner grpc`` process on the same private Redis, both with
tokens on (one token, ``enqueue`` scope) and the demo handlers. Each round drives one API then
the other (the order alternating), for ``--seconds`` each, from this process with
``--concurrency`` callers on one connection each way an asyncio client keeps them: aiohttp
(keep-alive, a connection per caller) for HTTP, one grpc.aio channel (HTTP/2 streams) for gRPC.
Single jobs, then batches of ``--batch``. Redis is emptied between measurements. The figure is
the median of the rounds; the ratio is gRPC over HTTP. Results: results/bench-grpc.json.

Both clients are Python, so each side pays for its own client on the same 2 cores: that is the
comparison a Python producer sees, not the servers' ceilings (bench/api_throughput.py measures
POST /jobs with wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import grpc
import psutil
import redis

from bench.api_process import serving_api
from jobrunner.dev.redis_server import RedisServer, free_port
from jobrunner.grpc.v1 import jobs_pb2 as pb
from jobrunner.grpc.v1 import jobs_pb2_grpc as pb_grpc
from jobrunner.tokens import encode_record, new_token, tokens_key

HANDLERS = "jobrunner.lab.handlers.demo"


@contextmanager
def serving_grpc(redis_url: str) -> Iterator[tuple[str, int]]:
    """``jobrunner grpc`` on a free port until the block ends; yields its address and pid."""
    port = free_port()
    argv = [sys.executable, "-m", "jobrunner.cli", "grpc", "--port", str(port),
            "--redis-url", redis_url, "--log-level", "warning", "--import", HANDLERS]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield address, process.pid
    finally:
        process.terminate()
        process.wait(20)


Call = Callable[[], Awaitable[int]]  # one request; returns the jobs it enqueued


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def drive(call: Call, seconds: float, concurrency: int) -> float:
    """Jobs per second with ``concurrency`` callers looping on ``call`` for ``seconds``."""
    end = time.monotonic() + seconds
    counts = [0] * concurrency

    async def caller(i: int) -> None:
        while time.monotonic() < end:
            counts[i] += await call()

    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return sum(counts) / (time.monotonic() - started)


async def measure(args: argparse.Namespace, api: str, address: str, token: str,
                  flush: Callable[[], None], servers: dict[str, psutil.Process],
                  ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:  # fmt: skip
    """Jobs/s per round of each API and size; and the server's and the client's CPU seconds
    per 1,000 jobs in each."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    metadata = (("authorization", f"Bearer {token}"),)
    single_body = json.dumps({"type": "noop", "data": {"n": 1}}).encode()
    batch_body = json.dumps({"jobs": [{"type": "noop", "data": {"n": 1}}] * args.batch}).encode()
    one = pb.EnqueueRequest(job=pb.JobSpec(type="noop", data=b'{"n": 1}'))
    many = pb.EnqueueBatchRequest(jobs=[pb.JobSpec(type="noop", data=b'{"n": 1}')] * args.batch)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    runs: dict[str, list[float]] = {f"{api_} {size}": [] for api_ in ("http", "grpc")
                                    for size in ("single", "batch")}  # fmt: skip
    me = psutil.Process()
    cpu: dict[str, list[float]] = {f"{name} {side}": [] for name in runs
                                   for side in ("server", "client")}  # fmt: skip
    async with (aiohttp.ClientSession(connector=connector, headers=headers) as http,
                grpc.aio.insecure_channel(address) as channel):  # fmt: skip
        stub = pb_grpc.JobsStub(channel)

        async def post(body: bytes, n: int) -> int:
            async with http.post(f"{api}/jobs", data=body) as response:
                await response.read()
                assert response.status == 202, response.status
            return n

        async def http_single() -> int:
            return await post(single_body, 1)

        async def http_batch() -> int:
            return await post(batch_body, args.batch)

        async def grpc_single() -> int:
            await stub.Enqueue(one, metadata=metadata)
            return 1

        async def grpc_batch() -> int:
            await stub.EnqueueBatch(many, metadata=metadata)
            return args.batch

        calls = {"http single": http_single, "grpc single": grpc_single,
                 "http batch": http_batch, "grpc batch": grpc_batch}  # fmt: skip
        for call in calls.values():  # warm up: connections, token caches, scripts
            await drive(call, 0.5, args.concurrency)
        flush()
        for i in range(args.rounds):
            for size in ("single", "batch"):
                order = ("http", "grpc") if i % 2 == 0 else ("grpc", "http")
                for api_ in order:
                    name = f"{api_} {size}"
                    server_before, client_before = cpu_seconds(servers[api_]), cpu_seconds(me)
                    rate = await drive(calls[name], args.seconds, args.concurrency)
                    jobs = rate * args.seconds / 1000
                    cpu[f"{name} server"].append(
                        (cpu_seconds(servers[api_]) - server_before) / jobs
                    )
                    cpu[f"{name} client"].append((cpu_seconds(me) - client_before) / jobs)
                    runs[name].append(rate)
                    flush()
                    print(f"round {i + 1}: {name}: {rate:,.0f} jobs/s", flush=True)
    return runs, cpu


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        token, record = new_token("bench", ["enqueue"])

        def flush() -> None:  # the jobs go; the token stays
            client.flushdb()
            client.hset(tokens_key(), record.id, encode_record(record))

        flush()
        load_before = os.getloadavg()
        with serving_api(server.url) as api, serving_grpc(server.url) as (address, pid):
            servers = {"http": psutil.Process(api.process.pid), "grpc": psutil.Process(pid)}
            runs, cpu = asyncio.run(measure(args, api.base, address, token, flush, servers))
        client.close()
    medians = {name: statistics.median(values) for name, values in runs.items()}
    ratios = {size: medians[f"grpc {size}"] / medians[f"http {size}"]
              for size in ("single", "batch")}  # fmt: skip
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "batch": args.batch,
        "jobs_per_second": runs,
        "median_jobs_per_second": medians,
        "ratio_grpc_over_http": ratios,
        "cpu_seconds_per_1000_jobs_median": {k: statistics.median(v) for k, v in cpu.items()},
        "goal_met": {size: ratio >= 1.0 for size, ratio in ratios.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-grpc.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, value in medians.items():
        print(f"{name:12} {value:>10,.0f} jobs/s (median of {args.rounds})")
    for name, per in report["cpu_seconds_per_1000_jobs_median"].items():  # type: ignore[union-attr]
        print(f"{name:20} {per:.3f} CPU s per 1,000 jobs")
    for size, ratio in ratios.items():
        print(f"gRPC / HTTP, {size}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
