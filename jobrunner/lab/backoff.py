"""Notebook 5: backoff strategies against an outage, simulated over several seeds and run live.

The experiments are ``jobrunner.lab.experiments.backoff_sim`` (discrete-event) and ``backoff_live``
(jobs on the real stack calling the dependency server); this module repeats them, puts their
outcomes in tables (one row per strategy and run) and draws the comparisons.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from jobrunner.lab import stats
from jobrunner.lab.charts import bars_with_range, mean_with_range
from jobrunner.lab.experiments import backoff_live, backoff_sim
from jobrunner.lab.experiments.backoff_live import LiveScenario
from jobrunner.lab.experiments.backoff_sim import STRATEGIES, Outcome, Scenario
from jobrunner.lab.progress import each_call, off_the_loop

COLOURS = {"none": "tab:gray", "constant": "tab:brown", "exponential": "tab:red",
           "full_jitter": "tab:blue", "equal_jitter": "tab:green",
           "decorrelated_jitter": "tab:purple"}  # fmt: skip
SOURCE_COLOURS = {"live": "tab:orange", "simulated": "tab:blue"}
COLUMNS = {"total_calls": "total calls", "x_exponential": "x exponential",
           "done_after_s": "all done after (s)"}  # fmt: skip


def outcome_rows(outcomes: Mapping[str, Outcome], **labels: Any) -> list[dict[str, Any]]:
    """One row per strategy: total calls, relative to exponential's, time until all succeeded."""
    ratios = backoff_sim.ratios(dict(outcomes))
    return [{**labels, "strategy": name, "total_calls": o.total_calls,
             "x_exponential": ratios[name], "done_after_s": o.completion_time,
             "peak_calls_per_s": o.peak_rate, "unfinished": o.unfinished}
            for name, o in outcomes.items()]  # fmt: skip


def describe(outcome: Outcome) -> str:
    return (f"{outcome.strategy:<20}{outcome.total_calls:>10,} calls, all done after "
            f"{outcome.completion_time:6.1f}s")  # fmt: skip


def simulate_seeds(
    scenario: Scenario, seeds: Iterable[int], strategies: Sequence[str] = STRATEGIES,
    log: Callable[[str], None] = print,
) -> tuple[Any, dict[int, dict[str, Outcome]]]:  # fmt: skip
    """Every strategy under each seed (the jitter's and the dependency's random draws): a table
    of outcomes and, per seed, the outcomes themselves (with their calls-over-time series)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    runs: dict[int, dict[str, Outcome]] = {}
    for seed in seeds:
        started = time.monotonic()
        runs[seed] = {name: backoff_sim.simulate(name, scenario, seed) for name in strategies}
        rows += outcome_rows(runs[seed], seed=seed)
        calls = sum(o.total_calls for o in runs[seed].values())
        log(f"seed {seed}: {calls:,} calls simulated in {time.monotonic() - started:.1f}s")
    return pd.DataFrame(rows), runs


def sweep(
    scenario: Scenario, seeds: Iterable[int], spreads: Iterable[float],
    log: Callable[[str], None] = print,
) -> Any:  # fmt: skip
    """``backoff_sim.sensitivity`` under each seed: total calls relative to exponential as the
    clients' arrival spreads out, one row per (seed, spread, strategy)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for seed in seeds:
        started = time.monotonic()
        for result in backoff_sim.sensitivity(scenario, seed, tuple(spreads)):
            spread_s = result.pop("arrival_spread")
            rows += [{"seed": seed, "arrival_spread": spread_s, "strategy": name,
                      "x_exponential": ratio} for name, ratio in result.items()]  # fmt: skip
        log(f"seed {seed}: swept in {time.monotonic() - started:.1f}s")
    return pd.DataFrame(rows)


def run_live(
    scenario: LiveScenario, repeats: int, log: Callable[[str], None] = print
) -> tuple[Any, list[dict[str, Outcome]]]:
    """``backoff_live.run_live`` ``repeats`` times (each on a fresh stack and dependency
    server), one progress line per strategy: a table of outcomes and each run's outcomes."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Outcome]] = []
    for repeat in range(repeats):
        log(f"live run {repeat + 1} of {repeats}")
        with each_call(backoff_live, "run_strategy", describe, log):
            outcomes = off_the_loop(backoff_live.run_live, scenario)
        rows += outcome_rows(outcomes, repeat=repeat)
        runs.append(outcomes)
    return pd.DataFrame(rows), runs


def table(frames: Mapping[str, Any]) -> Any:
    """Per strategy, for each source (e.g. live, simulated): total calls, the same relative to
    exponential, and the time until all succeeded; the mean over the runs, with the lowest and
    highest run in brackets when they differ."""
    import pandas as pd

    digits = {"total_calls": 0, "x_exponential": 2, "done_after_s": 1}
    parts = []
    for source, frame in frames.items():
        part = stats.table(frame, "strategy", digits)
        parts.append(part.rename(columns={k: f"{source}: {v}" for k, v in COLUMNS.items()}))
    return pd.concat(parts, axis=1)


def _over_time(ax: Any, outcomes: Mapping[str, Outcome], bucket: float, outage: float,
               capacity: float, title: str, until: float | None = None) -> None:  # fmt: skip
    """Calls per second, one line per strategy; the x axis stops at ``until`` seconds (default:
    when the slowest strategy was done), and the strategies still running there say so."""
    for name, o in outcomes.items():
        ax.plot([i * bucket for i in range(len(o.series))], [c / bucket for c in o.series],
                color=COLOURS.get(name), lw=1.1, label=name)  # fmt: skip
    ax.axvspan(0, outage, color="grey", alpha=0.15, label="outage")
    ax.axhline(capacity, color="black", ls=":", lw=1, label="capacity after the outage")
    finished = [o.completion_time for o in outcomes.values() if math.isfinite(o.completion_time)]
    right = until or max(finished, default=outage) * 1.03 + bucket
    later = [f"{name} until {o.completion_time:.0f} s" for name, o in outcomes.items()
             if o.completion_time > right]  # fmt: skip
    xlabel = "seconds since the outage began"
    if later:
        xlabel += f" (off the chart: {', '.join(later)})"
    ax.set(yscale="log", xlim=(0, right), title=title, xlabel=xlabel,
           ylabel=f"calls per second ({bucket:g} s bins)")  # fmt: skip
    ax.legend(fontsize=7, ncol=2)


def _strategy_bars(ax: Any, frames: Mapping[str, Any], value: str, order: Sequence[str]) -> None:
    """Per strategy, one bar per source: the mean over runs, whiskers from lowest to highest."""
    import pandas as pd

    both = pd.concat([frame.assign(source=source) for source, frame in frames.items()])
    bars_with_range(ax, both, "strategy", value, "source", order, SOURCE_COLOURS)
    ax.set_xticks(range(len(order)), order, rotation=30, fontsize=8, ha="right")


def plot_simulation(
    frame: Any, outcomes: Mapping[str, Outcome], scenario: Scenario, until: float | None = None
) -> Any:
    """Calls over time (one seed, up to ``until`` seconds), total calls and time to drain
    (every seed: min-max)."""
    import matplotlib.pyplot as plt

    fig, (over_time, totals, finish) = plt.subplots(1, 3, figsize=(16, 4.6))
    _over_time(over_time, outcomes, scenario.bucket, scenario.outage[1], scenario.capacity,
               f"{scenario.clients:,} simulated clients: calls on the dependency",
               until)  # fmt: skip
    order = list(outcomes)
    seeds = frame["seed"].nunique()
    _strategy_bars(totals, {"simulated": frame}, "total_calls", order)
    totals.set(yscale="log", ylabel="total calls (log)",
               title=f"work: total calls (whiskers: min-max of {seeds} seeds)")  # fmt: skip
    ratios = stats.spread(frame, ["strategy"], "x_exponential").set_index("strategy")
    calls = stats.spread(frame, ["strategy"], "total_calls").set_index("strategy")
    for k, name in enumerate(order):
        totals.annotate(f"x{ratios.loc[name, 'mean']:.2f}", (k, calls.loc[name, "max"]),
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
    _strategy_bars(finish, {"simulated": frame}, "done_after_s", order)
    finish.set(ylabel="seconds", title="time until every client succeeded")
    for ax in (totals, finish):
        ax.grid(axis="y", alpha=0.3)
    return fig


def plot_sweep(frame: Any, live: Any | None = None) -> Any:
    """Total calls relative to exponential against the clients' arrival spread (min-max over
    seeds); with ``live``, the live run's full-jitter ratio as a band."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.6))
    mean_with_range(ax, frame, "arrival_spread", "x_exponential", "strategy", COLOURS)
    ax.axhline(1.0, color="black", lw=1, ls=":")
    if live is not None:
        jitter = live[live["strategy"] == "full_jitter"]["x_exponential"]
        low, high = float(jitter.min()), float(jitter.max())
        ax.axhspan(low - 0.005, high + 0.005, color=COLOURS["full_jitter"], alpha=0.15,
                   label=f"full jitter, live ({low:.2f}-{high:.2f})")  # fmt: skip
    ax.set(xscale="log", xlabel="clients' arrival spread (seconds, log scale)",
           ylabel="total calls / exponential's",
           title="jitter saves work only while the clients are synchronised")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def plot_live_vs_simulated(
    live: Any, live_outcomes: Mapping[str, Outcome], simulated: Any,
    sim_outcomes: Mapping[str, Outcome], scenario: LiveScenario,
) -> Any:  # fmt: skip
    """Calls over time live and simulated (one run each), then total calls relative to
    exponential and time to drain, side by side (whiskers: min-max over runs)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 8.6))
    (live_ax, sim_ax), (work, finish) = axes
    twin = scenario.simulated()
    _over_time(live_ax, live_outcomes, 1.0, scenario.outage, scenario.capacity,
               f"live: {scenario.jobs} jobs, {scenario.workers} workers")  # fmt: skip
    _over_time(sim_ax, sim_outcomes, twin.bucket, scenario.outage, scenario.capacity,
               f"simulated: the same scenario ({scenario.jobs} clients)")  # fmt: skip
    right = max(live_ax.get_xlim()[1], sim_ax.get_xlim()[1])
    top = max(live_ax.get_ylim()[1], sim_ax.get_ylim()[1])
    for ax in (live_ax, sim_ax):
        ax.set_xlim(0, right)
        ax.set_ylim(top=top)
    order = list(live_outcomes)
    frames = {"live": live, "simulated": simulated}
    _strategy_bars(work, frames, "x_exponential", order)
    work.axhline(1.0, color="black", lw=1, ls=":")
    work.set(yscale="log", ylabel="total calls / exponential's (log)",
             title="work relative to exponential backoff")  # fmt: skip
    _strategy_bars(finish, frames, "done_after_s", order)
    finish.set(ylabel="seconds", title="time until every job (client) succeeded")
    for ax in (work, finish):
        ax.grid(axis="y", alpha=0.3, which="both")
        ax.legend(fontsize=8, title="whiskers: min-max of runs", title_fontsize=7)
    return fig
