"""What keeping results costs: one worker drains the same queue of jobs with results off
(``noop`` returns None: nothing kept), on (``echo`` returns a small JSON object, kept with the
job) and on with a waiter (each job flagged as waited for, so the ack also pushes to its notify
list, as ``client.result()`` asks), the three alternating round by round in one run so the
machine's noise falls on each alike.

    python -m bench.results_cost [--jobs 20000] [--rounds 5]

Writes ``results/bench-results-cost.json`` and ``.md``: each variant's median drain rate and
its ratio to results off (the issue's goal: on within 10 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.parked import QUEUE, drain_seconds, park
from bench.progress import bench_progress
from jobrunner.dev.redis_server import RedisServer
from jobrunner.dev.stack import Stack

RESULTS = Path(__file__).resolve().parent.parent / "results"
PAYLOAD = {"to": "ada@example.com", "n": 12345, "ok": True}  # about 40 bytes kept per job
VARIANTS = {  # name: (job type, flagged as waited for)
    "results off": ("noop", False),
    "results on": ("echo", False),
    "results on, waited for": ("echo", True),
}


def measure(jobs: int, rounds: int, console: Console) -> dict[str, Any]:
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    commands: dict[str, float] = {}
    with RedisServer() as server, Stack(redis_url=server.url, api=False, workers=1,
                                        worker_metrics=False) as stack:  # fmt: skip
        client = stack.client
        with bench_progress(console) as progress:
            task = progress.add_task("draining", total=rounds * len(VARIANTS))
            for _ in range(rounds):
                for name, (job_type, waited) in VARIANTS.items():
                    park(client, job_type, PAYLOAD, jobs, waited=waited)
                    client.config_resetstat()
                    rates[name].append(jobs / drain_seconds(client, jobs))
                    calls = sum(v["calls"] for k, v in client.info("commandstats").items()
                                if k != "cmdstat_info")  # fmt: skip
                    commands[name] = calls / jobs
                    client.delete(*client.keys(QUEUE.notify_prefix + "*") or ["-"])
                    progress.advance(task)
    off = statistics.median(rates["results off"])
    return {
        "jobs_per_round": jobs,
        "rounds": rounds,
        "load_average": os.getloadavg(),
        "variants": {
            name: {
                "median_jobs_per_s": round(statistics.median(values), 1),
                "rates": [round(v, 1) for v in values],
                "ratio_to_results_off": round(statistics.median(values) / off, 3),
                "redis_commands_per_job": round(commands[name], 2),
            }
            for name, values in rates.items()
        },
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# What keeping results costs",
        "",
        f"`python -m bench.results_cost`: one asyncio worker drains {report['jobs_per_round']:,} "
        f"jobs per round, {report['rounds']} rounds, the variants alternating; load average "
        f"at the end {', '.join(f'{x:.2f}' for x in report['load_average'])}.",
        "",
        "| variant | median jobs/s | ratio to results off | Redis commands per job |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, v in report["variants"].items():
        rate, ratio = v["median_jobs_per_s"], v["ratio_to_results_off"]
        lines.append(f"| {name} | {rate:,.0f} | {ratio:.3f} | {v['redis_commands_per_job']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results_cost", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console()
    report = measure(args.jobs, args.rounds, console)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-results-cost.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "bench-results-cost.md").write_text(markdown(report))
    console.print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
