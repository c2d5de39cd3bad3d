"""Where one Redis is full, and how shards on a Redis Cluster move the limit (notebook 09,
``python -m bench.scaling``).

Both setups get the same work: ``jobs`` noop jobs enqueued in batches of 100 by 8 concurrent
callers on one ``Client``, then drained by asyncio worker processes. For each: the rates (what
this machine moves: on a 2-core one every Redis node, the producer and the workers share two
cores, so the cluster cannot run faster), and what holds across machines: the Redis CPU a job
costs (each master's own ``INFO cpu``, µs-precise; the replicas' apart), how that CPU is shared
between the masters (the point of shards: one queue's work spread over several Redis cores),
Redis commands a job (``INFO commandstats`` summed over the masters) and the workers' CPU a job.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import psutil
import redis
import uvloop

from jobrunner.client import Client
from jobrunner.connection import sync_redis
from jobrunner.dev.redis_cluster import RedisClusterServer
from jobrunner.dev.redis_server import RedisServer
from jobrunner.dev.stack import Stack
from jobrunner.keys import shards_key

# registers noop: a process whose registry holds other handlers refuses a type it does not know
from jobrunner.lab.handlers import demo as _demo  # noqa: F401
from jobrunner.sync_client import SyncClient

QUEUE = "bulk"
BATCH, CALLERS = 100, 8


def cpu_seconds(ports: list[int]) -> dict[int, float]:
    """Each node's CPU time so far (``INFO cpu``: its own getrusage, finer than ``/proc``)."""
    out = {}
    for port in ports:
        with redis.Redis(port=port) as client:
            info = client.info("cpu")
        out[port] = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
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


def measure(url: str, masters: list[int], replicas: list[int], jobs: int,
            workers: int) -> dict[str, Any]:  # fmt: skip
    """Enqueue then drain on ``url``; ``masters`` and ``replicas`` are the nodes' ports."""
    ports = masters
    with SyncClient.from_url(url) as client:
        client.pause(QUEUE)  # the jobs wait until every worker is up: the drain is timed whole
    reset(ports)
    before, replica_before = cpu_seconds(ports), cpu_seconds(replicas)
    enqueue_s = uvloop.run(enqueue_all(url, jobs))
    enqueued = cpu_seconds(ports)
    enqueue_cmds = commands(ports)
    total = jobs // CALLERS // BATCH * BATCH * CALLERS + 1
    stack = Stack(workers=workers, model="asyncio", api=False, redis_url=url, queues=[QUEUE],
                  worker_metrics=False)  # fmt: skip
    with stack, SyncClient.from_url(url) as client:
        procs = [psutil.Process(pid) for pid in stack.worker_pids()]
        worker_before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        reset(ports)
        drain_before = cpu_seconds(ports)
        started = time.perf_counter()
        client.resume(QUEUE)  # idle workers look again within idle_poll_max (50 ms)
        deadline = time.monotonic() + 600
        while client.stats(QUEUE).counters.get("processed", 0) < total:
            if time.monotonic() > deadline:
                raise RuntimeError("the drain did not finish in 600 s")
            time.sleep(0.05)  # the poll period bounds the timing error
        drain_s = time.perf_counter() - started
        worker_cpu = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        worker_cpu -= worker_before
    drained = cpu_seconds(ports)
    drain_cmds = commands(ports)
    replica_cpu = sum(cpu_seconds(replicas).values()) - sum(replica_before.values())
    enqueue_share = {p: enqueued[p] - before[p] for p in ports}
    drain_share = {p: drained[p] - drain_before[p] for p in ports}

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
        return measure(server.url, [server.port], [], jobs, workers)


def sharded(jobs: int, workers: int, shards: int) -> dict[str, Any]:
    with RedisClusterServer() as cluster:
        with sync_redis(cluster.url) as client:  # as `jobrunner shard bulk 3` declares it
            client.hset(shards_key(), QUEUE, shards)
        master_ports = cluster.master_ports()
        replicas = [n.port for n in cluster.nodes if n.port not in master_ports]
        return measure(cluster.url, master_ports, replicas, jobs, workers)


def redis_bound(setup: dict[str, Any]) -> float:
    """Jobs a second (enqueued and drained) at which the busiest master's core is full, where
    each master has a core of its own: what the Redis CPU a job and its shares imply."""
    busiest = (setup["enqueue_redis_cpu_us"] * max(setup["enqueue_master_shares"])
               + setup["drain_redis_cpu_us"] * max(setup["drain_master_shares"]))  # fmt: skip
    return float(1e6 / busiest)


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
