"""What ``--wait-replicas 1`` costs: enqueues and acks followed by ``WAIT``, in one run.

    python -m bench.wait_cost [--jobs 5000] [--rounds 3] [--out results]

A primary with one replica on loopback (the best case for ``WAIT``: the replica is a few µs
away; across a network add its round trip to every enqueue). One ``Client``, enqueues one after
another (each waits for its reply, the latency an application sees) and in batches of 100 from
8 callers; then one asyncio worker drains the jobs. Without and with ``wait_replicas=1``,
alternating, ``--rounds`` times, the median kept. Writes ``results/bench-wait-cost.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import redis
import uvloop

from bench.parked import head_commit, worker_process
from jobrunner.client import Client
from jobrunner.dev.redis_server import RedisServer

# registers noop: a process whose registry holds other handlers refuses a type it does not know
from jobrunner.lab.handlers import demo as _demo  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
BATCH, CALLERS = 100, 8


async def enqueues(url: str, jobs: int, wait: int) -> dict[str, float]:
    async with Client.from_url(url, wait_replicas=wait, wait_timeout=5.0) as client:
        await client.enqueue("noop")  # connected first
        started = time.perf_counter()
        for _ in range(jobs):
            await client.enqueue("noop")
        one_by_one = time.perf_counter() - started

        async def caller() -> None:
            for _ in range(jobs // CALLERS // BATCH):
                await client.enqueue_many([{"type": "noop"}] * BATCH)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        batched = time.perf_counter() - started
    return {"sequential_jobs_per_s": jobs / one_by_one,
            "sequential_latency_us": one_by_one / jobs * 1e6,
            "batched_jobs_per_s": jobs // CALLERS // BATCH * BATCH * CALLERS / batched}  # fmt: skip


def drain(url: str, wait: int, total: int) -> float:
    client = redis.Redis.from_url(url)
    env = {"JOBRUNNER_WAIT_REPLICAS": str(wait)}
    with worker_process(url, extra_env=env):
        started = time.perf_counter()
        deadline = time.monotonic() + 300
        while int(client.hget("jr:{default}:stats", "processed") or 0) < total:
            if time.monotonic() > deadline:
                raise SystemExit("the drain did not finish in 300 s")
            time.sleep(0.01)  # the poll period bounds the timing error
        seconds = time.perf_counter() - started
    client.close()
    return total / seconds


def one_round(primary: RedisServer, jobs: int, wait: int) -> dict[str, float]:
    with redis.Redis(port=primary.port) as client:
        client.flushall()
    result = uvloop.run(enqueues(primary.url, jobs, wait))
    total = 1 + jobs + jobs // CALLERS // BATCH * BATCH * CALLERS
    result["drain_jobs_per_s"] = drain(primary.url, wait, total)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    rounds: dict[int, list[dict[str, float]]] = {0: [], 1: []}
    with (
        RedisServer() as primary,
        RedisServer(extra_args=("--replicaof", "127.0.0.1", str(primary.port))),
    ):
        deadline = time.monotonic() + 30
        with redis.Redis(port=primary.port) as client:
            while int(client.info("replication")["connected_slaves"]) < 1:
                if time.monotonic() > deadline:
                    raise SystemExit("the replica did not link")
                time.sleep(0.05)  # start-up poll: the link has no other signal
        for n in range(args.rounds):
            for wait in (0, 1):
                print(f"round {n + 1}/{args.rounds}, wait_replicas={wait} ...", flush=True)
                rounds[wait].append(one_round(primary, args.jobs, wait))
    median: dict[str, dict[str, float]] = {
        str(w): {k: statistics.median(r[k] for r in rs) for k in rs[0]} for w, rs in rounds.items()
    }
    ratios = {k: statistics.median(b[k] / a[k] for a, b in zip(rounds[0], rounds[1], strict=True))
              for k in rounds[0][0]}  # fmt: skip
    result: dict[str, Any] = {
        "commit": head_commit(), "load_average": [round(x, 2) for x in load],
        "cpus": os.cpu_count(), "jobs": args.jobs, "rounds": args.rounds,
        "without_wait": median["0"], "with_wait_1": median["1"], "ratio_with_to_without": ratios,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-wait-cost.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, ratio in ratios.items():
        print(f"{key:<24} {median['0'][key]:>10,.1f} {median['1'][key]:>10,.1f}  {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
