"""Backoff strategies against an outage, live: real worker processes run jobs that call the
dependency server, which fails for a while and then recovers; each strategy is a job type of
``jobrunner.lab.handlers.dependency``. The server counts every call it receives.

The same scenario is then simulated (``backoff_sim``, the same dependency model), and the two are
compared in shape: the order of the strategies by total calls (rank correlation) and whether
full jitter beats un-jittered exponential in both.

``python -m jobrunner.lab.experiments.backoff_live [--full] [--out results]``
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click

from jobrunner.connection import async_redis
from jobrunner.dev.stack import Stack
from jobrunner.job import make_job
from jobrunner.keys import QueueKeys
from jobrunner.lab.dependency.client import DependencyServer
from jobrunner.lab.experiments.backoff_sim import STRATEGIES, Outcome, Scenario, ratios, run_all
from jobrunner.lab.experiments.output import RESULTS, figure, save_figure, write_csv, write_json
from jobrunner.queue import ReliableQueue
from jobrunner.ratelimit.measure import max_in_window, rate_series


@dataclass(frozen=True)
class LiveScenario:
    """A burst of jobs meets an outage; afterwards the dependency serves ``capacity`` calls a
    second, measured per ``window``. Small enough to run every strategy in under a minute."""

    jobs: int = 100
    capacity: float = 100.0  # successful calls per second after the outage
    window: float = 0.1  # seconds over which the dependency measures its capacity
    outage: float = 2.0  # seconds, from the moment the jobs are enqueued
    base: float = 0.05  # backoff base and constant delay, seconds
    cap: float = 1.0
    max_retries: int = 100_000  # never dead: the experiment waits for every job to succeed
    workers: int = 2
    timeout: float = 120.0  # per strategy

    def simulated(self) -> Scenario:
        """The same scenario for the discrete-event simulation."""
        return Scenario(clients=self.jobs, arrival_spread=0.05, outage=(0.0, self.outage),
                        capacity=self.capacity, window=self.window, base=self.base, cap=self.cap,
                        constant=self.base, base_latency=0.005)  # fmt: skip


SMALL = LiveScenario()
FULL = LiveScenario(jobs=500, capacity=250.0, outage=5.0, cap=2.0, workers=4,
                    timeout=600.0)  # fmt: skip
FAST_LOOPS = {"JOBRUNNER_MAINTENANCE_INTERVAL": "0.02", "JOBRUNNER_IDLE_POLL_MAX": "0.01",
              "JOBRUNNER_HEARTBEAT_INTERVAL": "0.5"}  # fmt: skip


def run_strategy(stack: Stack, server: DependencyServer, name: str,
                 scenario: LiveScenario) -> Outcome:  # fmt: skip
    """Reset the dependency (its outage starts now), enqueue the jobs, wait for every one."""
    server.reset(replace(server.config, outages=((0.0, scenario.outage),)))
    started = server.stats()["started"]

    async def enqueue_and_wait() -> list[float]:
        redis = async_redis(stack.redis_url)
        try:
            queue = ReliableQueue(redis)
            kind = f"dependency.call.{name}"
            jobs = [make_job(kind, max_retries=scenario.max_retries) for _ in range(scenario.jobs)]
            await queue.enqueue_jobs(jobs)
            keys = QueueKeys("default")
            deadline = time.monotonic() + scenario.timeout
            while True:
                async with redis.pipeline(transaction=False) as pipe:
                    for job in jobs:
                        pipe.hmget(keys.job(job.id), "s", "fi")
                    states = await pipe.execute()
                if all(s == b"done" for s, _ in states):
                    return [int(f) / 1000 for _, f in states]
                if any(s == b"dead" for s, _ in states):
                    raise RuntimeError(f"{name}: a job went dead; the experiment needs them all")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: jobs still unfinished after {scenario.timeout}s")
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()

    finished = asyncio.run(enqueue_and_wait())
    stats = server.stats(times=True)
    times = [t - started for t in stats["times"]]
    return Outcome(
        strategy=name,
        total_calls=stats["total"],
        completion_time=round(max(finished) - started, 3),
        peak_rate=max_in_window(times, 1.0),
        calls_per_client=round(stats["total"] / scenario.jobs, 3),
        unfinished=0,
        outcomes=stats["outcomes"],
        series=rate_series(times, 1.0, start=0.0),
        ok_series=[],
    )


def run_live(scenario: LiveScenario, strategies: tuple[str, ...] = STRATEGIES,
             log_dir: Path | None = None) -> dict[str, Outcome]:  # fmt: skip
    env = {**FAST_LOOPS, "JOBRUNNER_DEPENDENCY_BACKOFF_BASE": str(scenario.base),
           "JOBRUNNER_DEPENDENCY_BACKOFF_CAP": str(scenario.cap),
           "JOBRUNNER_DEPENDENCY_MAX_RETRIES": "100000"}  # fmt: skip
    from jobrunner.lab.dependency.model import DependencyConfig

    config = DependencyConfig(capacity=scenario.capacity, window=scenario.window,
                              base_latency=0.005)  # fmt: skip
    results: dict[str, Outcome] = {}
    with DependencyServer(config) as server:
        env["JOBRUNNER_DEPENDENCY_URL"] = server.url
        with Stack(workers=scenario.workers, api=False,
                   imports=("jobrunner.lab.handlers.dependency",), env=env, log_dir=log_dir,
                   worker_metrics=False) as stack:  # fmt: skip
            for name in strategies:
                results[name] = run_strategy(stack, server, name, scenario)
    return results


def rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman's rho (average ranks for ties)."""

    def ranks(xs: list[float]) -> list[float]:
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        out = [0.0] * len(xs)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    mean = (len(a) - 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean) ** 2 for x in ra)
    var_b = sum((y - mean) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5 if var_a and var_b else 0.0


def agreement(live: dict[str, Outcome], sim: dict[str, Outcome]) -> dict[str, Any]:
    names = [n for n in live if n in sim]
    rho = rank_correlation(
        [live[n].total_calls for n in names], [sim[n].total_calls for n in names]
    )
    live_ratio, sim_ratio = ratios(live), ratios(sim)
    jitter_wins = {
        "live": live_ratio["full_jitter"] < 1.0,
        "simulation": sim_ratio["full_jitter"] < 1.0,
    }
    return {
        "strategies": names,
        "total_calls_rank_correlation": round(rho, 3),
        "full_jitter_fewer_calls_than_exponential": jitter_wins,
        "total_calls_vs_exponential": {"live": live_ratio, "simulation": sim_ratio},
        "agree_in_shape": rho >= 0.7 and all(jitter_wins.values()),
    }


def write(live: dict[str, Outcome], sim: dict[str, Outcome], scenario: LiveScenario,
          out: Path, elapsed: float) -> dict[str, Any]:  # fmt: skip
    rows = []
    for source, results in (("live", live), ("simulation", sim)):
        for name, r in results.items():
            for t, calls in enumerate(r.series):
                rows.append({"source": source, "strategy": name, "t": t, "calls": calls})
    write_csv(out / "backoff_live.csv", rows)
    summary = {
        "experiment": "backoff strategies against an outage: live stack vs simulation",
        "scenario": asdict(scenario),
        "live": {n: r.summary() for n, r in live.items()},
        "simulation": {n: r.summary() for n, r in sim.items()},
        "agreement": agreement(live, sim),
        "elapsed_seconds": elapsed,
    }
    write_json(out / "backoff_live.json", summary)
    fig, axes = figure(1, 3, (17, 4.5))
    for ax, (source, results) in zip(axes[0][:2], (("live", live), ("simulation", sim)),
                                     strict=True):  # fmt: skip
        for name, r in results.items():
            ax.plot(range(len(r.series)), r.series, label=name, lw=1.2)
        ax.axvspan(0, scenario.outage, color="grey", alpha=0.15, label="outage")
        ax.axhline(scenario.capacity, color="black", ls=":", lw=1, label="capacity")
        ax.set(yscale="log", xlabel="seconds", ylabel="calls per second",
               title=f"{source}: calls on the dependency")  # fmt: skip
        ax.legend(fontsize=7)
    bars = axes[0][2]
    names = list(live)
    width = 0.4
    xs = range(len(names))
    bars.bar([x - width / 2 for x in xs], [live[n].total_calls for n in names], width,
             label="live")  # fmt: skip
    bars.bar([x + width / 2 for x in xs], [sim[n].total_calls for n in names], width,
             label="simulation")  # fmt: skip
    bars.set_xticks(list(xs), names, rotation=35, fontsize=8)
    bars.set(yscale="log", ylabel="total calls", title="total calls: live vs simulation")
    bars.legend()
    save_figure(fig, out / "backoff_live.png")
    return summary


@click.command()
@click.option("--full", is_flag=True, help=f"{FULL.jobs} jobs instead of {SMALL.jobs}")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=RESULTS,
              show_default=True)  # fmt: skip
def main(full: bool, out: Path) -> None:
    """Run every strategy live and simulated; write results/backoff_live.{csv,json,png}."""
    scenario = FULL if full else SMALL
    started = time.perf_counter()
    live = run_live(scenario)
    elapsed = round(time.perf_counter() - started, 1)
    sim = run_all(scenario.simulated(), seed=0)
    summary = write(live, sim, scenario, out, elapsed)
    click.echo(f"{scenario.jobs} jobs, outage {scenario.outage}s, capacity {scenario.capacity:g}/s,"
               f" {scenario.workers} workers: live run took {elapsed}s")  # fmt: skip
    click.echo(f"{'strategy':<22}{'live calls':>11}{'sim calls':>11}{'live done s':>13}"
               f"{'sim done s':>12}")  # fmt: skip
    for name in live:
        click.echo(f"{name:<22}{live[name].total_calls:>11}{sim[name].total_calls:>11}"
                   f"{live[name].completion_time:>13}{sim[name].completion_time:>12}")  # fmt: skip
    click.echo(f"agreement: {summary['agreement']}")


if __name__ == "__main__":
    main()
