"""Chaos, bad jobs and bad requests: handlers that raise, hang past their timeout or kill their
worker every time, undecodable and unknown jobs, oversized and invalid requests (none a 5xx),
and Redis at maxmemory with noeviction (enqueue refused clearly, nothing evicted)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner.keys import QueueKeys
from jobrunner.lab.chaos import faults
from jobrunner.lab.chaos.invariants import snapshot
from jobrunner.lab.chaos.ledger import read_records
from jobrunner.lab.chaos.producer import Probe
from jobrunner.lab.chaos.report import publish
from jobrunner.lab.chaos.session import ChaosSession
from tests.conftest import named_for_backend, wait_until
from tests.workers import FAST_LOOPS

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

MODELS = ["asyncio", "thread", "process"]


def session(tmp_path: Path, name: str, env: dict[str, str] | None = None,
            **options: object) -> ChaosSession:  # fmt: skip
    name = named_for_backend(name, options)
    return ChaosSession(name, env={**FAST_LOOPS, **(env or {})}, ledger_dir=tmp_path / "ledger",
                        log_dir=tmp_path / "logs", **options)  # type: ignore[arg-type]  # fmt: skip


def garbage_requests(api: str, count: int, seed: int = 7) -> list[int]:
    """Invalid bodies of every kind; returns the status codes."""
    rng = random.Random(seed)
    values: list[object] = [None, True, -1, 1e308, "", "x" * 300, [], {}, [1, {"a": None}]]
    statuses = []
    with httpx.Client(base_url=api, timeout=10) as client:
        for i in range(count):
            kind = i % 3
            if kind == 0:  # not JSON at all
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
                response = client.post("/jobs", content=body,
                                       headers={"content-type": "application/json"})  # fmt: skip
            elif kind == 1:  # JSON, wrong shape or types
                fields = ["type", "data", "queue", "delay", "timeout", "max_retries", "jobs", "?"]
                body_json = {rng.choice(fields): rng.choice(values) for _ in range(3)}
                response = client.post("/jobs", json=body_json)
            else:  # odd routes and ids
                response = client.get(f"/jobs/{rng.choice(['', '..', '%00', 'x' * 500])}")
            statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize("model", MODELS)
def test_poison_of_every_kind_is_contained_and_nothing_is_lost(
    model: str, tmp_path: Path, chaos_url: str | None
) -> None:
    concurrency = 2 if model == "process" else 4
    with session(tmp_path, f"poison[{model}]", via="api", model=model, concurrency=concurrency,
                 lease=1.0, redis_url=chaos_url) as s:  # fmt: skip
        client, keys = s.stack.client, QueueKeys("default")
        s.producer.send([Probe(ms=5)] * 30)
        raising = s.producer.send([Probe(do="raise", max_retries=2)] * 3).ids
        hanging = s.producer.send([Probe(do="hang", timeout=0.5, max_retries=1)] * 2).ids
        killer = s.producer.send([Probe(do="exit", max_retries=1)]).ids
        too_big = s.producer.send([Probe(pad=2 * 1024 * 1024)])
        client.hset(keys.job("undecodable"), mapping={"d": b"\xff not a job", "s": "ready",
                                                      "a": 0, "mr": 3})  # fmt: skip
        client.lpush(keys.ready, "undecodable")
        client.hincrby(keys.stats, "enqueued", 1)
        statuses = garbage_requests(s.stack.api_url or "", 60)

        def settled() -> bool:  # a supervisor restarts what the killer job ends
            faults.replace_dead_workers(s.stack, 2)
            d = s.stack.depth()
            return d["ready"] + d["scheduled"] + d["reserved"] == 0

        wait_until(settled, timeout=60, interval=0.2, what="every job completed or dead")
        report = s.report()
        dead_ids = set(client.zrange(keys.dead, 0, -1))
        errors = {i: client.hget(keys.job(i), "e") for i in dead_ids}
        delivered = {i: int(client.hget(keys.job(i), "a") or 0) for i in dead_ids - {"undecodable"}}
        runs = [r for r in read_records(s.ledger_dir, "runs") if r.get("e") == "start"]
    publish(report)
    assert max(statuses) < 500, sorted(set(statuses))
    assert too_big.status != "ack"  # a 413, or the connection closed on the 2 MiB upload
    assert too_big.code.startswith("413") or too_big.status == "unknown", too_big
    assert report.invariant_violations == []
    assert (report.lost, report.phantoms) == (0, 0), report.lost_ids
    assert report.completed == 30
    assert dead_ids == {*raising, *hanging, *killer, "undecodable"}
    assert "cannot decode job" in (errors["undecodable"] or "")
    runs_of = {job: sum(1 for r in runs if r["job"] == job) for job in dead_ids - {"undecodable"}}
    bound = {**dict.fromkeys(raising, 3), **dict.fromkeys(hanging, 2), **dict.fromkeys(killer, 2)}
    # Dead after a bounded number of deliveries (max_retries + 1).
    assert all(1 <= delivered[j] <= bound[j] for j in bound), (delivered, bound)
    # A delivery is charged when the worker hands a job to its runner, not when it reserves
    # it: a job prefetched beside the killer is handed back uncharged (once it could die
    # unrun). One handed over in the same instant as the killer may be charged for a start the
    # killer cut short (its handler's first line never ran), so a job is charged at least as
    # often as it ran (in the thread and asyncio models: in the process model a dead child's
    # finished but unreported jobs run again uncharged, guarantees.md says so). Each dies of
    # its own fault, having run, or of the killer's collateral.
    collateral = ("lease expired", "died")
    for group, reason in ((raising, "raised on attempt"), (hanging, "timeout"),
                          (killer, "exit")):  # fmt: skip
        for job in group:
            error = errors[job] or ""
            if model != "process":  # there a dead child's finished, unreported jobs rerun
                assert runs_of[job] <= delivered[job], (job, error, runs_of, delivered)
            if reason in error:
                assert runs_of[job] >= 1, (job, error, runs_of)
            else:
                assert any(c in error for c in collateral), error


@pytest.mark.parametrize("model", MODELS)
def test_jobs_prefetched_beside_a_worker_killer_lose_no_attempt(
    model: str, tmp_path: Path, chaos_url: str | None
) -> None:
    """One slot, a deep prefetch, a job that kills its worker at every start, and behind it
    jobs allowed a single attempt (max_retries 0). Charged at reservation, each death cost the
    prefetched jobs their only attempt and they died unrun; charged at start, they are handed
    back whole and all complete, while the killer is dead after max_retries + 1 starts."""
    report, dead, killer, starts, attempts, errors = killer_and_bystanders(
        model, "start", tmp_path, chaos_url
    )
    bystanders = [i for i in attempts if i != killer]
    assert killer in dead
    assert starts.count(killer) == attempts[killer] == 3
    # No bystander dies unrun. One that ran and finished while its ack (process model: its
    # outcome) was still buffered when the killer struck did start, so that delivery counts:
    # with max_retries 0 it may be dead-lettered, having run. The others complete.
    died = dead - {killer}
    assert all(starts.count(i) >= 1 for i in died), (errors, starts)
    assert report.completed == 20 - len(died)
    assert all(starts.count(i) >= 1 for i in bystanders), starts
    assert (report.lost, report.phantoms) == (0, 0), report.lost_ids
    assert report.invariant_violations == []


def test_charged_on_reserve_the_prefetched_bystanders_die_unrun(tmp_path: Path) -> None:
    """The negative control: ``charge_on="reserve"`` (no start round trip) charges every job a
    worker holds, so each death of the killer's worker costs the prefetched jobs their one
    attempt, and some are dead-lettered without ever having run."""
    report, dead, killer, starts, _, _ = killer_and_bystanders("asyncio", "reserve", tmp_path)
    died_unrun = {i for i in dead - {killer} if i not in starts}
    assert killer in dead
    assert died_unrun, "charged at reservation, bystanders should have died unrun"
    assert report.completed + len(dead - {killer}) == 20  # dead-lettered, never lost
    assert (report.lost, report.phantoms) == (0, 0)


def killer_and_bystanders(
    model: str, charge_on: str, tmp_path: Path, redis_url: str | None = None
) -> tuple[Any, set[str], str, list[str], dict[str, int], dict[str, str]]:
    """A killer (max_retries 2) ahead of 20 bystanders (max_retries 0), all waiting before the
    worker starts, so its first reservation holds them all: one slot, a deep prefetch.
    Supervised until every job is done or dead. The report is published."""
    with session(tmp_path, f"prefetched-beside-killer[{model},{charge_on}]", workers=0,
                 model=model, concurrency=1, prefetch=20, lease=1.0,
                 env={"JOBRUNNER_CHARGE_ON": charge_on}, redis_url=redis_url) as s:  # fmt: skip
        client, keys = s.stack.client, QueueKeys("default")
        [killer] = s.producer.send([Probe(do="exit", max_retries=2)]).ids
        bystanders = s.producer.send([Probe(ms=5, max_retries=0)] * 20).ids
        s.stack.add_worker(wait=False)  # its first reservation: the killer and all behind it

        def settled() -> bool:
            faults.replace_dead_workers(s.stack, 1)
            d = s.stack.depth()
            return d["ready"] + d["scheduled"] + d["reserved"] == 0

        wait_until(settled, timeout=90, interval=0.2, what="every job completed or dead")
        report = s.report()
        starts = [r["job"] for r in read_records(s.ledger_dir, "runs") if r.get("e") == "start"]
        dead = set(client.zrange(keys.dead, 0, -1))
        attempts = {i: int(client.hget(keys.job(i), "a") or 0) for i in [killer, *bystanders]}
        errors = {i: client.hget(keys.job(i), "e") or "" for i in dead}
    publish(report)
    return report, dead, killer, starts, attempts, errors


def test_a_batch_near_maxmemory_is_refused_whole_not_half_written(tmp_path: Path) -> None:
    """One request, one script: at maxmemory Redis refuses a script before its first write,
    never in the middle, so a refused batch wrote nothing. Split into chunks of 1,000 (as it
    was), this batch was answered 503 with its first two chunks written: jobs the ledger calls
    refused then ran (2,000 phantoms), and a client that retried got them twice."""
    with session(tmp_path, "maxmemory[batch]", via="api", workers=0) as s:
        client = s.stack.client
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 1_500_000)
        refused = s.producer.send([Probe(pad=80)] * 4000)  # its arguments alone pass the limit
        written = len(snapshot(client).jobs)
        client.config_set("maxmemory", 0)
        accepted = s.producer.send([Probe(pad=80)] * 4000)
        s.stack.add_worker()
        s.settle()
        report = s.report()
    publish(report)
    assert (refused.status, refused.code) == ("rejected", "503 redis_full")
    assert written == 0
    assert accepted.status == "ack"
    assert (report.acknowledged, report.completed, report.rejected) == (4000, 4000, 4000)
    assert (report.lost, report.phantoms) == (0, 0)
    assert report.invariant_violations == []


def test_redis_at_maxmemory_refuses_enqueues_clearly_and_evicts_nothing(tmp_path: Path) -> None:
    with session(tmp_path, "maxmemory[noeviction]", via="api", workers=0) as s:
        client = s.stack.client
        accepted = [s.producer.send([Probe(pad=1000)] * 50) for _ in range(4)]
        assert {a.status for a in accepted} == {"ack"}
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 100_000)
        refused = s.producer.send([Probe(pad=1000)] * 10)
        assert (refused.status, refused.code) == ("rejected", "503 redis_full")
        answer = httpx.post(f"{s.stack.api_url}/jobs", json={"type": "chaos.probe", "data": {}},
                            headers=s.stack.api_headers)  # fmt: skip
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        snap = snapshot(client)
        assert len(snap.ready) == len(snap.jobs) == 200  # nothing evicted, nothing half-written
        assert client.info("stats")["evicted_keys"] == 0
        # Relief, and a policy that could evict: the next worker to start says so.
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", "allkeys-lru")
        s.stack.add_worker()
        s.settle()
        report = s.report()
        warned = s.stack.workers[0].log_path.read_text()
    publish(report)
    assert "maxmemory-policy is allkeys-lru" in warned
    assert (report.acknowledged, report.completed, report.lost) == (200, 200, 0)
    assert report.rejected == 10
    assert report.invariant_violations == []
