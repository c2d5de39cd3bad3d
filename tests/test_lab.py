"""The lab's logic, without a stack: summaries, parsers, fits, the stall helper, the builder."""

from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from jobrunner.errors import JobrunnerError
from jobrunner.lab import (
    backoff,
    charts,
    concurrency,
    failures,
    figures,
    latency,
    limits,
    live,
    profiles,
    progress,
    running,
    stats,
    tour,
)
from jobrunner.lab.build import in_sync, sources
from jobrunner.lab.chaos.report import ChaosReport
from jobrunner.lab.experiments.backoff_sim import Outcome, Scenario
from jobrunner.lab.experiments.limiter_accuracy import Run, Setup
from jobrunner.lab.worker_log import LogTail, job_lines
from tests.conftest import wait_until


def test_spread_gives_mean_range_and_relative_spread() -> None:
    frame = pd.DataFrame({"m": ["a", "a", "b"], "v": [90.0, 110.0, 5.0]})
    out = stats.spread(frame, ["m"], "v").set_index("m")
    assert out.loc["a", "n"] == 2
    assert out.loc["a", "mean"] == 100.0
    assert out.loc["a", "spread"] == pytest.approx(0.2)
    assert out.loc["b", "std"] == 0.0  # one run: no spread, not NaN
    assert out.loc["b", "spread"] == 0.0


def test_ratio_with_spread_brackets_the_ratio_by_the_worst_and_best_pairs() -> None:
    r = stats.ratio_with_spread([100.0, 120.0], [150.0, 180.0])
    assert r["ratio"] == pytest.approx(165 / 110)
    assert r["low"] == pytest.approx(150 / 120)
    assert r["high"] == pytest.approx(180 / 100)
    with pytest.raises(ValueError, match="at least one run"):
        stats.ratio_with_spread([], [1.0])
    with pytest.raises(ValueError, match="positive"):
        stats.ratio_with_spread([0.0], [1.0])


def test_percentile_is_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert concurrency.percentile(values, 50) == 50.0
    assert concurrency.percentile(values, 99) == 99.0
    assert concurrency.percentile([7.0], 99) == 7.0
    assert math.isnan(concurrency.percentile([], 50))


def test_jobs_for_outlasts_the_window_but_respects_the_cap() -> None:
    # 4 slots of 50 ms can finish at most 80 jobs a second.
    n = concurrency.jobs_for(4, 0.05, 1.0, cap=10_000)
    assert n >= 80
    assert concurrency.jobs_for(64, 0.0001, 10.0, cap=5_000) == 5_000
    assert concurrency.jobs_for(1, 10.0, 0.1, cap=100) >= 2 + 10  # never fewer than the slots


def test_a_mixed_workload_draws_each_type_by_its_weight() -> None:
    drawn = concurrency.WORKLOADS["mixed"].draw(random.Random(1), 4000)
    share = sum(1 for t, _ in drawn if t == "email") / len(drawn)
    assert 0.45 < share < 0.55
    assert concurrency.service_seconds(concurrency.WORKLOADS["email"]) == 0.05


def test_log_tail_returns_only_new_complete_job_lines(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    tail = LogTail(log)
    assert tail.read() == []  # no file yet
    log.write_text('{"event": "job", "run_ms": 1.5}\nplain text\n{"event": "worker started"}\n'
                   '{"event": "job", "run')  # fmt: skip
    assert [r["run_ms"] for r in tail.read()] == [1.5]
    with log.open("a") as handle:
        handle.write('_ms": 2.5}\n')
    assert [r["run_ms"] for r in tail.read()] == [2.5]
    assert job_lines("{not json\n") == []


def test_segments_turn_polled_states_into_spans() -> None:
    events = pd.DataFrame({"t": [0.0, 0.5, 0.7], "id": ["a", "a", "a"],
                           "state": ["ready", "reserved", "done"]})  # fmt: skip
    spans = tour.segments(events, final_span=0.1)
    assert spans["state"].tolist() == ["ready", "reserved", "done"]
    assert spans["duration"].tolist() == pytest.approx([0.5, 0.2, 0.1])


def test_metrics_frame_keeps_the_job_metrics_only() -> None:
    text = (
        "# TYPE jobs_enqueued_total counter\n"
        'jobs_enqueued_total{queue="default",type="email"} 3.0\n'
        'jobs_enqueued_created{queue="default",type="email"} 1.7e9\n'
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.0\n"
    )
    frame = tour.metrics_frame(text)
    assert frame.to_dict("records") == [
        {"metric": "jobs_enqueued_total", "labels": "queue=default,type=email", "value": 3.0}
    ]


SVG = """<svg><g><title>all (200 samples, 100%)</title></g>
<g><title>process 1:&quot;python -m jobrunner.cli worker&quot; (200 samples, 100.00%)</title></g>
<g><title>Worker.run (jobrunner/worker/core.py:124) (150 samples, 75.00%)</title></g>
<g><title>Worker._log_outcome (jobrunner/worker/core.py:319) (30 samples, 15.00%)</title></g>
<g><title>Worker._log_outcome (jobrunner/worker/core.py:321) (10 samples, 5.00%)</title></g>
<g><title>dumps (json/__init__.py:231) (8 samples, 4.00%)</title></g>
<g><title>&lt;module&gt; (&lt;frozen runpy&gt;) (200 samples, 100.00%)</title></g></svg>"""


def test_flamegraph_frames_sum_a_function_over_its_lines() -> None:
    frames = profiles.flamegraph_frames(SVG)
    assert profiles.share_of(frames, "Worker._log_outcome") == pytest.approx(0.2)
    hot = profiles.hot_frames(frames, "jobrunner/")
    assert hot["function"].tolist() == ["Worker.run", "Worker._log_outcome"]
    assert "<module>" in frames["function"].tolist()
    with pytest.raises(JobrunnerError, match="not a py-spy flamegraph"):
        profiles.flamegraph_frames("<svg></svg>")


def test_speedscope_top_counts_self_time_of_evented_and_sampled_profiles() -> None:
    shared = {"frames": [{"name": "outer", "file": "/a/x.py", "line": 1},
                         {"name": "inner", "file": "/a/y.py", "line": 2}]}  # fmt: skip
    evented = {"type": "evented", "startValue": 0, "endValue": 10, "events": [
        {"type": "O", "frame": 0, "at": 0}, {"type": "O", "frame": 1, "at": 2},
        {"type": "C", "frame": 1, "at": 8}, {"type": "C", "frame": 0, "at": 10}]}  # fmt: skip
    top = profiles.speedscope_top({"shared": shared, "profiles": [evented]}).set_index("function")
    assert top.loc["inner (y.py:2)", "self"] == 6
    assert top.loc["outer (x.py:1)", "self"] == 4
    assert top.loc["inner (y.py:2)", "share"] == pytest.approx(0.6)
    sampled = {"type": "sampled", "samples": [[0, 1], [0], [0, 1]], "weights": [1, 1, 2]}
    top = profiles.speedscope_top({"shared": shared, "profiles": [sampled]}).set_index("function")
    assert top.loc["inner (y.py:2)", "share"] == pytest.approx(0.75)


def test_finishing_rate_and_slopes_follow_the_counter() -> None:
    rows: list[dict[str, float]] = []
    for i in range(41):
        t = i * 0.25
        finished = 100 * t if t <= 5 else 500 + 200 * (t - 5)
        row = {"t": t, "finished": finished, "ready": 1.0, "enqueued": 3000.0}
        row["rate"] = live.finishing_rate(rows, row)
        rows.append(row)
    assert rows[10]["rate"] == pytest.approx(100)
    assert rows[-1]["rate"] == pytest.approx(200)
    rates = live.slopes(pd.DataFrame(rows), added_at=5.0, margin=0.5)
    assert rates["before"] == pytest.approx(100)
    assert rates["after"] == pytest.approx(200)
    assert set(live.slopes(pd.DataFrame(rows), added_at=None)) == {"before"}


def test_rates_around_scales_the_measured_capacity() -> None:
    assert latency.rates_around(1000, [0.1, 1.0, 1.2]) == [100.0, 1000.0, 1200.0]
    with pytest.raises(ValueError, match="positive"):
        latency.rates_around(0, [0.5])


def _status(proc: subprocess.Popen[bytes]) -> str:
    return str(psutil.Process(proc.pid).status())


def test_stalled_freezes_a_process_then_always_resumes_it() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with latency.stalled(proc.pid, after=0.0, seconds=30.0):
            wait_until(lambda: _status(proc) == psutil.STATUS_STOPPED, what="the stall")
        # The stall was cut short: the block ended, the process runs again.
        wait_until(lambda: _status(proc) != psutil.STATUS_STOPPED, what="the resume")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_check_no_strays_finds_a_survivor_and_passes_once_it_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running.remember({proc.pid})
        with pytest.raises(running.StrayProcessError, match=str(proc.pid)):
            running.check_no_strays(timeout=0.1)
    finally:
        proc.kill()
        proc.wait()
    assert running.check_no_strays(timeout=5) >= 1


def test_stats_table_gives_the_mean_and_the_range_only_where_runs_differ() -> None:
    frame = pd.DataFrame({"q": ["a", "a", "b"], "v": [1.0, 3.0, 5.0], "w": [0.5, 0.5, 2.0]})
    out = stats.table(frame, "q", {"v": 0, "w": 1})
    assert out.loc["a", "v"] == "2 (1-3)"
    assert out.loc["a", "w"] == "0.5"  # both runs agree
    assert out.loc["b", "v"] == "5"
    assert stats.with_range(1234.5, 1000.0, 1500.0) == "1,234 (1,000-1,500)"
    assert stats.with_range(0.651, 0.649, 0.652, 2) == "0.65"  # equal once rounded
    assert stats.with_range(math.nan, math.nan, math.nan) == "-"


def test_each_call_reports_every_return_then_puts_the_function_back() -> None:
    import types

    owner = types.SimpleNamespace(step=lambda x: x * 2)
    original = owner.step
    lines: list[str] = []
    with progress.each_call(owner, "step", lambda r: f"got {r}", lines.append) as results:
        assert [owner.step(1), owner.step(5)] == [2, 10]
    assert results == [2, 10]
    assert [line.split()[-1] for line in lines] == ["2", "10"]
    assert lines[0].split()[0].endswith("s")  # the seconds since the block began
    assert owner.step is original


def test_each_call_puts_the_function_back_after_an_error() -> None:
    import types

    def fails() -> None:
        raise RuntimeError("boom")

    owner = types.SimpleNamespace(step=fails)
    with pytest.raises(RuntimeError), progress.each_call(owner, "step", str, print):
        owner.step()
    assert owner.step is fails


def test_off_the_loop_runs_an_event_loop_from_inside_another() -> None:
    import asyncio

    async def answer() -> int:
        return 42

    async def notebook_cell() -> int:  # a kernel's thread: a loop is already running
        refused = answer()
        with pytest.raises(RuntimeError, match="running event loop"):
            asyncio.run(refused)
        refused.close()
        return progress.off_the_loop(asyncio.run, answer())

    assert asyncio.run(notebook_cell()) == 42


def test_off_the_loop_raises_the_error_of_the_call() -> None:
    with pytest.raises(ZeroDivisionError):
        progress.off_the_loop(divmod, 1, 0)


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_watching_remembers_what_the_block_started_and_passes_once_it_is_gone() -> None:
    with running.watching(interval=0.01, timeout=5):
        proc = _sleeper()
        wait_until(lambda: any(pid == proc.pid for pid, _ in running._SEEN), what="the poll")
        proc.kill()
        proc.wait()


def test_watching_finds_a_process_the_block_left_running() -> None:
    started: list[subprocess.Popen[bytes]] = []

    def leave_one_running() -> None:
        with running.watching(interval=0.01, timeout=0.2):
            started.append(proc := _sleeper())
            wait_until(lambda: any(pid == proc.pid for pid, _ in running._SEEN), what="a poll")

    try:
        with pytest.raises(running.StrayProcessError, match=r"outlived"):
            leave_one_running()
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
    assert running.check_no_strays(timeout=5) >= 1


def test_keeping_backend_undoes_an_experiment_switching_to_agg() -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("pdf")
    try:
        with figures.keeping_backend():
            matplotlib.use("Agg")
        assert matplotlib.get_backend() == "pdf"
    finally:
        plt.switch_backend(before)


def test_bars_with_range_draws_one_bar_per_group_and_x() -> None:
    import matplotlib.pyplot as plt

    frame = pd.DataFrame({"x": ["a", "a", "b", "b", "a"], "g": ["p", "p", "p", "q", "q"],
                          "y": [1.0, 3.0, 2.0, 4.0, 5.0]})  # fmt: skip
    fig, ax = plt.subplots()
    charts.bars_with_range(ax, frame, "x", "y", "g", order=["a", "b"])
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [2.0, 2.0, 4.0, 5.0]  # p: mean(1, 3), 2; q: 5, 4
    plt.close(fig)


def test_whiskers_are_never_negative_when_every_run_gave_the_same() -> None:
    frame = pd.DataFrame({"g": ["a"] * 3, "v": [0.1, 0.1, 0.1]})
    summary = stats.spread(frame, ["g"], "v")
    summary["mean"] += 1e-12  # the float error a mean of equal values can carry
    below, above = charts.whiskers(summary)
    assert below.min() >= 0
    assert above.min() >= 0


def _outcome(name: str, calls: int, done: float = 10.0) -> Outcome:
    return Outcome(name, calls, done, 1, 1.0, 0, {}, [calls // 2, calls - calls // 2], [])


def test_backoff_rows_and_table_compare_with_exponential() -> None:
    runs = [{"exponential": _outcome("exponential", 1000), "full_jitter": _outcome("full_jitter",
                                                                                 300 + k)}
            for k in (0, 100)]  # fmt: skip
    frame = pd.DataFrame([row for k, r in enumerate(runs)
                          for row in backoff.outcome_rows(r, repeat=k)])  # fmt: skip
    assert frame.set_index(["repeat", "strategy"]).loc[(1, "full_jitter"), "x_exponential"] == 0.4
    out = backoff.table({"live": frame})
    assert out.loc["full_jitter", "live: total calls"] == "350 (300-400)"
    assert out.loc["exponential", "live: x exponential"] == "1.00"


def test_simulate_seeds_and_the_plots_run_on_a_tiny_scenario() -> None:
    import matplotlib.pyplot as plt

    scenario = Scenario(clients=20, capacity=10.0, outage=(0.0, 1.0))
    lines: list[str] = []
    frame, runs = backoff.simulate_seeds(scenario, [0, 1], log=lines.append)
    assert len(frame) == 12
    assert set(runs) == {0, 1}
    assert len(lines) == 2
    assert (frame["unfinished"] == 0).all()
    plt.close(backoff.plot_simulation(frame, runs[0], scenario, until=30.0))
    swept = backoff.sweep(scenario, [0], [0.1, 1.0], log=lines.append)
    assert set(swept["arrival_spread"]) == {0.1, 1.0}
    assert "none" not in set(swept["strategy"])
    plt.close(backoff.plot_sweep(swept, frame.assign(repeat=0)))


def test_trailing_counts_the_calls_in_the_window_before_each_bucket_end() -> None:
    ends, counts = limits.trailing([1, 2, 3, 4, 0], 0.5, window=1.0)
    assert ends == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert counts == [1, 3, 5, 7, 4]
    assert limits.trailing([], 0.1) == ([], [])


def _run(algorithm: str, rate: float | None, bound: int | None) -> Run:
    return Run(algorithm=algorithm, limit="x", workers=2, jobs=100, achieved_rate=40.0,
               configured_rate=rate, max_in_window=45, max_in_shortened_window=44, bound=bound,
               within_bound=None if bound is None else bound >= 44, first_100ms=5,
               peak_in_flight=5, deferred=10, series=[1, 2])  # fmt: skip


def test_limiter_row_compares_the_rate_with_the_limit_or_the_slots() -> None:
    setup = Setup(hold=0.05)
    rate_row = limits.limiter_row(_run("gcra", 50.0, 50), setup, repeat=0)
    assert (rate_row["limit_per_s"], rate_row["achieved_share"]) == (50.0, 0.8)
    slots = limits.limiter_row(_run("concurrency", None, None), setup)
    assert slots["limit_per_s"] == 100.0  # 5 at once, 50 ms each
    assert math.isnan(slots["bound"])
    assert "no bound" in limits.describe(_run("sliding_window", 50.0, None))


def _report(name: str, lost: int, duplicates: int) -> ChaosReport:
    return ChaosReport(name=name, sent=100, acknowledged=90, rejected=0, unknown=10,
                       completed=90 - lost, dead=0, duplicates=duplicates, lost=lost,
                       phantoms=0, in_flight_at_faults=8, recovery_seconds=0.2, faults=3,
                       runs=95, unknown_completed=1, invariant_violations=["x"])  # fmt: skip


def test_ledger_rows_and_plot() -> None:
    import matplotlib.pyplot as plt

    rows = [failures.report_row(_report("n", 5, 0), queue="naive", repeat=0),
            failures.report_row(_report("r", 0, 3), queue="reliable", repeat=0)]  # fmt: skip
    frame = pd.DataFrame(rows)
    assert frame.loc[0, "lost"] == 5
    assert frame.loc[1, "invariant_violations"] == 1
    assert frame.loc[1, "unknown_completed"] == 1
    assert frame.loc[1, "interrupted"] == 95 - 90 - 3  # runs that did not end ok
    plt.close(failures.plot_ledger(frame))


@pytest.mark.parametrize("source", sources(), ids=lambda p: p.stem)
def test_committed_notebook_carries_exactly_its_source_cells(source: Path) -> None:
    assert in_sync(source), f"rebuild: python -m jobrunner.lab.build --only {source.stem[:2]}"


def test_every_notebook_ends_with_assertions_on_its_claims_and_its_committed_run_passed_them() -> (
    None
):
    """Source and committed notebook alike: a claim typed in prose, with nothing checking it
    against the data, goes stale silently."""
    import json

    from jobrunner.lab.build import NOTEBOOKS, sources

    for source in sources():
        assert "\nassert " in source.read_text(), f"{source.name} asserts none of its claims"
        committed = json.loads((NOTEBOOKS / f"{source.stem}.ipynb").read_text())
        code = [c for c in committed["cells"] if c["cell_type"] == "code"]
        checks = [c for c in code if any(line.startswith("assert ") for line in c["source"])]
        assert checks, f"the committed {source.stem} has no assertion cell"
        failed = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert failed == [], f"the committed {source.stem} ran with an error"
        assert all(c.get("outputs") for c in checks if "print(" in "".join(c["source"])), (
            f"the committed {source.stem} was not run since its assertions were added"
        )


def test_histogram_quantile_interpolates_inside_the_bucket_that_holds_the_rank_as_promql_does() -> (
    None
):
    import math

    from jobrunner.lab.histograms import cumulative, per_bucket, quantile

    text = """# TYPE job_duration_seconds histogram
job_duration_seconds_bucket{type="a",le="0.1"} 10
job_duration_seconds_bucket{type="a",le="0.5"} 30
job_duration_seconds_bucket{type="a",le="+Inf"} 40
job_duration_seconds_count{type="a"} 40
job_duration_seconds_sum{type="a"} 9
job_duration_seconds_bucket{type="b",le="0.1"} 10
job_duration_seconds_bucket{type="b",le="0.5"} 10
job_duration_seconds_bucket{type="b",le="+Inf"} 10
job_duration_seconds_count{type="b"} 10
job_duration_seconds_sum{type="b"} 0.5
"""
    counts = cumulative([text, text], "job_duration_seconds")  # two workers alike
    assert counts == {0.1: 40.0, 0.5: 80.0, math.inf: 100.0}
    assert per_bucket(counts)["count"].tolist() == [40.0, 40.0, 20.0]
    assert quantile(0.2, counts) == pytest.approx(0.05)  # rank 20 of 40 in [0, 0.1]
    assert quantile(0.6, counts) == pytest.approx(0.3)  # rank 60: halfway through (0.1, 0.5]
    assert quantile(0.99, counts) == 0.5  # in +Inf: the highest finite bound
    assert math.isnan(quantile(0.5, {}))


def test_a_differential_profile_counts_a_function_once_per_stack_and_ranks_what_moved() -> None:
    from jobrunner.lab.flamediff import compare, function_of, parse_collapsed, shares

    before = parse_collapsed(
        "run (w.py:1);ack (q.py:10);send (redis/conn.py:5) 60\n"
        "run (w.py:1);ack (q.py:11);send (redis/conn.py:7) 20\n"
        "run (w.py:1);log (w.py:3) 20\n"
        "garbage line\n"
    )
    after = parse_collapsed(
        "run (w.py:1);ack (q.py:10);write (pipelined.py:9) 30\nrun (w.py:1);log (w.py:3) 70\n"
    )
    assert function_of("send (redis/conn.py:5)") == "send (redis/conn.py)"
    table = shares(before)
    assert table.loc["ack (q.py)", "inclusive"] == 0.8  # two lines of one function, summed
    assert table.loc["run (w.py)", "inclusive"] == 1.0
    assert table.loc["run (w.py)", "self"] == 0.0
    assert table.loc["send (redis/conn.py)", "self"] == 0.8
    moved = compare(before, after, n=3)
    assert moved.index[0] == "send (redis/conn.py)"  # 0.8 -> 0: the biggest move
    assert moved.loc["log (w.py)", "change"] == pytest.approx(0.5)


def test_provenance_names_the_commit_and_refuses_a_busy_machine_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    from jobrunner.lab import provenance

    info = provenance.record(quiet=False)
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?", info["commit"])
    assert "CPUs" in info["machine"]
    assert "commit:" in capsys.readouterr().out
    with pytest.raises(provenance.BusyMachine, match="quiet=False"):
        provenance.wait_until_quiet(max_load=0.0, timeout=0.0)  # no load is below zero


# Figures notebooks/README.md quotes from each committed notebook's outputs, verbatim.
QUOTED = {
    "02-concurrency-models": ["cpu_burn keeps 0.99 cores busy with threads, 1.96 with processes"],
    "03-where-the-time-goes": [
        "measured speed-up 1.16x (any pair of runs: 1.07x to 1.23x)",
        "157.2 µs",
        "111.1 µs",
    ],
    "04-latency-under-load": [
        "within 2x of it up to 30% of capacity",
        "418 timed from the intended start, 16 from the send, 16 in the closed loop",
    ],
    "05-backoff-shoot-out": ["0.96 (0.94-1.00)", "3.13"],
    "06-rate-limiting-and-backpressure": ["most in a window 60 (bound 59)"],
    "07-failure-injection": ["27 (26-28)", "6 (4-8)"],
    "08-live-queue-draining": [
        "ratio after/before: 1.99",
        "one worker's ceiling: 443 jobs/s",
        "Prometheus's quantiles are the lab's reading of the same buckets: True",
        "29.80 s at 23.0 s",
        "drain rate from 5 samples: 379 jobs/s",
    ],
    "09-outgrowing-one-redis": [  # its scaling figures: tests/test_scaling_figures.py
        "15,682 jobs/s",
        "during the move: 0 jobs/s",
        "no job finished for 3.0 s of the move's 3.0 s",
        "done 10,000, dead 0, of 10,000",
    ],
}


def test_the_longest_stall_of_a_move_is_the_longest_span_without_progress_inside_it() -> None:
    from jobrunner.lab.resharding import longest_stall

    samples = [(0.0, 0), (0.5, 100), (1.0, 200), (1.2, 250), (1.5, 250), (2.5, 250), (2.8, 260),
               (3.0, 260), (3.6, 260), (4.0, 400)]  # fmt: skip
    move = {"samples": samples, "move_start": 1.1, "move_end": 3.5}
    # finished rose at 1.2 (the move's first jobs), then stood from 1.2 to at least 2.5 (the
    # last sample before it rose: 1.3 s) and from 2.8 to the move's end at 3.5 (0.7 s)
    assert longest_stall(move) == pytest.approx(1.3)
    assert longest_stall({**move, "move_start": 2.6}) == pytest.approx(0.7)
    assert longest_stall({**move, "move_end": 1.4}) == pytest.approx(0.2)


def test_the_figures_the_notebooks_readme_quotes_are_in_the_committed_runs() -> None:
    """A re-run that moves a figure fails here until the README is brought in line."""
    import json

    from jobrunner.lab.build import NOTEBOOKS

    readme = " ".join((NOTEBOOKS / "README.md").read_text().replace("`", "").split())
    for name, phrases in QUOTED.items():
        cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]
        outputs = " ".join(
            "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
        )  # fmt: skip
        outputs = " ".join(outputs.split())
        for phrase in phrases:
            assert phrase in readme, f"notebooks/README.md no longer quotes {phrase!r}"
            assert phrase in outputs, f"{name}'s committed run does not say {phrase!r}"
