"""Backoff strategies against an outage, as a discrete-event simulation.

Many clients each need one successful call to the dependency (``jobrunner.lab.dependency.model``,
the same model the live server runs). The dependency is down for a while, then recovers with a
capacity per second. Each failed call is retried after the strategy's delay. Measured per
strategy: total calls (work amplification), time until every client succeeded, the peak call
rate, and calls per second over time. Deterministic under a seed: one ``random.Random`` drives
the jitter, another the dependency.

The reference result is the AWS Architecture Blog's "Exponential Backoff And Jitter" (Marc
Brooker, 2015): full and equal jitter cut the total work of un-jittered exponential backoff;
decorrelated jitter is close to them.

``python -m jobrunner.lab.experiments.backoff_sim [--full] [--seed N] [--out results]``
"""

from __future__ import annotations

import heapq
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import click

from jobrunner.backoff import Backoff, Constant, backoff_from_name
from jobrunner.lab.dependency.model import DependencyConfig, DependencyModel
from jobrunner.lab.experiments.output import RESULTS, figure, save_figure, write_csv, write_json
from jobrunner.ratelimit.measure import max_in_window, rate_series

STRATEGIES = ("none", "constant", "exponential", "full_jitter", "equal_jitter",
              "decorrelated_jitter")  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    """The standard scenario: a burst of 1,000 clients (within 0.1 s) meets a 10-second outage;
    afterwards the dependency serves 200 calls a second. ``arrival_spread`` says how
    synchronised the clients are; the sensitivity sweep varies it."""

    clients: int = 1000
    arrival_spread: float = 0.1  # clients start uniformly over [0, arrival_spread) seconds
    outage: tuple[float, float] = (0.0, 10.0)  # [start, end) seconds
    capacity: float = 200.0  # successful calls per second once it is up
    window: float = 0.1  # seconds over which the dependency measures its capacity
    base_latency: float = 0.02  # seconds for an answer, unloaded (a failure answers as fast)
    max_latency: float = 0.5
    error_rate: float = 0.0
    base: float = 0.1  # backoff base (seconds); the constant strategy waits `constant` instead
    cap: float = 10.0
    constant: float = 1.0
    horizon: float = 3600.0  # stop there, counting the clients still unfinished
    bucket: float = 1.0  # seconds per point of the calls-over-time series

    def dependency(self) -> DependencyConfig:
        return DependencyConfig(capacity=self.capacity, base_latency=self.base_latency,
                                max_latency=self.max_latency, error_rate=self.error_rate,
                                outages=(self.outage,), window=self.window)  # fmt: skip

    def strategy(self, name: str, rng: random.Random) -> Backoff:
        if name == "none":
            return Constant(base=0.0, cap=0.0)
        if name == "constant":
            return Constant(base=self.constant, cap=self.constant)
        return backoff_from_name(name, base=self.base, cap=self.cap, rng=rng)


@dataclass
class Outcome:
    strategy: str
    total_calls: int
    completion_time: float  # seconds from the start until the last client succeeded
    peak_rate: int  # most calls in any one-second window
    calls_per_client: float
    unfinished: int
    outcomes: dict[str, int]
    series: list[int] = field(repr=False)  # calls per bucket
    ok_series: list[int] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        del out["series"], out["ok_series"]
        return out


def simulate(name: str, scenario: Scenario, seed: int = 0) -> Outcome:
    """Run one strategy; the same (name, scenario, seed) always gives the same outcome."""
    rng = random.Random(seed)
    backoff = scenario.strategy(name, rng)
    dependency = DependencyModel(scenario.dependency(), rng=random.Random(seed + 1))
    arrivals = random.Random(seed + 2)
    # (time, tie-break, client, attempt, previous delay)
    events: list[tuple[float, int, int, int, float | None]] = [
        (arrivals.uniform(0, scenario.arrival_spread), c, c, 1, None)
        for c in range(scenario.clients)
    ]
    heapq.heapify(events)
    seq = scenario.clients
    finished_at: list[float] = []
    ok_times: list[float] = []
    while events:
        now, _, client, attempt, previous = heapq.heappop(events)
        if now > scenario.horizon:
            heapq.heappush(events, (now, 0, client, attempt, previous))
            break
        result = dependency.call(now)
        answered = now + result.latency
        if result.ok:
            finished_at.append(answered)
            ok_times.append(now)
            continue
        delay = backoff.delay(attempt, previous)
        seq += 1
        heapq.heappush(events, (answered + delay, seq, client, attempt + 1, delay))
    times = dependency.times
    return Outcome(
        strategy=name,
        total_calls=len(times),
        completion_time=round(max(finished_at, default=math.inf), 3),
        peak_rate=max_in_window(times, 1.0),
        calls_per_client=round(len(times) / scenario.clients, 3),
        unfinished=len(events),
        outcomes=dict(dependency.outcomes),
        series=rate_series(times, scenario.bucket, start=0.0),
        ok_series=rate_series(ok_times, scenario.bucket, start=0.0),
    )


def run_all(scenario: Scenario, seed: int = 0,
            strategies: tuple[str, ...] = STRATEGIES) -> dict[str, Outcome]:  # fmt: skip
    return {name: simulate(name, scenario, seed) for name in strategies}


SPREADS = (0.1, 0.5, 1.0, 2.0, 5.0)


def sensitivity(scenario: Scenario, seed: int = 0,
                spreads: tuple[float, ...] = SPREADS) -> list[dict[str, Any]]:  # fmt: skip
    """Total calls relative to exponential as the clients' arrival spreads out (no "none")."""
    rows = []
    for spread in spreads:
        results = run_all(replace(scenario, arrival_spread=spread), seed, STRATEGIES[1:])
        rows.append({"arrival_spread": spread, **ratios(results)})
    return rows


def ratios(results: dict[str, Outcome]) -> dict[str, float]:
    """Each strategy's total calls relative to un-jittered exponential backoff."""
    reference = results["exponential"].total_calls
    return {name: round(r.total_calls / reference, 3) for name, r in results.items()}


SMALL = Scenario()
FULL = replace(Scenario(), clients=5000, capacity=1000.0)


def write_results(results: dict[str, Outcome], scenario: Scenario, seed: int, out: Path,
                  name: str = "backoff_sim", elapsed: float | None = None,
                  sweep: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    rows = []
    for strategy, r in results.items():
        ok_series = r.ok_series + [0] * (len(r.series) - len(r.ok_series))
        for i, (calls, ok) in enumerate(zip(r.series, ok_series, strict=True)):
            rows.append({"strategy": strategy, "t": i * scenario.bucket, "calls": calls, "ok": ok})
    write_csv(out / f"{name}.csv", rows)
    summary = {
        "experiment": "backoff strategies against an outage (discrete-event simulation)",
        "scenario": asdict(scenario),
        "seed": seed,
        "strategies": {s: r.summary() for s, r in results.items()},
        "total_calls_vs_exponential": ratios(results),
        "sensitivity_total_calls_vs_exponential_by_arrival_spread": sweep or [],
        "elapsed_seconds": elapsed,
    }
    write_json(out / f"{name}.json", summary)
    plot(results, scenario, out / f"{name}.png")
    return summary


def plot(results: dict[str, Outcome], scenario: Scenario, path: Path,
         title: str = "simulation") -> Path:  # fmt: skip
    fig, axes = figure(1, 3, (16, 4.5))
    over_time, totals, finish = axes[0]
    for strategy, r in results.items():
        xs = [i * scenario.bucket for i in range(len(r.series))]
        over_time.plot(xs, [c / scenario.bucket for c in r.series], label=strategy, lw=1.2)
    over_time.axvspan(*scenario.outage, color="grey", alpha=0.15, label="outage")
    over_time.axhline(scenario.capacity, color="black", ls=":", lw=1, label="capacity")
    over_time.set(yscale="log", xlabel="seconds", ylabel="calls per second",
                  title=f"calls on the dependency over time ({title})")  # fmt: skip
    over_time.set_xlim(
        0,
        min(
            scenario.horizon,
            max(r.completion_time for r in results.values() if math.isfinite(r.completion_time))
            * 1.05,
        ),
    )
    over_time.legend(fontsize=7)
    names = list(results)
    totals.bar(names, [results[n].total_calls for n in names], color="tab:blue")
    totals.set(yscale="log", ylabel="total calls", title="work: total calls (log)")
    finish.bar(names, [results[n].completion_time for n in names], color="tab:orange")
    finish.set(ylabel="seconds", title="time until every client succeeded")
    for ax in (totals, finish):
        ax.tick_params(axis="x", rotation=35, labelsize=8)
    return save_figure(fig, path)


@click.command()
@click.option("--full", is_flag=True, help=f"{FULL.clients} clients instead of {SMALL.clients}")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=RESULTS,
              show_default=True)  # fmt: skip
def main(full: bool, seed: int, out: Path) -> None:
    """Simulate every strategy; write results/backoff_sim.{csv,json,png}."""
    scenario = FULL if full else SMALL
    started = time.perf_counter()
    results = run_all(scenario, seed)
    elapsed = round(time.perf_counter() - started, 2)
    sweep = sensitivity(scenario, seed)
    summary = write_results(results, scenario, seed, out, elapsed=elapsed, sweep=sweep)
    click.echo(f"{scenario.clients} clients, outage {scenario.outage}, capacity "
               f"{scenario.capacity:g}/s, seed {seed}: simulated in {elapsed}s")  # fmt: skip
    click.echo(f"{'strategy':<22}{'calls':>10}{'x exp':>8}{'calls/client':>14}"
               f"{'done at s':>11}{'peak/s':>9}")  # fmt: skip
    for name, r in results.items():
        click.echo(f"{name:<22}{r.total_calls:>10}{summary['total_calls_vs_exponential'][name]:>8}"
                   f"{r.calls_per_client:>14}{r.completion_time:>11}{r.peak_rate:>9}")  # fmt: skip
    click.echo("total calls vs exponential as the clients' arrival spreads out:")
    for row in sweep:
        click.echo("  " + ", ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
