"""Chaos, workers: SIGKILL under steady load (each model, and a process-model child), SIGTERM
during a batch and a second signal during the drain, a slow worker and a stalled one. The
ledger outside Redis decides: nothing acknowledged is lost, duplicates stay within the jobs in
flight at the faults, and the keyspace invariants hold at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.lab.chaos import faults
from jobrunner.lab.chaos.invariants import snapshot
from jobrunner.lab.chaos.ledger import read_records
from jobrunner.lab.chaos.probes import PROBE_ASYNC
from jobrunner.lab.chaos.producer import Probe
from jobrunner.lab.chaos.report import ChaosReport, publish
from jobrunner.lab.chaos.session import ChaosSession
from tests.conftest import flush_cluster, named_for_backend, wait_until
from tests.workers import FAST_LOOPS

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

MODELS = ["asyncio", "thread", "process"]


def session(tmp_path: Path, name: str, **options: object) -> ChaosSession:
    name = named_for_backend(name, options)
    return ChaosSession(name, env=FAST_LOOPS, ledger_dir=tmp_path / "ledger",
                        log_dir=tmp_path / "logs", **options)  # type: ignore[arg-type]  # fmt: skip


def assert_nothing_lost(report: ChaosReport) -> None:
    assert report.invariant_violations == []
    assert report.lost == 0, report.lost_ids
    assert report.phantoms == 0, report.phantom_ids
    assert report.duplicates <= report.in_flight_at_faults


def wait_for_progress(s: ChaosSession, jobs: int) -> None:
    target = s.completions() + jobs
    wait_until(lambda: s.completions() >= target, timeout=30, interval=0.1, what="progress")


@pytest.mark.parametrize(
    ("model", "backend"), [*((m, "single") for m in MODELS), ("asyncio", "cluster")]
)
def test_repeated_sigkill_under_steady_load_loses_nothing(
    model: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    concurrency = 2 if model == "process" else 4
    url = None  # a Redis of the stack's own; or the session's cluster, emptied
    if backend == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        flush_cluster(cluster)
        url = cluster.url
    with session(tmp_path, f"sigkill-loop[{model}, {backend}]", model=model,
                 concurrency=concurrency, lease=1.0, redis_url=url) as s:  # fmt: skip
        s.producer.start_load(rate=100, batch=10, probe=Probe(ms=10))
        for _ in range(3):
            wait_for_progress(s, 30)
            s.record(faults.kill_worker(s.stack))
            faults.replace_dead_workers(s.stack, 2)
        wait_for_progress(s, 30)
        s.producer.stop_load()
        s.settle()
        report = s.report()
    publish(report)
    assert_nothing_lost(report)
    assert report.faults == 3
    assert report.in_flight_at_faults > 0  # the kills did land mid-job
    assert report.acknowledged == report.sent


def test_a_killed_process_model_child_loses_nothing(tmp_path: Path, chaos_url: str | None) -> None:
    with session(tmp_path, "kill-child[process]", redis_url=chaos_url, model="process",
                 concurrency=2, workers=1, lease=1.0) as s:  # fmt: skip
        worker = s.stack.worker_pids()[0]
        s.producer.start_load(rate=60, batch=6, probe=Probe(ms=10))
        for _ in range(3):
            wait_for_progress(s, 30)
            s.record(faults.kill_child(s.stack))
        wait_for_progress(s, 30)
        s.producer.stop_load()
        s.settle()
        report = s.report()
        assert s.stack.worker_pids() == [worker], "the worker must survive its children's deaths"
    publish(report)
    assert_nothing_lost(report)


def stats(s: ChaosSession) -> dict[str, int]:
    return snapshot(s.stack.client).stats


@pytest.mark.parametrize("model", MODELS)
def test_sigterm_during_a_batch_finishes_or_hands_back_every_job(
    model: str, tmp_path: Path, chaos_url: str | None
) -> None:
    concurrency = 2 if model == "process" else 4
    with session(tmp_path, f"sigterm-batch[{model}]", redis_url=chaos_url, model=model,
                 concurrency=concurrency, lease=1.0) as s:  # fmt: skip
        s.producer.send([Probe(ms=200)] * 40)
        wait_until(lambda: faults.in_flight(s.stack) >= 8, what="both workers holding a batch")
        fault, code = faults.terminate_worker(s.stack)
        s.record(fault)
        s.settle()
        report = s.report()
        counters = stats(s)
    publish(report)
    assert code == 0
    assert report.invariant_violations == []
    assert (report.lost, report.phantoms, report.completed) == (0, 0, 40), report.lost_ids
    assert report.duplicates == 0  # graceful: nothing runs twice
    assert counters.get("reaped", 0) == 0  # finished or handed back, none left to its lease


def test_a_second_signal_during_the_drain_exits_at_once_and_loses_nothing(
    tmp_path: Path,
    chaos_url: str | None,
) -> None:
    with session(
        tmp_path, "sigterm-twice[asyncio]", redis_url=chaos_url, lease=1.0, grace=30.0
    ) as s:
        s.producer.send([Probe(ms=1500)] * 16)
        wait_until(lambda: faults.in_flight(s.stack) >= 16, what="jobs running and prefetched")
        fault, code = faults.terminate_worker(s.stack, second_signal_after=0.3)
        s.record(fault)
        s.settle()
        report = s.report()
    publish(report)
    assert code == 0
    assert fault.ended - fault.started < 10  # far inside the 30 s grace period
    assert report.invariant_violations == []
    assert (report.lost, report.phantoms, report.completed) == (0, 0, 16), report.lost_ids
    assert report.duplicates <= report.in_flight_at_faults


def test_a_slow_worker_with_a_live_heartbeat_keeps_its_job(
    tmp_path: Path, chaos_url: str | None
) -> None:
    with session(tmp_path, "slow-worker[asyncio]", redis_url=chaos_url, lease=1.0) as s:
        s.producer.send([Probe(ms=3500)])  # three and a half leases
        s.settle()
        report = s.report()
        counters = stats(s)
    publish(report)
    assert (report.completed, report.runs, report.duplicates) == (1, 1, 0)
    assert counters.get("reaped", 0) == 0
    assert counters.get("stale", 0) == 0


def test_a_stalled_worker_loses_its_job_and_its_late_completion_is_rejected(
    tmp_path: Path,
    chaos_url: str | None,
) -> None:
    with session(tmp_path, "stalled-worker[asyncio]", redis_url=chaos_url, lease=1.0) as s:
        s.producer.send([Probe(type=PROBE_ASYNC, do="block_loop", ms=3000, until_attempt=1)])
        wait_until(lambda: stats(s).get("stale", 0) == 1, what="the late completion rejected")
        s.settle()
        report = s.report()
        counters = stats(s)
        runs = [r for r in read_records(s.ledger_dir, "runs") if r.get("e") == "end"]
    publish(report)
    assert counters["processed"] == 1
    assert counters["reaped"] == 1
    assert report.completed == 1
    assert report.duplicates == 1  # the stalled run finished too: at-least-once, bounded
    by_attempt = {r["attempt"]: r["pid"] for r in runs}
    assert set(by_attempt) == {1, 2}
    assert by_attempt[1] != by_attempt[2]  # it ran elsewhere
    assert report.invariant_violations == []
