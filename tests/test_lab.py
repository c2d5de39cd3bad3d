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
from jobrunner.lab import concurrency, latency, live, profiles, running, stats, tour
from jobrunner.lab.build import in_sync, sources
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


@pytest.mark.parametrize("source", sources(), ids=lambda p: p.stem)
def test_committed_notebook_carries_exactly_its_source_cells(source: Path) -> None:
    assert in_sync(source), f"rebuild: python -m jobrunner.lab.build --only {source.stem[:2]}"
