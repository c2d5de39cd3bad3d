"""The figures the README and docs/performance.md quote are the committed results' own: re-run
a benchmark and forget the prose, and this fails instead of the text misleading a reader."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
README = (ROOT / "README.md").read_text()
PERFORMANCE = (ROOT / "docs" / "performance.md").read_text()


def drain() -> dict[str, float]:
    with (RESULTS / "bench-drain.csv").open() as handle:
        return {row["scenario"]: float(row["jobs_per_s"]) for row in csv.DictReader(handle)}


def loadgen() -> dict[str, Any]:
    figures: dict[str, Any] = json.loads((RESULTS / "bench-loadgen.json").read_text())["figures"]
    return figures


def compare() -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((RESULTS / "compare-queues.json").read_text())["summary"]
    return summary


def test_the_drain_figures_are_the_committed_run() -> None:
    rates = drain()
    asyncio_rate = f"{rates['reliable-asyncio-1proc']:,.0f}"
    assert f"| {asyncio_rate} jobs/s (mean) |" in README
    assert f"| reliable, asyncio, 1 process | 20,000 | {asyncio_rate} |" in PERFORMANCE
    two_over_one = rates["reliable-cpu-2proc"] / rates["reliable-cpu-1proc"]
    assert f"**{two_over_one:.2f}x** (mean)" in README
    assert f"(**{two_over_one:.2f}x** one)" in PERFORMANCE
    naive = rates["naive-brpop-1proc"] / rates["reliable-asyncio-1proc"]
    assert f"({naive:.2f}x reliable)" in README


def test_the_api_figures_and_the_goals_verdict_are_the_committed_run() -> None:
    figures = loadgen()
    assert f"{figures['single_rps']['median']:,.0f} req/s (median)" in README
    assert f"| {figures['batch_jobs_per_s']['median']:,.0f} jobs/s |" in PERFORMANCE
    p50, p99 = figures["open_e2e_p50_ms"]["median"], figures["open_e2e_p99_ms"]["median"]
    assert f"{p50:.1f} ms / {p99:.1f} ms (median)" in README
    goals = json.loads((RESULTS / "bench-loadgen.json").read_text())["goals"]
    met = [goal for goal in goals.values() if goal.get("met")]
    if not met:  # the prose says so, and must stop saying it once they are met again
        assert "**None of the four goals is met on this run**" in PERFORMANCE
    else:
        assert "None of the four goals is met" not in PERFORMANCE


@pytest.mark.parametrize("library", ["jobrunner", "taskiq", "huey", "celery-solo"])
def test_the_comparison_figures_are_the_committed_run(library: str) -> None:
    row = compare()[library]
    assert f"| {row['drain_rate']['median']:,.0f}" in PERFORMANCE.replace("**", "")


def test_jobrunner_still_drains_fastest_of_the_queues_compared() -> None:
    summary = compare()
    fastest = max(summary, key=lambda name: summary[name]["drain_rate"]["median"])
    assert fastest == "jobrunner"
    runner_up = sorted(summary.values(), key=lambda r: -r["drain_rate"]["median"])[1]
    pair = f"{summary['jobrunner']['drain_rate']['median']:,.0f} / "
    assert pair + f"{runner_up['drain_rate']['median']:,.0f} jobs/s (median)" in README
