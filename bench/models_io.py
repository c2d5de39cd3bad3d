"""The three concurrency models draining jobs that do real I/O, side by side in one run.

    python -m bench.models_io [--jobs 10000] [--rounds 3] [--out results]

One worker process per model (asyncio, thread, process), each with its default settings and a
Redis of its own; round by round and alternating, the same jobs are parked for each (not timed),
handed over, and the drain timed. Handlers, each model's natural kind:

* ``redis round trip``: one ``INCR`` on the worker's Redis; ``redis_incr_async`` (an ``async
  def``) for asyncio, ``redis_incr`` (blocking redis-py) for the thread and process models;
* ``1 ms sleep``: ``email`` with a 1 ms ``asyncio.sleep`` for asyncio, ``sleep`` (a blocking
  1 ms wait) for the others.

Reported per model and handler: jobs/s and its ratio to asyncio's in the same round (the
median over rounds), and what holds across machines: the worker's CPU µs per job (the process
and its children, from ``/proc`` through psutil) and Redis commands per job (``INFO
commandstats``, the handler's own INCR included), and what explains the gap: script calls per
job (``EVALSHA``: reserve, start marks, acks), the main process's system CPU per job (thread
wake-ups and GIL hand-offs) and the context switches per job of all its threads and children
(``/proc``: a thread giving up its core to wait, for the GIL or for work). Writes
``results/bench-models-io.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import redis
from rich.console import Console

from bench.parked import drain_seconds, head_commit, park, worker_process
from bench.progress import bench_progress
from jobrunner.dev.redis_server import RedisServer
from jobrunner.lab.concurrency import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("asyncio", "thread", "process")
KINDS = ("redis round trip", "1 ms sleep")
SWITCHES = ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")


def job_for(kind: str, model: str, url: str) -> tuple[str, dict[str, Any]]:
    """The job type and payload of ``kind`` in ``model``'s natural form."""
    if kind == "redis round trip":
        return ("redis_incr_async" if model == "asyncio" else "redis_incr"), {"url": url}
    if model == "asyncio":
        return "email", {"latency": 0.001}
    return "sleep", {"seconds": 0.001}


def context_switches(pid: int) -> int:
    """Context switches so far of every thread of ``pid`` and its children (``/proc``): each
    is a thread that gave up a core, mostly to wait for the GIL or for work."""
    total = 0
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            try:
                status = (task / "status").read_text()
            except OSError:  # a thread that ended meanwhile
                continue
            total += sum(int(line.split()[1]) for line in status.splitlines()
                         if line.startswith(SWITCHES))  # fmt: skip
    return total


def drain(client: redis.Redis, proc: psutil.Process, count: int) -> dict[str, float]:
    client.config_resetstat()
    cpu, system = cpu_seconds(proc.pid), proc.cpu_times().system
    switches = context_switches(proc.pid)
    seconds = drain_seconds(client, count)
    worker_us = (cpu_seconds(proc.pid) - cpu) / count * 1e6
    system_us = (proc.cpu_times().system - system) / count * 1e6  # the main process's
    switches_per_job = (context_switches(proc.pid) - switches) / count
    ours = ("cmdstat_info", "cmdstat_hget", "cmdstat_config", "cmdstat_rename")  # the timer's
    stats = client.info("commandstats")
    commands = sum(v["calls"] for k, v in stats.items() if k not in ours) / count
    scripts = stats.get("cmdstat_evalsha", {}).get("calls", 0) / count
    return {"jobs_per_s": count / seconds, "worker_cpu_us": worker_us,
            "worker_system_cpu_us": system_us, "context_switches_per_job": switches_per_job,
            "commands_per_job": commands,
            "script_calls_per_job": scripts}  # fmt: skip


def _places(figure: str) -> int:
    """Decimals a figure is kept to: counts below one a job need more than one."""
    return 3 if "script" in figure or "switch" in figure else 1


Variant = tuple[str, str, tuple[str, ...]]  # name, model, worker options


def drain_side_by_side(
    variants: Sequence[Variant], jobs: int, rounds: int, console: Console
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Per handler kind and variant name, each round's ``drain`` figures: one worker per
    variant, each on a Redis of its own, the variants alternating within each round."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        kind: {name: [] for name, _, _ in variants} for kind in KINDS
    }
    with ExitStack() as stack:
        sides = {}
        for name, model, options in variants:
            server = stack.enter_context(RedisServer())
            proc = stack.enter_context(worker_process(server.url, model=model,
                                                      extra_args=options))  # fmt: skip
            client = stack.enter_context(redis.Redis.from_url(server.url))
            sides[name] = (client, proc, server.url, model)
        with bench_progress(console) as progress:
            task = progress.add_task("draining", total=rounds * len(KINDS) * len(variants))
            for _ in range(rounds):
                for kind in KINDS:
                    for name, (client, proc, url, model) in sides.items():
                        progress.update(task, description=f"{kind}: {name}")
                        park(client, *job_for(kind, model, url), jobs)
                        runs[kind][name].append(drain(client, proc, jobs))
                        progress.advance(task)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    runs = drain_side_by_side([(m, m, ()) for m in MODELS], args.jobs, args.rounds, console)
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": head_commit(),
        "jobs_per_round": args.jobs, "rounds": args.rounds,
        "load_average": [round(x, 2) for x in os.getloadavg()], "kinds": {},
    }  # fmt: skip
    for kind, by_model in runs.items():
        report["kinds"][kind] = {}
        for model, rounds in by_model.items():
            row = {k: round(statistics.median(r[k] for r in rounds), _places(k))
                   for k in rounds[0]}  # fmt: skip
            ratios = [r["jobs_per_s"] / a["jobs_per_s"]
                      for r, a in zip(rounds, by_model["asyncio"], strict=True)]  # fmt: skip
            row["ratio_to_asyncio"] = round(statistics.median(ratios), 3)
            report["kinds"][kind][model] = row
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-models-io.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print_json(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
