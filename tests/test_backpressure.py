"""The backpressure experiment: its bookkeeping on made-up runs, and one small real run of both
cases (a stack, a producer three times faster than the worker) checked for what it must show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobrunner.lab.experiments.backpressure import (
    RUNS,
    Run,
    Sample,
    Setup,
    finish_times,
    latency_growth,
    per_second,
    run_all,
    summarise,
    write,
)

SETUP = Setup(rate=100.0, seconds=4.0, bound=50)


def made_up_run(kind: str, growth: float) -> Run:
    """100 jobs/s for 4 s; each job's latency is 0.1 s plus ``growth`` x its send time."""
    accepted: list[tuple[float, float | None]] = [(i / 100, 0.1 + growth * i / 100)
                                                  for i in range(400)]  # fmt: skip
    requests = [(i / 100, 202) for i in range(400)] + [(3.5, 429), (3.6, 429)]
    samples = [Sample(t, ready=int(t * 10), scheduled=0, reserved=2, used_memory=1000 + int(t))
               for t in (0.0, 1.0, 2.0, 4.0, 6.0)]  # fmt: skip
    samples.append(Sample(8.0, ready=0, scheduled=0, reserved=0, used_memory=1000))
    load = {"statuses": {"202": 400, "429": 2}}
    return Run(kind, 0, samples, accepted, requests, load, finished_at=8.0)


def test_a_run_is_summarised_from_its_samples_and_jobs() -> None:
    run = made_up_run("unbounded", growth=1.0)
    s = summarise(run, SETUP)
    assert (s["accepted"], s["rejected_429"], s["requests"]) == (400, 2, 402)
    assert s["jobs_done"] == 400
    assert s["jobs_unfinished"] == 0
    assert s["max_waiting"] == 40  # samples inside the 4 s of sending only
    assert s["waiting_at_end_of_load"] == 40
    assert s["drain_rate_jobs_per_s"] == 50.0
    assert s["e2e_ms"]["max"] == pytest.approx(100 + 3990)
    assert s["e2e_growth_s_per_s_second_half"] == pytest.approx(1.0)
    assert summarise(made_up_run("bounded", 0.0), SETUP)["e2e_growth_s_per_s_second_half"] == 0


def test_latency_growth_needs_two_send_times() -> None:
    run = made_up_run("bounded", 0.0)
    run.accepted = [(3.0, 0.2), (3.0, 0.3)]
    assert latency_growth(run, SETUP) is None


def test_requests_and_latency_are_binned_per_second_of_sending() -> None:
    bins = per_second(made_up_run("bounded", 0.0), SETUP.seconds)
    assert [b["t"] for b in bins] == [0, 1, 2, 3]
    assert [b["accepted"] for b in bins] == [100, 100, 100, 100]
    assert [b["rejected_429"] for b in bins] == [0, 0, 0, 2]
    assert bins[0]["e2e_p50_ms"] == 100.0


def test_finish_times_come_from_the_workers_done_lines(tmp_path: Path) -> None:
    lines = [
        {"event": "job", "result": "done", "job_id": "a", "timestamp": 10.5},
        {"event": "job", "result": "scheduled", "job_id": "b", "timestamp": 11.0},
        {"event": "worker stopped", "timestamp": 12.0},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json, a stray print\n"
    (tmp_path / "worker-1.log").write_text(text)
    (tmp_path / "api-2.log").write_text(json.dumps(lines[0] | {"job_id": "c"}) + "\n")
    assert finish_times(tmp_path) == {"a": 10.5}


@pytest.mark.slow
def test_the_bound_holds_the_backlog_and_the_latency_where_none_grows(tmp_path: Path) -> None:
    # One job at a time (about 20/s) against 60 offered a second, for 3 s.
    setup = Setup(rate=60.0, seconds=3.0, concurrency=1, bound=10, payload_bytes=512)
    runs = {r.kind: r for r in run_all(setup, log_dir=tmp_path / "logs")}
    assert set(runs) == set(RUNS)
    free, bounded = runs["unbounded"].summary, runs["bounded"].summary
    for s in (free, bounded):
        assert s["accepted"] + s["rejected_429"] == s["requests"] == 180
        assert s["other_statuses"] == {}
        assert s["jobs_unfinished"] == 0  # every accepted job ran
    assert free["rejected_429"] == 0
    assert free["max_waiting"] > 3 * setup.bound  # the backlog grew past any bound we set
    assert bounded["rejected_429"] > 0  # the excess was refused...
    # ...and the backlog stayed at the bound (concurrent requests may each pass the check once).
    assert setup.bound <= bounded["max_waiting"] <= setup.bound + setup.clients
    assert free["e2e_ms"]["max"] > bounded["e2e_ms"]["max"]

    summary = write(list(runs.values()), setup, tmp_path / "out", elapsed=1.0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "backpressure.csv", "backpressure.json", "backpressure.png"
    ]  # fmt: skip
    assert [r["run"] for r in summary["runs"]] == list(RUNS)
