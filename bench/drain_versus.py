"""A worker of this checkout against an earlier commit's, draining the same jobs in one run.

``python -m bench.drain_versus --base REV [--charge-on start|reserve] [--jobs 20000]
[--rounds 5]`` checks REV out into a
temporary git worktree and starts one asyncio worker from each tree, each on a Redis of its own;
then, round by round and alternating, parks the same jobs for each (not timed), hands them over
and times the drain. Besides jobs/s (a rate this noisy machine moves), it records what holds
across machines: Redis commands per job (``INFO commandstats``) and the worker's CPU time per
job. Job types: ``noop`` (the job system's own cost) and ``email`` with a 1 ms wait (a handler
that takes time). ``--charge-on`` sets this checkout's worker's ``JOBRUNNER_CHARGE_ON``. Writes
``results/bench-drain-versus-<charge-on>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import redis
from rich.console import Console

from bench.parked import checkout, drain_seconds, head_commit, park, worker_process
from bench.progress import bench_progress
from jobrunner.dev.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"noop": ("noop", {}), "email 1 ms": ("email", {"latency": 0.001})}


def drain(client: redis.Redis, worker: psutil.Process, count: int) -> dict[str, float]:
    """Hand the parked jobs over; the drain's rate, Redis commands and worker CPU per job."""
    client.config_resetstat()
    cpu = sum(worker.cpu_times()[:2])
    seconds = drain_seconds(client, count)
    worker_us = (sum(worker.cpu_times()[:2]) - cpu) / count * 1e6
    ours = ("cmdstat_info", "cmdstat_hget", "cmdstat_config", "cmdstat_rename", "cmdstat_multi",
            "cmdstat_exec")  # the timer's own commands  # fmt: skip
    stats = client.info("commandstats")
    commands = sum(v["calls"] for k, v in stats.items() if k not in ours) / count
    return {"jobs_per_s": count / seconds, "commands_per_job": commands, "worker_cpu_us": worker_us}


def summary(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in rounds), 2) for key in rounds[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--charge-on", choices=["start", "reserve"], default="start")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        k: {"this": [], "base": []} for k in KINDS
    }
    with checkout(args.base) as base_tree, ExitStack() as stack:
        sides = {}
        for name, tree in (("this", ROOT), ("base", base_tree)):
            server = stack.enter_context(RedisServer())
            extra = {"JOBRUNNER_CHARGE_ON": args.charge_on} if name == "this" else {}
            worker = stack.enter_context(worker_process(server.url, tree=tree, extra_env=extra))
            sides[name] = (redis.Redis.from_url(server.url), worker)
        with bench_progress(console) as progress:
            task = progress.add_task("draining", total=args.rounds * len(KINDS) * 2)
            for _ in range(args.rounds):
                for kind, (job_type, payload) in KINDS.items():
                    for name, (client, worker) in sides.items():
                        park(client, job_type, payload, args.jobs)
                        runs[kind][name].append(drain(client, worker, args.jobs))
                        progress.advance(task)
        for client, _ in sides.values():
            client.close()
    head = head_commit()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "this": head, "base": args.base, "charge_on": args.charge_on,
        "jobs_per_round": args.jobs, "rounds": args.rounds,
        "load_average": os.getloadavg(), "kinds": {},
    }  # fmt: skip
    for kind, sides_runs in runs.items():
        this, base = summary(sides_runs["this"]), summary(sides_runs["base"])
        ratios = [a["jobs_per_s"] / b["jobs_per_s"]
                  for a, b in zip(sides_runs["this"], sides_runs["base"], strict=True)]  # fmt: skip
        report["kinds"][kind] = {"this": this, "base": base,
                                 "rate_ratio_median": round(statistics.median(ratios), 3),
                                 "rate_ratio_range": [round(min(ratios), 3),
                                                      round(max(ratios), 3)]}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"bench-drain-versus-{args.charge_on}.json"
    (args.out / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
