"""Notebook 6: rate limiters measured where the calls land, and backpressure at the API.

The experiments are ``jobrunner.lab.experiments.limiter_accuracy`` (each limit with 1, 2, 4...
worker processes, every call stamped by the dependency server) and ``backpressure`` (an
open-loop producer faster than the worker, with and without ``JOBRUNNER_MAX_QUEUE_DEPTH``).
This module repeats them with a progress line per run, tabulates and plots them.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobrunner.lab.charts import bars_with_range
from jobrunner.lab.experiments import backpressure, limiter_accuracy
from jobrunner.lab.experiments.limiter_accuracy import BUCKET, Run, Setup
from jobrunner.lab.figures import keeping_backend
from jobrunner.lab.progress import each_call, off_the_loop

WORKER_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]


def describe(run: Run) -> str:
    bound = "no bound" if run.bound is None else f"bound {run.bound}"
    return (f"{run.algorithm:<15}{run.workers} worker(s): {run.achieved_rate:6.1f} calls/s, "
            f"most in a window {run.max_in_window} ({bound}), most at once "
            f"{run.peak_in_flight}")  # fmt: skip


def nominal_rate(run: Run, setup: Setup) -> float:
    """The rate a limit allows: its rate, or for a concurrency limit, slots / call time."""
    if run.configured_rate is not None:
        return run.configured_rate
    return setup.specs()[run.algorithm].limit / setup.hold


def limiter_row(run: Run, setup: Setup, **labels: Any) -> dict[str, Any]:
    rate = nominal_rate(run, setup)
    return {**labels, "algorithm": run.algorithm, "limit": run.limit, "workers": run.workers,
            "jobs": run.jobs, "achieved_per_s": run.achieved_rate, "limit_per_s": rate,
            "achieved_share": round(run.achieved_rate / rate, 3),
            "first_100ms": run.first_100ms, "max_in_window": run.max_in_window,
            "max_in_window_less_50ms": run.max_in_shortened_window,
            "bound": math.nan if run.bound is None else run.bound,
            "most_at_once": run.peak_in_flight, "deferred": run.deferred}  # fmt: skip


def limiter_runs(
    setup: Setup, repeats: int, log: Callable[[str], None] = print
) -> tuple[Any, list[tuple[int, Run]]]:
    """``limiter_accuracy.run_all`` ``repeats`` times (each on a fresh stack): a table, one row
    per (repeat, limit, workers), and the runs with their calls-over-time series."""
    import pandas as pd

    runs: list[tuple[int, Run]] = []
    for repeat in range(repeats):
        log(f"repeat {repeat + 1} of {repeats}")
        with each_call(limiter_accuracy, "run_one", describe, log):
            runs += [(repeat, run) for run in off_the_loop(limiter_accuracy.run_all, setup)]
    rows = [limiter_row(run, setup, repeat=repeat) for repeat, run in runs]
    return pd.DataFrame(rows), runs


def trailing(
    series: Sequence[int], bucket: float, window: float = 1.0
) -> tuple[list[float], list[int]]:
    """From counts per ``bucket``: at the end of each bucket, the count in the ``window``
    seconds before it (what a sliding window sees), with the bucket ends' times."""
    width = max(1, round(window / bucket))
    ends: list[float] = []
    counts: list[int] = []
    total = 0
    for i, count in enumerate(series):
        total += count - (series[i - width] if i >= width else 0)
        ends.append(round((i + 1) * bucket, 9))
        counts.append(total)
    return ends, counts


def plot_limiter_rates(runs: Sequence[tuple[int, Run]], setup: Setup, repeat: int = 0) -> Any:
    """Per limit: the calls the dependency received in the last second, over time, one line
    per worker count; the limit and what the algorithm guarantees in any second."""
    import matplotlib.pyplot as plt

    specs = setup.specs()
    fig, axes = plt.subplots(1, len(specs), figsize=(4.3 * len(specs), 4.0), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, (algorithm, spec) in zip(axes[0], specs.items(), strict=True):
        chosen = [r for k, r in runs if k == repeat and r.algorithm == algorithm]
        for colour, run in zip(WORKER_COLOURS, chosen, strict=False):
            ends, counts = trailing(run.series, BUCKET, spec.period)
            ax.plot(ends, counts, color=colour, lw=1.1, label=f"{run.workers} worker(s)")
        if spec.algorithm == "concurrency":
            ax.axhline(spec.limit / setup.hold, color="black", ls=":", lw=1,
                       label=f"{spec.limit} at once x {setup.hold * 1000:g} ms calls")  # fmt: skip
        else:
            ax.axhline(spec.limit, color="black", ls=":", lw=1, label="limit")
            bound = spec.bound(spec.period)
            if bound is not None and bound != spec.limit:
                ax.axhline(bound, color="tab:red", ls="--", lw=1, label=f"guaranteed ({bound})")
        ax.set(title=spec.describe(), xlabel="seconds since the first call")
        ax.legend(fontsize=7, loc="lower center")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("calls in the last second (at the dependency)")
    return fig


def plot_limiter_bounds(frame: Any) -> Any:
    """Left: the rate reached, as a share of the limit. Right: the most calls in any window
    of the limit's period against the guaranteed bound (rate limits only). Whiskers: min-max
    over repeats."""
    import matplotlib.pyplot as plt

    fig, (share, most) = plt.subplots(1, 2, figsize=(13, 4.4))
    colours = {str(w): c for w, c in zip(sorted(frame["workers"].unique()), WORKER_COLOURS,
                                         strict=False)}  # fmt: skip
    frame = frame.assign(workers=frame["workers"].astype(str))
    order = list(frame["algorithm"].unique())
    bars_with_range(share, frame, "algorithm", "achieved_share", "workers", order, colours)
    share.axhline(1.0, color="black", ls=":", lw=1)
    share.set(ylabel="achieved rate / limit", title="rate reached (concurrency: of slots / call "
              "time)")  # fmt: skip
    rated = frame[frame["bound"].notna() | (frame["algorithm"] == "sliding_window")]
    rated_order = [a for a in order if a in set(rated["algorithm"])]
    bars_with_range(most, rated, "algorithm", "max_in_window", "workers", rated_order, colours)
    for k, algorithm in enumerate(rated_order):
        rows = rated[rated["algorithm"] == algorithm]
        bound = rows["bound"].iloc[0]
        if not math.isnan(bound):
            most.hlines(bound, k - 0.45, k + 0.45, color="black", lw=2,
                        label="guaranteed bound" if k == 0 else None)  # fmt: skip
        else:
            most.annotate("no bound for\na sliding window", (k, rows["max_in_window"].max()),
                          ha="center", va="bottom", fontsize=7, xytext=(0, 4),
                          textcoords="offset points")  # fmt: skip
    most.set(ylabel="most calls in any window of the limit's period",
             title="at the dependency: the busiest window")  # fmt: skip
    most.set_ylim(top=most.get_ylim()[1] * 1.12)
    for ax in (share, most):
        ax.legend(fontsize=7, title="workers", title_fontsize=7, loc="best")
        ax.grid(axis="y", alpha=0.3)
    return fig


# ---- backpressure -------------------------------------------------------------------------


def backpressure_runs(
    setup: backpressure.Setup, log: Callable[[str], None] = print
) -> list[backpressure.Run]:
    """``backpressure.run_one`` for each repeat, unbounded then bounded (alternating, as the
    experiment does), each on a fresh stack; the workers' logs are removed afterwards."""
    logs = Path(tempfile.mkdtemp(prefix="jobrunner-backpressure-"))
    runs = []
    try:
        for repeat in range(setup.repeats):
            for kind in backpressure.RUNS:
                run = backpressure.run_one(setup, kind, repeat, logs)
                s = run.summary
                log(f"{kind:<10} repeat {repeat + 1}: {s['accepted']} accepted, "
                    f"{s['rejected_429']} refused (429), most waiting {s['max_waiting']}, "
                    f"queue empty after {s['queue_empty_after_s']:.1f}s")  # fmt: skip
                runs.append(run)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    return runs


def backpressure_table(runs: Sequence[backpressure.Run]) -> Any:
    """One row per run: what the API answered, the backlog, Redis memory, job latency."""
    import pandas as pd

    rows = []
    for run in runs:
        s = run.summary
        e2e = s["e2e_ms"]
        rows.append({
            "run": run.kind, "repeat": run.repeat, "requests": s["requests"],
            "accepted": s["accepted"], "refused_429": s["rejected_429"],
            "most_waiting": s["max_waiting"],
            "redis_peak_mib": s["redis_used_memory_peak_above_empty_mib"],
            "e2e_p50_s": round(e2e.get("p50", math.nan) / 1000, 2),
            "e2e_max_s": round(e2e.get("max", math.nan) / 1000, 2),
            "latency_growth_s_per_s": s["e2e_growth_s_per_s_second_half"],
            "drained_per_s": s["drain_rate_jobs_per_s"],
            "queue_empty_after_s": s["queue_empty_after_s"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def plot_backpressure(runs: Sequence[backpressure.Run], setup: backpressure.Setup,
                      directory: Path | str, name: str) -> Path:  # fmt: skip
    """The experiment's own four panels (depth, Redis memory, latency, what the API answered),
    written to ``<directory>/<name>.png``."""
    with keeping_backend():
        return backpressure.plot(list(runs), setup, Path(directory) / f"{name}.png")
