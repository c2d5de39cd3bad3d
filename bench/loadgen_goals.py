"""The API and end-to-end latency figures, measured with the load generator on one machine.

    python -m bench.loadgen_goals [--repeats 3] [--quick] [--out results]

One stack (embedded Redis, one API process, one asyncio worker process) and, per repeat:

1. capacity: POST /jobs with one job per request, closed loop, as fast as the clients go;
2. batches: POST /jobs with 100 jobs per request, closed loop;
3. latency: an open loop at half of (1)'s median rate: end-to-end latency from each request's
   intended start to the worker's acknowledgement, HDR percentiles.

Every figure is the median of the repeats with the worst and best beside it; the goals of the
issue are checked against the median. Results: ``bench-loadgen.json``, ``bench-loadgen.md`` and
``bench-latency.png`` (the open-loop percentile curves next to the closed-loop ones).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from rich.console import Console

from jobrunner.dev.stack import Stack
from jobrunner.lab.loadgen import LoadSpec, run_load
from jobrunner.lab.loadgen.plots import plot_percentiles
from jobrunner.lab.loadgen.result import machine

GOALS = {
    "single_rps": (">=", 3000.0),
    "batch_jobs_per_s": (">=", 40000.0),
    "open_e2e_p50_ms": ("<=", 2.0),
    "open_e2e_p99_ms": ("<=", 10.0),
}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "worst": min(values), "best": max(values)}


def run(repeats: int, quick: bool, console: Console) -> dict[str, Any]:
    single_jobs, batch_jobs, open_seconds = (2_000, 20_000, 3.0) if quick else (
        20_000, 300_000, 20.0)  # fmt: skip
    figures: dict[str, list[float]] = {k: [] for k in (
        "single_rps", "single_p99_ms", "batch_jobs_per_s", "open_rate_rps", "open_send_rate_rps",
        "open_e2e_p50_ms", "open_e2e_p99_ms", "open_e2e_p999_ms")}  # fmt: skip
    curves: dict[str, HdrHistogram] = {}
    with Stack(workers=1, model="asyncio") as stack:
        url, token = stack.api_url or "", stack.api_token
        console.print(stack.status())
        for i in range(repeats):
            console.rule(f"repeat {i + 1}/{repeats}")
            single = run_load(
                LoadSpec(url=url, token=stack.api_token, concurrency=32, total=single_jobs),
                redis_url=stack.redis_url,
            ).summary()
            figures["single_rps"].append(single["requests_ok"] / single["send_seconds"])
            figures["single_p99_ms"].append(single["latency_ms"]["enqueue"]["p99"])
            stack.wait_idle(timeout=120)
            batch = run_load(
                LoadSpec(
                    url=url, token=stack.api_token, concurrency=8, batch=100, total=batch_jobs
                ),
                redis_url=stack.redis_url,
            ).summary()
            figures["batch_jobs_per_s"].append(batch["enqueue_rate_jobs_per_s"])
            stack.wait_idle(timeout=300)
            rate = round(figures["single_rps"][-1] / 2)
            result = run_load(
                LoadSpec(url=url, token=token, concurrency=64, loop="open", rate=rate,
                         total=None, duration=open_seconds), redis_url=stack.redis_url,
            )  # fmt: skip
            summary = result.summary()
            e2e = summary["latency_ms"]["end_to_end"]
            figures["open_rate_rps"].append(rate)
            figures["open_send_rate_rps"].append(summary["send_rate_rps"])
            figures["open_e2e_p50_ms"].append(e2e["p50"])
            figures["open_e2e_p99_ms"].append(e2e["p99"])
            figures["open_e2e_p999_ms"].append(e2e["p99.9"])
            curves[f"open loop {rate}/s, end to end, repeat {i + 1}"] = result.histograms[
                "end_to_end"
            ]
            if i == 0:
                curves[f"open loop {rate}/s, enqueue, repeat 1"] = result.histograms["enqueue"]
            stack.wait_idle(timeout=120)
    out = {name: spread(values) for name, values in figures.items()}
    goals = {}
    for name, (op, goal) in GOALS.items():
        value = out[name]["median"]
        goals[name] = {"goal": f"{op} {goal:g}", "median": value,
                       "met": value >= goal if op == ">=" else value <= goal}  # fmt: skip
    return {"machine": machine(), "repeats": repeats, "quick": quick, "figures": out,
            "goals": goals, "_curves": curves}  # fmt: skip


LABELS = {
    "single_rps": "POST /jobs, 1 job per request (req/s = jobs/s)",
    "single_p99_ms": "  its p99 enqueue latency (ms, closed loop)",
    "batch_jobs_per_s": "POST /jobs, 100 jobs per request (jobs/s)",
    "open_rate_rps": "open loop: arrival rate (half of the single-job capacity)",
    "open_send_rate_rps": "  achieved send rate",
    "open_e2e_p50_ms": "  end to end p50 (ms), enqueue -> acknowledged",
    "open_e2e_p99_ms": "  end to end p99 (ms)",
    "open_e2e_p999_ms": "  end to end p99.9 (ms)",
}


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# API and end-to-end latency, measured with the load generator",
        "",
        f"`python -m bench.loadgen_goals` on {m['date']}: {m['cpus']} CPUs, {m['memory_gib']} "
        f"GiB, Python {m['python']}, {m['platform']}. One API process, one asyncio worker, "
        "embedded Redis and the load generator (asyncio, aiohttp) all on this machine. "
        f"Median of {report['repeats']} repeats, worst..best beside it.",
        "",
        "| figure | median | worst..best |",
        "|---|---:|---|",
    ]
    for name, label in LABELS.items():
        f = report["figures"][name]
        lines.append(f"| {label} | {f['median']:,.1f} | {f['worst']:,.1f}..{f['best']:,.1f} |")
    lines += ["", "| goal | median | met |", "|---|---:|---|"]
    for name, g in report["goals"].items():
        lines.append(f"| {name} {g['goal']} | {g['median']:,.1f} | {'yes' if g['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    console = Console()
    report = run(args.repeats, args.quick, console)
    curves = report.pop("_curves")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-loadgen.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "bench-loadgen.md").write_text(markdown(report))
    title = "POST /jobs -> done, open loop at half capacity (HDR percentiles)"
    plot_percentiles(curves, args.out / "bench-latency.png", title=title)
    console.print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
