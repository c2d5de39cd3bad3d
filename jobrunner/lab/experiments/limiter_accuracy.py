"""Rate limiter accuracy: for each algorithm, the configured limit against the rate achieved by
1, 2 and 4 worker processes, the burst at the start, and the most executions seen in any
window, counted from the timestamps of the calls the dependency server received.

Each algorithm guards its own job type (``dependency.limited.<algorithm>``) through
``JOBRUNNER_LIMITS``; jobs over the limit are deferred by the workers, never failed.

``python -m jobrunner.lab.experiments.limiter_accuracy [--full] [--out results]``
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from jobrunner.connection import async_redis
from jobrunner.dev.stack import Stack
from jobrunner.job import make_job
from jobrunner.lab.dependency.client import DependencyServer
from jobrunner.lab.dependency.model import DependencyConfig
from jobrunner.lab.experiments.output import RESULTS, figure, save_figure, write_csv, write_json
from jobrunner.queue import ReliableQueue
from jobrunner.ratelimit.measure import max_in_window, rate_series
from jobrunner.ratelimit.spec import LimitSpec, parse_limit

BUCKET = 0.1  # seconds per point of the rate series
# The dependency stamps a call when it arrives, a few milliseconds after the limiter admitted it;
# that delay varies, so two admissions a period apart may arrive a little less than a period apart.
# ``within_bound`` counts windows shortened by this allowance (the limiter itself is checked on
# Redis's clock, exactly, by tests/test_ratelimit_processes.py).
DELIVERY_JITTER = 0.05


@dataclass(frozen=True)
class Setup:
    limits: tuple[tuple[str, str], ...] = (
        ("token_bucket", "token_bucket:50/s:burst=10"),
        ("gcra", "gcra:50/s"),
        ("sliding_window", "sliding_window:50/s"),
        ("concurrency", "concurrency:5"),
    )
    workers: tuple[int, ...] = (1, 2, 4)
    seconds: float = 3.0  # of work at the limit, per run
    hold: float = 0.05  # seconds each call takes (the dependency's latency)
    timeout: float = 120.0

    def specs(self) -> dict[str, LimitSpec]:
        return {algorithm: parse_limit(text) for algorithm, text in self.limits}

    def jobs_for(self, spec: LimitSpec) -> int:
        rate = spec.limit / self.hold if spec.algorithm == "concurrency" else spec.rate
        return int(rate * self.seconds) + spec.burst


SMALL = Setup()
FULL = Setup(seconds=10.0, workers=(1, 2, 4, 8))


@dataclass
class Run:
    algorithm: str
    limit: str
    workers: int
    jobs: int
    achieved_rate: float  # calls per second from first to last call
    configured_rate: float | None
    max_in_window: int  # most calls in any window of the limit's period, as the dependency saw
    max_in_shortened_window: int  # the same over windows DELIVERY_JITTER shorter
    bound: int | None  # what the algorithm guarantees in such a window (None: no guarantee)
    within_bound: bool | None
    first_100ms: int  # calls in the first 100 ms: the burst
    peak_in_flight: int  # most calls at once (the concurrency limit's measure)
    deferred: int  # jobs the workers deferred
    series: list[int]


def run_one(stack: Stack, server: DependencyServer, algorithm: str, spec: LimitSpec,
            setup: Setup) -> Run:  # fmt: skip
    server.reset()
    jobs = setup.jobs_for(spec)

    async def go() -> int:
        redis = async_redis(stack.redis_url)
        try:
            queue = ReliableQueue(redis)
            before = (await queue.stats("default")).counters
            batch = [make_job(f"dependency.limited.{algorithm}") for _ in range(jobs)]
            await queue.enqueue_jobs(batch)
            deadline = time.monotonic() + setup.timeout
            while True:
                counters = (await queue.stats("default")).counters
                if counters.get("processed", 0) - before.get("processed", 0) >= jobs:
                    return counters.get("deferred", 0) - before.get("deferred", 0)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{algorithm}: jobs unfinished after {setup.timeout}s")
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()

    deferred = asyncio.run(go())
    stats = server.stats(times=True)
    times = sorted(stats["times"])
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    window = spec.period
    bound = spec.bound(window)
    seen = max_in_window(times, window)
    shortened = max_in_window(times, window - DELIVERY_JITTER)
    return Run(
        algorithm=algorithm,
        limit=spec.describe(),
        workers=len(stack.worker_pids()),
        jobs=jobs,
        achieved_rate=round((len(times) - 1) / span, 2) if span else 0.0,
        configured_rate=None if spec.algorithm == "concurrency" else spec.rate,
        max_in_window=seen,
        max_in_shortened_window=shortened,
        bound=bound,
        within_bound=None if bound is None else shortened <= bound,
        first_100ms=sum(1 for t in times if t < times[0] + 0.1),
        peak_in_flight=stats["peak_in_flight"],
        deferred=deferred,
        series=rate_series(times, BUCKET),
    )


def run_all(setup: Setup, log_dir: Path | None = None) -> list[Run]:
    specs = setup.specs()
    limits = ";".join(f"dependency.limited.{a}={s.describe()}" for a, s in specs.items())
    runs: list[Run] = []
    config = DependencyConfig(capacity=1e6, base_latency=setup.hold, max_latency=setup.hold)
    with DependencyServer(config) as server:
        env = {"JOBRUNNER_LIMITS": limits, "JOBRUNNER_DEPENDENCY_URL": server.url,
               "JOBRUNNER_MAINTENANCE_INTERVAL": "0.01", "JOBRUNNER_IDLE_POLL_MAX": "0.01",
               "JOBRUNNER_HEARTBEAT_INTERVAL": "0.5"}  # fmt: skip
        imports = ("jobrunner.lab.handlers.dependency",)
        with Stack(workers=setup.workers[0], api=False, worker_metrics=False, env=env,
                   imports=imports, log_dir=log_dir) as stack:  # fmt: skip
            for n in setup.workers:
                stack.scale(n)
                for algorithm, spec in specs.items():
                    runs.append(run_one(stack, server, algorithm, spec, setup))
    return runs


def write(runs: list[Run], setup: Setup, out: Path, elapsed: float) -> dict[str, Any]:
    rows = [{"algorithm": r.algorithm, "workers": r.workers, "t": round(i * BUCKET, 3),
             "calls_per_second": c / BUCKET}
            for r in runs for i, c in enumerate(r.series)]  # fmt: skip
    write_csv(out / "limiter_accuracy.csv", rows)
    summary = {
        "experiment": "rate limiter accuracy with 1, 2 and 4 worker processes",
        "setup": asdict(setup),
        "runs": [{k: v for k, v in asdict(r).items() if k != "series"} for r in runs],
        "delivery_jitter_allowance": DELIVERY_JITTER,
        "strict_limits_held": all(r.within_bound for r in runs if r.within_bound is not None),
        "elapsed_seconds": elapsed,
    }
    write_json(out / "limiter_accuracy.json", summary)
    algorithms = list(dict.fromkeys(r.algorithm for r in runs))
    fig, axes = figure(1, len(algorithms), (4.5 * len(algorithms), 3.8))
    specs = setup.specs()
    for ax, algorithm in zip(axes[0], algorithms, strict=True):
        for r in (r for r in runs if r.algorithm == algorithm):
            ax.plot([i * BUCKET for i in range(len(r.series))], [c / BUCKET for c in r.series],
                    label=f"{r.workers} worker(s)", lw=1)  # fmt: skip
        spec = specs[algorithm]
        if spec.algorithm != "concurrency":
            ax.axhline(spec.rate, color="black", ls=":", label="limit")
        ax.set(title=spec.describe(), xlabel="seconds", ylabel="calls per second (100 ms bins)")
        ax.legend(fontsize=7)
    save_figure(fig, out / "limiter_accuracy.png")
    return summary


@click.command()
@click.option("--full", is_flag=True, help="longer runs, up to 8 workers")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=RESULTS,
              show_default=True)  # fmt: skip
def main(full: bool, out: Path) -> None:
    """Measure every limiter with 1, 2 and 4 workers; write results/limiter_accuracy.*"""
    setup = FULL if full else SMALL
    started = time.perf_counter()
    runs = run_all(setup)
    summary = write(runs, setup, out, round(time.perf_counter() - started, 1))
    click.echo(f"{'algorithm':<16}{'workers':>8}{'limit':>30}{'achieved/s':>12}"
               f"{'max/window':>12}{'(-50ms)':>9}{'bound':>7}{'burst':>7}{'at once':>9}"
               f"{'deferred':>10}")  # fmt: skip
    for r in runs:
        click.echo(f"{r.algorithm:<16}{r.workers:>8}{r.limit:>30}{r.achieved_rate:>12}"
                   f"{r.max_in_window:>12}{r.max_in_shortened_window:>9}{r.bound!s:>7}"
                   f"{r.first_100ms:>7}{r.peak_in_flight:>9}{r.deferred:>10}")  # fmt: skip
    click.echo(f"strict limits held in every window: {summary['strict_limits_held']}")


if __name__ == "__main__":
    main()
