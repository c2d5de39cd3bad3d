"""Chaos, Redis: SIGKILLed and restarted mid-traffic with AOF (nothing acknowledged lost, the API
answers 503 meanwhile, workers reconnect without exiting) and without persistence (the negative
control: the loss is reported, and every process warned at startup)."""

from __future__ import annotations

import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from jobrunner.lab.chaos import faults
from jobrunner.lab.chaos.invariants import check_metrics, snapshot
from jobrunner.lab.chaos.ledger import read_records
from jobrunner.lab.chaos.producer import Probe
from jobrunner.lab.chaos.report import publish
from jobrunner.lab.chaos.session import ChaosSession
from tests.conftest import wait_until
from tests.workers import FAST_LOOPS

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

PREFLIGHT = "redis settings can lose jobs"


def session(tmp_path: Path, name: str, **options: object) -> ChaosSession:
    return ChaosSession(name, env=FAST_LOOPS, ledger_dir=tmp_path / "ledger",
                        log_dir=tmp_path / "logs", **options)  # type: ignore[arg-type]  # fmt: skip


def answers(s: ChaosSession) -> Counter[str]:
    return Counter(r["code"] for r in read_records(s.ledger_dir, "producer"))


def wait_for_progress(s: ChaosSession, jobs: int) -> None:
    target = s.completions() + jobs
    wait_until(lambda: s.completions() >= target, timeout=30, interval=0.1, what="progress")


def logs_mentioning(s: ChaosSession, text: str) -> set[str]:
    return {p.name for p in s.stack.log_dir.glob("*.log") if text in p.read_text(errors="replace")}


def test_redis_killed_and_restarted_with_aof_loses_nothing_acknowledged(tmp_path: Path) -> None:
    with session(tmp_path, "redis-restart[aof]", via="api", redis_appendonly=True) as s:
        workers = set(s.stack.worker_pids())
        s.producer.start_load(rate=150, batch=5, probe=Probe(ms=40))
        wait_for_progress(s, 50)
        s.record(faults.restart_redis(s.stack, down_for=1.5))
        wait_for_progress(s, 50)
        s.producer.stop_load()
        s.settle()
        report = s.report()
        assert set(s.stack.worker_pids()) == workers, "workers must ride out the outage"
        api_url, *worker_urls = s.stack.metrics_urls()
        texts = [urllib.request.urlopen(url, timeout=10).read().decode() for url in worker_urls]
        request = urllib.request.Request(api_url, headers=s.stack.api_headers)
        api_text = urllib.request.urlopen(request, timeout=10).read().decode()
        # acks of the last second before the kill can be lost with the AOF's unsynced writes:
        # those jobs ran again (the ledger's duplicates), counted twice by the workers
        counters = check_metrics(snapshot(s.stack.client), [api_text], texts,
                                 acks_lost=report.duplicates)  # fmt: skip
        assert logs_mentioning(s, PREFLIGHT) == set()  # AOF on: nothing to warn about
    publish(report)
    codes = answers(s)
    assert codes["503 redis_unavailable"] > 0, codes  # the API said so while Redis was down
    assert set(codes) <= {"202", "503 redis_unavailable", "ClientConnectorError"}, codes
    assert report.invariant_violations == []
    assert report.lost == 0, report.lost_ids
    assert report.phantoms == 0, report.phantom_ids
    assert report.duplicates <= report.in_flight_at_faults
    assert report.recovery_seconds is not None
    assert counters == []  # the Prometheus counters agree with Redis's after the restart


def test_redis_restarted_without_persistence_loses_jobs_and_it_is_reported(
    tmp_path: Path,
) -> None:
    with session(tmp_path, "redis-restart[no-persistence]", via="api") as s:
        s.producer.start_load(rate=100, batch=5, probe=Probe(ms=10))
        wait_for_progress(s, 50)
        s.producer.send([Probe(ms=50)] * 200)  # a backlog in Redis at the moment it dies
        s.record(faults.restart_redis(s.stack, down_for=0.5))
        wait_for_progress(s, 50)
        s.producer.stop_load()
        s.settle()
        report = s.report()
        warned = logs_mentioning(s, PREFLIGHT)
    publish(report)
    assert report.lost > 0  # the negative control: the ledger sees what Redis forgot
    assert report.phantoms == 0
    assert sorted(name.split("-")[0] for name in warned) == ["api", "worker", "worker"]
