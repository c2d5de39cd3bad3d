"""The results-cost benchmark: it runs (small), and the committed run supports what the docs say
of it (results on within 10 % of off; a waiter costs exactly two Redis commands per job)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.results_cost import main

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "results" / "bench-results-cost.json"


def check(report: dict[str, Any]) -> None:
    v = report["variants"]
    assert set(v) == {"results off", "results on", "results on, waited for"}
    off, on, waited = (v[k]["redis_commands_per_job"] for k in v)
    assert on == pytest.approx(off, abs=0.05)  # the result rides in the ack's own HSET
    assert waited - on == pytest.approx(2.0, abs=0.05)  # LPUSH and PEXPIRE of the notify list


@pytest.mark.slow
def test_the_benchmark_runs_and_counts_the_commands_a_result_costs(tmp_path: Path) -> None:
    assert main(["--jobs", "300", "--rounds", "1", "--out", str(tmp_path)]) == 0
    check(json.loads((tmp_path / "bench-results-cost.json").read_text()))
    assert "| results on |" in (tmp_path / "bench-results-cost.md").read_text()


def test_the_docs_quote_the_committed_run_and_its_verdict_on_the_goal() -> None:
    report = json.loads(COMMITTED.read_text())
    check(report)
    ratio = report["variants"]["results on"]["ratio_to_results_off"]
    docs = (ROOT / "docs" / "performance.md").read_text()
    # the docs' verdict on the goal (within 10 %) follows the committed run, whichever it is
    assert ('The goal was "within 10 %" and this run meets it.' in docs) == (ratio >= 0.90)
    assert ('The goal was "within 10 %" and this run does not meet it' in docs) == (ratio < 0.90)
    readme = (ROOT / "README.md").read_text()
    assert f"| keeping results, drain rate on / off | {ratio:.3f}x |" in readme
    for name, v in report["variants"].items():
        row = f"| {name} | {v['median_jobs_per_s']:,.0f} | {v['ratio_to_results_off']:.3f} |"
        assert row in docs, f"docs/performance.md does not quote the committed run: {row}"


@pytest.mark.parametrize("charge_on", ["start", "reserve"])
def test_the_committed_drain_comparison_is_what_the_docs_quote(charge_on: str) -> None:
    report = json.loads((ROOT / "results" / f"bench-drain-versus-{charge_on}.json").read_text())
    assert report["charge_on"] == charge_on
    docs = (ROOT / "docs" / "performance.md").read_text()
    for kind, v in report["kinds"].items():
        row = f"| {charge_on} | {kind} | {v['rate_ratio_median']:.3f} |"
        assert row in docs, f"docs/performance.md does not quote the committed run: {row}"
    if charge_on == "reserve":  # what the docs claim of it: a command a job less than before
        noop = report["kinds"]["noop"]
        assert noop["this"]["commands_per_job"] <= noop["base"]["commands_per_job"] - 0.9


def test_the_committed_enqueue_costs_are_what_the_docs_quote() -> None:
    report = json.loads((ROOT / "results" / "bench-enqueue-cost.json").read_text())
    docs = (ROOT / "docs" / "performance.md").read_text()
    for name, v in report["paths"].items():
        row = (f"| {name} | {v['jobs_per_s']:,.0f} | {v['rate_ratio_to_huey']:.2f} | "
               f"{v['client_cpu_us']:.1f} | {v['redis_cpu_us']:.1f} | "
               f"{v['redis_commands']:.2f} |")  # fmt: skip
        assert row in docs, row
    paths = report["paths"]
    huey, sync, aio = (paths[name] for name in ("Huey (one call per job)", "SyncClient.enqueue",
                                                "Client.enqueue"))  # fmt: skip
    # what the docs say of them: three commands; the blocking path under Huey's client CPU; the
    # sequential ratios they quote; 64 tasks at about 2 commands and a fifth of the CPU a job
    assert sync["redis_commands"] <= 3.01
    assert aio["redis_commands"] <= 3.01
    assert sync["client_cpu_us"] < huey["client_cpu_us"]
    quoted = (f"{sync['rate_ratio_to_huey']:.2f}x, the asyncio one at "
              f"{aio['rate_ratio_to_huey']:.2f}x")  # fmt: skip
    assert quoted in " ".join(docs.split()), quoted
    many = paths["Client.enqueue, 64 tasks"]
    assert many["redis_commands"] < 2.2
    assert many["client_cpu_us"] < 0.3 * aio["client_cpu_us"]
    assert f"({many['jobs_per_s']:,.0f} here)" in docs
    assert f"under Huey's {huey['client_cpu_us']:.0f} µs here" in " ".join(docs.split())
    assert sync["client_cpu_us"] <= 70  # the goals the docs call met
    assert many["jobs_per_s"] >= 40_000


def test_the_floor_rows_show_the_sequential_goal_is_out_of_reach_as_the_docs_say() -> None:
    """1.4x Huey one call at a time leaves less time over a bare PING on a raw socket than the
    script's own Redis CPU costs over a PING's: the docs' argument, held to the committed run."""
    paths = json.loads((ROOT / "results" / "bench-enqueue-cost.json").read_text())["paths"]
    huey, sync = paths["Huey (one call per job)"], paths["SyncClient.enqueue"]
    client = paths["floor: redis-py PING, no job"]
    raw = paths["floor: raw socket PING, no client library"]
    headroom = 1e6 / (1.4 * huey["jobs_per_s"]) - 1e6 / raw["jobs_per_s"]
    script = sync["redis_cpu_us"] - raw["redis_cpu_us"]
    assert 0 < headroom < script  # the claim
    assert raw["client_cpu_us"] < client["client_cpu_us"] < sync["client_cpu_us"]
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    assert f"**{headroom:.1f} µs** a call over the raw floor" in docs
    assert f"alone is **{script:.1f} µs** more than a `PING`'s here" in docs
    assert (f"runs at {client['rate_ratio_to_huey']:.2f}x Huey's rate, and through a raw socket "
            f"with no client library at {raw['rate_ratio_to_huey']:.2f}x") in docs  # fmt: skip
    readme = " ".join((ROOT / "README.md").read_text().split())
    quoted = (f"it would leave {headroom:.1f} µs a call over a bare `PING` on a raw socket, "
              f"less than the script's own Redis CPU over a `PING`'s, {script:.1f} µs")  # fmt: skip
    assert quoted in readme


def test_the_committed_api_ratios_are_what_the_docs_quote() -> None:
    report = json.loads((ROOT / "results" / "bench-api.json").read_text())
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    single = report["ratio_to_bare"]["POST /jobs, 1 job"]
    assert f"(**{single:.2f}x the bare endpoint**; issue 20's goal was 0.6x)" in docs
    assert single >= 0.6  # what the docs say: the goal is met
    assert f"measured {report['auth_cost_ratio']:.2f}x of `--no-auth`" in docs
    assert f"at {report['auth_cost_ratio']:.2f}x the same API with `--no-auth`" in docs


def test_the_committed_model_figures_are_what_the_docs_quote() -> None:
    report = json.loads((ROOT / "results" / "bench-models-io.json").read_text())
    before = json.loads((ROOT / "results" / "bench-models-io-before.json").read_text())
    docs = (ROOT / "docs" / "performance.md").read_text()
    for kind, by_model in report["kinds"].items():
        for model, v in by_model.items():
            b = before["kinds"][kind][model]
            row = (f"| {kind} | {model} | {v['jobs_per_s']:,.0f} | {v['ratio_to_asyncio']:.2f} | "
                   f"{v['worker_cpu_us']:.0f} | {v['worker_system_cpu_us']:.0f} | "
                   f"{v['context_switches_per_job']:.3f} | {v['script_calls_per_job']:.3f} | "
                   f"{v['commands_per_job']:.1f} | "
                   f"{b['ratio_to_asyncio']:.2f} / {b['worker_cpu_us']:.0f} |")  # fmt: skip
            assert row in docs, row
        # what the prose says: the thread model misses the goals, calls Redis far more often
        # a job than asyncio does, and its threads give up their core many times a job
        assert by_model["thread"]["ratio_to_asyncio"] < 0.6
        calls = by_model["thread"]["script_calls_per_job"]
        assert calls > 4 * by_model["asyncio"]["script_calls_per_job"]
        switches = by_model["thread"]["context_switches_per_job"]
        assert switches > 5 > 100 * by_model["asyncio"]["context_switches_per_job"]
    flat = " ".join(docs.split())
    io = report["kinds"]["redis round trip"]
    assert (f"gives up its core **{io['asyncio']['context_switches_per_job']:.3f}** times a job"
            in flat)  # fmt: skip
    assert f"give it up **{io['thread']['context_switches_per_job']:.3f}** times a job" in flat
    # the process model on a Redis round trip meets the rate goal, not the CPU one (120 µs was
    # 1.76x asyncio's CPU on the machine), in this run, as the prose says
    process, cpu_ratio = (
        io["process"],
        io["process"]["worker_cpu_us"] / io["asyncio"]["worker_cpu_us"],
    )
    assert process["ratio_to_asyncio"] >= 0.6
    assert cpu_ratio > 120 / 68
    assert f"(**{process['ratio_to_asyncio']:.2f}x**, {process['worker_cpu_us']:.0f} µs;" in flat
    assert f"the process model takes {cpu_ratio:.2f}x asyncio's here" in flat


def test_the_committed_model_variants_are_what_the_docs_quote() -> None:
    report = json.loads((ROOT / "results" / "bench-models-variants.json").read_text())
    docs = (ROOT / "docs" / "performance.md").read_text()
    assert f"commit `{report['commit']}`" in " ".join(docs.split())
    for kind, by_name in report["kinds"].items():
        for name, v in by_name.items():
            row = (f"| {kind} | {name} (`{report['variants'][name]}`) | {v['jobs_per_s']:,.0f} | "
                   f"{v['ratio_to_baseline']:.2f} | {v['worker_cpu_us']:.0f} | "
                   f"{v['context_switches_per_job']:.3f} |")  # fmt: skip
            assert row in docs, row
    # what the prose says: 100 threads meet the goal on 1 ms waits, not on a Redis round trip,
    # and charging at reservation does not get them there either
    sleep, trip = report["kinds"]["1 ms sleep"], report["kinds"]["redis round trip"]
    assert sleep["thread-100"]["ratio_to_baseline"] >= 0.6
    assert trip["thread-100"]["ratio_to_baseline"] < 0.6
    assert trip["thread-reserve"]["ratio_to_baseline"] < 0.6
    flat = " ".join(docs.split())
    assert (f"(**{sleep['thread-100']['ratio_to_baseline']:.2f}x** at "
            f"{sleep['thread-100']['worker_cpu_us']:.0f} µs)") in flat  # fmt: skip
    assert (
        f"(**{trip['thread-100']['ratio_to_baseline']:.2f}x**, "
        f"{trip['thread-100']['context_switches_per_job']:.1f} switches a job"
    ) in flat


def test_the_committed_io_comparison_is_what_the_docs_quote() -> None:
    summary = json.loads((ROOT / "results" / "compare-queues-io.json").read_text())["summary"]
    docs = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    rate = summary["jobrunner"]["drain_rate"]["median"]
    huey, dramatiq = (summary[k]["drain_ratio"]["median"] for k in ("huey", "dramatiq"))
    assert f"drained {rate:,.0f} jobs/s, Huey {huey:.2f}x and Dramatiq {dramatiq:.2f}x" in docs


def test_the_readme_cost_rows_are_the_committed_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    e = json.loads((ROOT / "results" / "bench-enqueue-cost.json").read_text())["paths"]
    sync, aio, many = e["SyncClient.enqueue"], e["Client.enqueue"], e["Client.enqueue, 64 tasks"]
    assert (f"| {sync['rate_ratio_to_huey']:.2f}x / {aio['rate_ratio_to_huey']:.2f}x, "
            f"{sync['client_cpu_us']:.1f} / {aio['client_cpu_us']:.1f} µs, "
            f"{sync['redis_commands']:.0f} |") in readme  # fmt: skip
    assert (f"| {many['jobs_per_s']:,.0f} jobs/s ({many['rate_ratio_to_huey']:.2f}x Huey), "
            f"{many['client_cpu_us']:.1f} µs a job |") in readme  # fmt: skip
    api = json.loads((ROOT / "results" / "bench-api.json").read_text())
    assert f"| {api['ratio_to_bare']['POST /jobs, 1 job']:.2f}x |" in readme
    m = json.loads((ROOT / "results" / "bench-models-io.json").read_text())["kinds"]
    m = m["redis round trip"]
    assert (f"| {m['thread']['ratio_to_asyncio']:.2f}x / {m['process']['ratio_to_asyncio']:.2f}x "
            f"({m['thread']['worker_cpu_us']:.0f} / {m['process']['worker_cpu_us']:.0f} vs "
            f"{m['asyncio']['worker_cpu_us']:.0f} µs worker CPU a job) |") in readme  # fmt: skip
    thread, aio = m["thread"], m["asyncio"]
    flat = " ".join(readme.split())
    assert (f"at {thread['ratio_to_asyncio']:.2f}x asyncio's rate and "
            f"{thread['worker_cpu_us'] / aio['worker_cpu_us']:.1f}x its CPU a job; its threads "
            f"give up their core {thread['context_switches_per_job']:.1f} times a job (asyncio's "
            f"one thread {aio['context_switches_per_job']:.3f})") in flat  # fmt: skip
