"""Flamegraphs of one optimisation: the same worker and jobs profiled on the commit before it
and on this checkout, for ``jobrunner.lab.flamediff`` (notebook 3) to set side by side.

    python -m bench.profile_versus --base 2162ec3a7dff --label pipelined \
        [--model thread] [--jobs 50000] [--seconds 3]

REV is checked out into a temporary git worktree; a worker of ``--model`` from each tree
drains the same parked jobs (``redis_incr``: one Redis round trip in the handler, as
``bench.models_io``) on a Redis of its own, while py-spy records it from the middle of the drain
(``--format raw``, the collapsed stacks, without line numbers), and the jobs done in that window
are counted, so a frame's samples can be read per job. Writes
``profiles/versus-<label>-before.txt``, ``-after.txt`` and ``profiles/versus-<label>.json``
(commits, samples, jobs in the window and the worker's CPU µs per job: what the flamegraphs
should agree with). Needs ptrace (root or ``CAP_SYS_PTRACE``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

from bench.parked import PARKED, QUEUE, checkout, head_commit, park, worker_process
from jobrunner.dev.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: make lab installs it (the lab extra)")
    return found


def processed(client: redis.Redis) -> int:
    return int(client.hget(QUEUE.stats, "processed") or 0)


def cpu_seconds(worker: psutil.Process) -> float:
    procs = [worker, *worker.children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def profile_drain(url: str, tree: Path, model: str, jobs: int, seconds: float, out: Path) -> dict:
    """Park ``jobs`` jobs, hand them to a worker from ``tree`` and let py-spy record it for
    ``seconds`` from the middle of the drain (so every sample is of a busy worker); returns the
    jobs done in that window and the worker's CPU µs per job over it."""
    client = redis.Redis.from_url(url)
    with worker_process(url, model=model, tree=tree) as worker:
        park(client, "redis_incr", {"url": url}, jobs)
        client.rename(PARKED, QUEUE.ready)  # the drain starts
        deadline = time.monotonic() + 60
        while processed(client) < jobs // 10:  # past the start-up: the worker at full speed
            if time.monotonic() > deadline:
                raise SystemExit("the drain did not start")
            time.sleep(0.01)
        done, cpu = processed(client), cpu_seconds(worker)
        spy = subprocess.run(
            [py_spy(), "record", "--pid", str(worker.pid), "--format", "raw", "--nolineno",
             "--rate", "250", "--duration", str(int(seconds)), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=seconds + 60,
        )  # fmt: skip
        window_jobs, used = processed(client) - done, cpu_seconds(worker) - cpu
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {spy.stderr.decode().strip()}")
        if processed(client) >= jobs:
            raise SystemExit(f"the drain ended inside py-spy's window: park more than {jobs}")
        while processed(client) < jobs:  # let it finish before the worker stops
            time.sleep(0.01)
    client.close()
    return {"jobs_in_window": window_jobs, "worker_cpu_us": round(used / window_jobs * 1e6, 1),
            "jobs_per_s": round(window_jobs / seconds)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="the commit before the optimisation")
    parser.add_argument("--label", required=True, help="a name for the files, e.g. the change")
    parser.add_argument("--model", default="thread", choices=["asyncio", "thread", "process"])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="py-spy's window")
    parser.add_argument("--out", type=Path, default=ROOT / "profiles")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "before": args.base, "after": head_commit(), "model": args.model,
        "job": "redis_incr (one INCR in the handler)", "jobs": args.jobs,
        "py_spy_seconds": args.seconds,
    }  # fmt: skip
    with checkout(args.base) as base_tree:
        for side, tree in (("before", base_tree), ("after", ROOT)):
            path = args.out / f"versus-{args.label}-{side}.txt"
            with RedisServer() as server:
                report[side + "_drain"] = profile_drain(
                    server.url, tree, args.model, args.jobs, args.seconds, path
                )
            report[side + "_samples"] = sum(
                int(line.rpartition(" ")[2]) for line in path.read_text().splitlines() if line
            )
            print(f"{side}: {report[side + '_drain']}, {report[side + '_samples']} samples",
                  file=sys.stderr)  # fmt: skip
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    (args.out / f"versus-{args.label}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
