"""docs/scaling.md quotes the committed scaling and WAIT runs: stale prose fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from bench.scaling import main as scaling_main
from bench.wait_cost import main as wait_main
from jobrunner.lab.scaling import table

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "scaling.md").read_text()


def test_the_scaling_table_in_the_docs_is_the_committed_run() -> None:
    report = json.loads((ROOT / "results" / "bench-scaling.json").read_text())
    assert table(report) in DOCS
    assert table(report) in (ROOT / "results" / "bench-scaling.md").read_text()
    assert f"commit {report['commit'][:7]}" in DOCS
    one, many = report["single"], report["cluster"]
    cost = one["enqueue_redis_cpu_us"] + one["drain_redis_cpu_us"]
    assert f"about\n  {cost:.0f} µs of one core per job" in DOCS
    assert f"near {round(one['redis_bound_jobs_per_s'], -3):,.0f} jobs/s" in DOCS
    assert f"about {round(many['redis_bound_jobs_per_s'], -3):,.0f} jobs/s" in DOCS
    gain = many["redis_bound_jobs_per_s"] / one["redis_bound_jobs_per_s"]
    assert f"{gain:.2f}x for {report['shards']} shards" in DOCS
    # "each master carries about a third": no master above 40 % of the queue's Redis CPU
    assert max(many["drain_master_shares"] + many["enqueue_master_shares"]) <= 0.40


def test_the_docs_quote_what_waiting_for_a_replica_cost_in_the_committed_run() -> None:
    report = json.loads((ROOT / "results" / "bench-wait-cost.json").read_text())
    off, on = report["without_wait"], report["with_wait_1"]
    ratio = report["ratio_with_to_without"]
    latency = (f"{off['sequential_latency_us']:.0f} µs → {on['sequential_latency_us']:.0f} µs\n"
               f"({ratio['sequential_latency_us']:.2f}x)")  # fmt: skip
    assert latency in DOCS
    assert f"batched enqueues **{ratio['batched_jobs_per_s']:.2f}x**" in DOCS
    assert f"the drain **{ratio['drain_jobs_per_s']:.2f}x**" in DOCS
    assert f"commit {report['commit'][:7]}" in DOCS


@pytest.mark.slow
def test_the_scaling_benchmark_runs_small_and_spreads_a_sharded_queue_over_the_masters(
    tmp_path: Path,
) -> None:
    assert scaling_main(["--jobs", "1600", "--rounds", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench-scaling.json").read_text())
    many = report["cluster"]
    assert len(many["drain_master_shares"]) == 3
    assert sum(many["drain_master_shares"]) == pytest.approx(1.0, abs=0.01)
    assert report["single"]["enqueue_commands_per_job"] == pytest.approx(2.0, abs=0.1)


@pytest.mark.slow
def test_the_wait_benchmark_runs_small_with_a_replica_linked(tmp_path: Path) -> None:
    assert wait_main(["--jobs", "800", "--rounds", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench-wait-cost.json").read_text())
    assert set(report["ratio_with_to_without"]) == {
        "sequential_jobs_per_s",
        "sequential_latency_us",
        "batched_jobs_per_s",
        "drain_jobs_per_s",
    }


def test_the_lab_readme_quotes_the_committed_run_of_notebook_9() -> None:
    notebook = nbformat.read(ROOT / "notebooks" / "09-outgrowing-one-redis.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))  # fmt: skip
    single = re.search(r"one Redis is full near ([\d,]+) jobs/s \(([\d.]+) µs", printed)
    sharded = re.search(r"busiest master is full near ([\d,]+) jobs/s: ([\d.]+)x", printed)
    assert single is not None
    assert sharded is not None
    readme = " ".join((ROOT / "notebooks" / "README.md").read_text().split())
    assert f"one Redis spends {single[2]} µs of its core a job, full near {single[1]}" in readme
    assert f"the busiest is full near {sharded[1]} jobs/s: {sharded[2]}x" in readme
