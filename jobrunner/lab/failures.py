"""Notebook 7: faults under load, on the naive BRPOP queue and on the reliable one.

``jobrunner.lab.chaos.runner.run_chaos`` (what ``jobrunner chaos`` runs) starts a stack of its own,
sends probe jobs at a steady rate, SIGKILLs workers and restarts Redis on a schedule, then lets
the system go quiet and reads the ledger, kept outside Redis, for what was sent, acknowledged,
completed, run twice or lost. This module runs it per queue kind and repeat, tabulates the
reports and draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from jobrunner.lab.chaos.producer import QueueKind
from jobrunner.lab.chaos.report import ChaosReport
from jobrunner.lab.chaos.runner import ChaosConfig, run_chaos
from jobrunner.lab.charts import bars_with_range

COUNTS = ("sent", "acknowledged", "completed", "duplicates", "lost", "dead", "unknown",
          "unknown_completed", "phantoms", "faults", "in_flight_at_faults",
          "recovery_seconds")  # fmt: skip
QUEUE_COLOURS = {"naive": "tab:red", "reliable": "tab:blue"}
VERDICT = {"lost": "lost (acknowledged,\nnever completed)",
           "interrupted": "runs cut short\n(worker killed mid-job)",
           "duplicates": "completed twice\n(duplicates)"}  # fmt: skip


def report_row(report: ChaosReport, **labels: Any) -> dict[str, Any]:
    """The ledger's counts of one run; ``interrupted``: handler runs that started but did not
    end ``ok`` (with probes that always succeed, as here: their worker was killed mid-job);
    and how many keyspace invariants failed."""
    counts = report.to_dict()
    return {**labels, **{name: counts[name] for name in COUNTS}, "runs": report.runs,
            "interrupted": report.runs - report.completed - report.duplicates,
            "invariant_violations": len(report.invariant_violations)}  # fmt: skip


def chaos_runs(
    config: ChaosConfig, kinds: Iterable[QueueKind] = ("naive", "reliable"), repeats: int = 1,
    log: Callable[[str], None] = print,
) -> Any:  # fmt: skip
    """``run_chaos`` with ``config`` on each queue kind, ``repeats`` times, alternating (a noisy
    machine drifts); the runner prints each fault as it strikes and the ledger's counts line."""
    import pandas as pd

    rows = []
    for repeat in range(repeats):
        for kind in kinds:
            log(f"--- {kind} queue, run {repeat + 1} of {repeats}")
            report = run_chaos(replace(config, kind=kind, name=f"{kind}-{repeat + 1}"), echo=log)
            rows.append(report_row(report, queue=kind, repeat=repeat))
    return pd.DataFrame(rows)


def plot_ledger(frame: Any) -> Any:
    """Left: per queue kind, jobs lost, handler runs cut short and jobs completed twice (mean
    over runs, whiskers min-max). Right: each reliable run's duplicates and cut-short runs
    against the jobs in flight when its faults struck (the most that can run twice)."""
    import matplotlib.pyplot as plt

    fig, (verdict, bound) = plt.subplots(1, 2, figsize=(13, 4.6),
                                         gridspec_kw={"width_ratios": [2, 1]})  # fmt: skip
    long = frame.melt(id_vars=["queue", "repeat"], value_vars=list(VERDICT), var_name="what")
    order = list(VERDICT)
    bars_with_range(verdict, long, "what", "value", "queue", order, QUEUE_COLOURS)
    verdict.set_xticks(range(len(order)), [VERDICT[k] for k in order], fontsize=8)
    grouped = long.groupby(["queue", "what"])["value"]
    means, highest = grouped.mean(), grouped.max()
    queues = list(long["queue"].unique())
    width = 0.8 / len(queues)
    for i, queue in enumerate(queues):
        for k, name in enumerate(order):
            verdict.annotate(f"{means.get((queue, name), 0.0):.3g}",
                             (k - 0.4 + width * (i + 0.5), highest.get((queue, name), 0.0)),
                             ha="center", va="bottom", fontsize=8, xytext=(0, 3),
                             textcoords="offset points")  # fmt: skip
    verdict.set(ylabel="jobs (mean of runs)",
                title=f"the ledger's verdict (of {frame['acknowledged'].mean():,.0f} "
                "acknowledged jobs per run, on average)")  # fmt: skip
    verdict.legend(title="queue", fontsize=8)
    verdict.grid(axis="y", alpha=0.3)
    reliable = frame[frame["queue"] == "reliable"].reset_index(drop=True)
    xs = range(len(reliable))
    for offset, column, colour, label in (
        (-0.27, "in_flight_at_faults", "tab:gray", "in flight when the faults struck"),
        (0.0, "interrupted", "tab:cyan", "runs cut short, run again"),
        (0.27, "duplicates", QUEUE_COLOURS["reliable"], "completed twice (duplicates)"),
    ):
        bound.bar([x + offset for x in xs], reliable[column], 0.27, color=colour, label=label)
    bound.set_xticks(list(xs), [f"run {r + 1}" for r in reliable["repeat"]])
    bound.set(ylabel="jobs", title="reliable queue: ran twice vs in flight")
    bound.legend(fontsize=8)
    bound.grid(axis="y", alpha=0.3)
    return fig
