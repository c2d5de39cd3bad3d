"""One queue on one Redis against one sharded queue on a 3-master Redis Cluster, in one run.

    python -m bench.scaling [--jobs 20000] [--shards 3] [--workers 2] [--rounds 3] [--out results]

Both setups get the same work: ``--jobs`` noop jobs enqueued in batches of 100 by 8 concurrent
callers on one ``Client``, then drained by ``--workers`` asyncio worker processes. For each:
the rates (what this 2-core machine moves: on it every Redis node, the producer and the
workers share two cores, so the cluster cannot run faster here), and what holds across
machines: the Redis CPU a job costs (``/proc`` CPU time of the serving masters, their
replicas' apart), how that CPU is shared between the masters (the point of shards: one queue's
work spread over several Redis cores), Redis commands a job (``INFO commandstats`` summed over
the masters) and the workers' CPU a job. The setups alternate, ``--rounds`` times; each figure
is the median of its rounds. Writes ``results/bench-scaling.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import redis
import uvloop

from bench.parked import head_commit, worker_process
from jobrunner.client import Client
from jobrunner.connection import sync_redis
from jobrunner.dev.redis_cluster import RedisClusterServer
from jobrunner.dev.redis_server import RedisServer
from jobrunner.keys import shards_key

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "bulk"
BATCH, CALLERS = 100, 8


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        out[pid] = times.user + times.system
    return out


def commands(ports: list[int]) -> int:
    total = 0
    for port in ports:
        with redis.Redis(port=port) as client:
            stats = client.info("commandstats")
        total += sum(v["calls"] for k, v in stats.items()
                     if k not in ("cmdstat_info", "cmdstat_config|resetstat"))  # fmt: skip
    return total


def reset(ports: list[int]) -> None:
    for port in ports:
        with redis.Redis(port=port) as client:
            client.config_resetstat()


async def enqueue_all(url: str, jobs: int) -> float:
    """Seconds to enqueue ``jobs`` noop jobs: batches of BATCH from CALLERS callers at once."""
    async with Client.from_url(url) as client:
        await client.enqueue("noop", queue=QUEUE)  # connections and shard counts read first
        per_caller = jobs // CALLERS

        async def caller() -> None:
            for _ in range(per_caller // BATCH):
                await client.enqueue_many([{"type": "noop", "queue": QUEUE}] * BATCH)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        return time.perf_counter() - started


def processed(url: str) -> int:
    async def read() -> int:
        async with Client.from_url(url) as client:
            return (await client.stats(QUEUE)).counters.get("processed", 0)

    return uvloop.run(read())


def measure(url: str, masters: dict[int, int], replicas: list[int], jobs: int,
            workers: int) -> dict[str, Any]:  # fmt: skip
    """Enqueue then drain on ``url``; ``masters`` port -> pid of the nodes serving it."""
    ports, pids = list(masters), list(masters.values())
    reset(ports)
    before, replica_before = cpu_seconds(pids), cpu_seconds(replicas)
    enqueue_s = uvloop.run(enqueue_all(url, jobs))
    enqueued = cpu_seconds(pids)
    enqueue_cmds = commands(ports)
    total = jobs // CALLERS // BATCH * BATCH * CALLERS + 1
    with ExitStack() as stack:
        procs = [stack.enter_context(worker_process(url, extra_args=("--queues", QUEUE)))
                 for _ in range(workers)]  # fmt: skip
        worker_before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        reset(ports)
        drain_before = cpu_seconds(pids)
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while processed(url) < total:
            if time.monotonic() > deadline:
                raise SystemExit("the drain did not finish in 600 s")
            time.sleep(0.05)  # the poll period bounds the timing error
        drain_s = time.perf_counter() - started
        worker_cpu = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        worker_cpu -= worker_before
    drained = cpu_seconds(pids)
    drain_cmds = commands(ports)
    replica_cpu = sum(cpu_seconds(replicas).values()) - sum(replica_before.values())
    enqueue_share = {p: enqueued[p] - before[p] for p in pids}
    drain_share = {p: drained[p] - drain_before[p] for p in pids}

    def shares(used: dict[int, float]) -> list[float]:
        whole = sum(used.values()) or 1.0
        return sorted((round(v / whole, 3) for v in used.values()), reverse=True)

    return {
        "jobs": total,
        "enqueue_jobs_per_s": total / enqueue_s,
        "drain_jobs_per_s": total / drain_s,
        "enqueue_redis_cpu_us": sum(enqueue_share.values()) / total * 1e6,
        "drain_redis_cpu_us": sum(drain_share.values()) / total * 1e6,
        "enqueue_commands_per_job": enqueue_cmds / total,
        "drain_commands_per_job": drain_cmds / total,
        "worker_cpu_us": worker_cpu / total * 1e6,
        "replica_cpu_us": replica_cpu / total * 1e6,
        "enqueue_master_shares": shares(enqueue_share),
        "drain_master_shares": shares(drain_share),
    }


def single(jobs: int, workers: int) -> dict[str, Any]:
    with RedisServer() as server:
        assert server.process is not None
        return measure(server.url, {server.port: server.process.pid}, [], jobs, workers)


def sharded(jobs: int, workers: int, shards: int) -> dict[str, Any]:
    with RedisClusterServer() as cluster:
        with sync_redis(cluster.url) as client:  # as `jobrunner shard bulk 3` declares it
            client.hset(shards_key(), QUEUE, shards)
        master_ports = cluster.master_ports()
        masters = {p: cluster.node(p).process.pid for p in master_ports}  # type: ignore[union-attr]
        replicas = [n.process.pid for n in cluster.nodes  # type: ignore[union-attr]
                    if n.port not in master_ports]  # fmt: skip
        return measure(cluster.url, masters, replicas, jobs, workers)


def redis_bound(setup: dict[str, Any]) -> float:
    """Jobs a second (enqueued and drained) at which the busiest master's core is full, where
    each master has a core of its own: what the Redis CPU a job and its shares imply."""
    busiest = (setup["enqueue_redis_cpu_us"] * max(setup["enqueue_master_shares"])
               + setup["drain_redis_cpu_us"] * max(setup["drain_master_shares"]))  # fmt: skip
    return 1e6 / busiest


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (a list of shares: each share's median)."""
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if isinstance(value, list):
            out[key] = [statistics.median(r[key][i] for r in rounds) for i in range(len(value))]
        else:
            out[key] = statistics.median(r[key] for r in rounds)
    return out


def table(result: dict[str, Any]) -> str:
    one, many = result["single"], result["cluster"]
    rows = [
        ("enqueue jobs/s (batches of 100)", "enqueue_jobs_per_s", "{:,.0f}"),
        ("drain jobs/s", "drain_jobs_per_s", "{:,.0f}"),
        ("Redis CPU µs/job, enqueue (masters)", "enqueue_redis_cpu_us", "{:.1f}"),
        ("Redis CPU µs/job, drain (masters)", "drain_redis_cpu_us", "{:.1f}"),
        ("replicas' CPU µs/job", "replica_cpu_us", "{:.1f}"),
        ("Redis commands/job, enqueue", "enqueue_commands_per_job", "{:.2f}"),
        ("Redis commands/job, drain", "drain_commands_per_job", "{:.2f}"),
        ("worker CPU µs/job", "worker_cpu_us", "{:.1f}"),
        ("jobs/s at which the busiest master's core is full", "redis_bound_jobs_per_s", "{:,.0f}"),
    ]
    lines = [f"| | one queue, one Redis | one queue, {result['shards']} shards, "
             "3-master cluster | ratio |", "|---|---:|---:|---:|"]  # fmt: skip
    for label, key, fmt in rows:
        ratio = f"{many[key] / one[key]:.2f}x" if one[key] else "—"
        lines.append(f"| {label} | {fmt.format(one[key])} | {fmt.format(many[key])} | "
                     f"{ratio} |")  # fmt: skip
    for phase in ("enqueue", "drain"):
        lines.append(
            f"| Redis CPU share of each master, {phase} | 1.0 | "
            f"{' / '.join(f'{s:.2f}' for s in many[f'{phase}_master_shares'])} | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"scaling: {args.jobs} jobs, load average {load[0]:.2f}", flush=True)
    ones, manys = [], []
    for n in range(args.rounds):
        print(f"round {n + 1}/{args.rounds}: one queue on one Redis ...", flush=True)
        ones.append(single(args.jobs, args.workers))
        print(f"round {n + 1}/{args.rounds}: {args.shards} shards on a 3-master cluster ...",
              flush=True)  # fmt: skip
        manys.append(sharded(args.jobs, args.workers, args.shards))
    one, many = median_of(ones), median_of(manys)
    for setup in (one, many):
        setup["redis_bound_jobs_per_s"] = redis_bound(setup)
    result = {"commit": head_commit(), "load_average": [round(x, 2) for x in load],
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "cpus": os.cpu_count(), "shards": args.shards, "workers": args.workers,
              "rounds": args.rounds,
              "single": one, "cluster": many}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(result)
    (args.out / "bench-scaling.md").write_text(
        f"# One queue on one Redis vs sharded on a cluster (commit {result['commit']}, "
        f"load average {load[0]:.2f}, {os.cpu_count()} CPUs)\n\n{text}\n"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
