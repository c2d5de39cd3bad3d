"""The chaos harness's own logic: the ledger comparison, the invariant checker (it must catch
what it claims to catch), the startup warnings, and the idempotent ack the harness found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.job import make_job
from jobrunner.lab.chaos.invariants import check, check_metrics, snapshot
from jobrunner.lab.chaos.ledger import LedgerFile, read_records
from jobrunner.lab.chaos.report import RESULTS_ENV, FaultRecord, compare, publish
from jobrunner.preflight import persistence_warnings, warn_about_redis
from jobrunner.queue import ReliableQueue

pytestmark = pytest.mark.chaos


def write(directory: Path, role: str, records: list[dict[str, object]]) -> None:
    ledger = LedgerFile(directory, role)
    for record in records:
        ledger.append(record)
    ledger.close()


def run(probe: str, outcome: str = "ok", start: float = 1.0) -> dict[str, object]:
    return {"e": "end", "probe": probe, "job": probe, "attempt": 1, "pid": 1, "start": start,
            "end": start + 0.5, "outcome": outcome}  # fmt: skip


def test_compare_finds_lost_phantom_and_duplicate_probes(tmp_path: Path) -> None:
    write(tmp_path, "producer", [
        {"probe": "a", "s": "ack"}, {"probe": "b", "s": "ack"}, {"probe": "c", "s": "ack"},
        {"probe": "d", "s": "unknown"}, {"probe": "e", "s": "rejected"},
    ])  # fmt: skip
    write(tmp_path, "runs", [
        {"e": "start", "probe": "a"}, run("a"), run("a", start=5.0), run("d"), run("x"),
        run("b", "raised"),
    ])  # fmt: skip
    (tmp_path / "runs-torn.jsonl").write_bytes(b'{"e": "end", "probe": "c", "outc')  # SIGKILL
    fault = FaultRecord("kill_worker", started=2.0, ended=3.0, in_flight=4)
    report = compare("unit", tmp_path, dead={"b"}, faults=[fault])
    assert (report.sent, report.acknowledged, report.rejected, report.unknown) == (5, 3, 1, 1)
    assert (report.completed, report.dead, report.duplicates) == (3, 1, 1)  # a, d, x; b dead
    assert (report.lost_ids, report.phantom_ids) == (["c"], ["x"])
    assert report.unknown_completed == 1
    assert report.recovery_seconds == pytest.approx(2.5)  # a's second run: from 5.0 to 5.5
    assert "lost=1" in report.line()


def test_publish_adds_to_the_results_file_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = compare("unit", tmp_path, dead=set())
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    publish(report)
    assert "chaos[unit]: sent=0" in capsys.readouterr().out
    target = tmp_path / "out" / "chaos.json"
    monkeypatch.setenv(RESULTS_ENV, str(target))
    publish(report)
    publish(compare("other", tmp_path, dead=set()))
    assert set(json.loads(target.read_text())) == {"unit", "other"}


def test_a_ledger_file_is_per_process_and_appends(tmp_path: Path) -> None:
    write(tmp_path, "runs", [{"n": 1}])
    write(tmp_path, "runs", [{"n": 2}])
    assert len(list(tmp_path.glob("runs-*.jsonl"))) == 1
    assert [r["n"] for r in read_records(tmp_path, "runs")] == [1, 2]


async def seeded(aredis: AsyncRedis) -> ReliableQueue:
    queue = ReliableQueue(aredis)
    await queue.enqueue_jobs([make_job("noop", {}, job_id=f"j{i}") for i in range(6)])
    reserved = await queue.reserve("default", 3, lease=30)
    await queue.ack("default", [(r.id, r.token) for r in reserved[:2]])
    await queue.fail("default", reserved[2].id, reserved[2].token, "boom", dead=True)
    await queue.reserve("default", 1, lease=30)
    return queue


async def test_a_consistent_keyspace_passes(aredis: AsyncRedis, sync_redis: redis.Redis) -> None:
    await seeded(aredis)
    result = check(sync_redis)
    assert result.ok, str(result)
    assert result.counts["done"] == 2
    assert (result.counts["ready"], result.counts["reserved"], result.counts["dead"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda r: r.lpush("jr:{default}:ready", "j5"), "2 times in ready"),
        (lambda r: r.lrem("jr:{default}:ready", 0, "j5"), "orphan job: j5"),
        (lambda r: r.delete("jr:{default}:job:j4"), "orphan id: j4"),
        (lambda r: r.zadd("jr:{default}:dead", {"j5": 1}), "several states at once"),
        (lambda r: r.hdel("jr:{default}:job:j3", "t"), "has no lease token"),
        (lambda r: r.hset("jr:{default}:job:j3", "t", 999), "newer than the fence"),
        (lambda r: r.hincrby("jr:{default}:stats", "processed", 1), "counters: enqueued"),
    ],
)
async def test_the_checker_catches_each_kind_of_damage(
    aredis: AsyncRedis, sync_redis: redis.Redis, damage: object, expected: str
) -> None:
    await seeded(aredis)
    damage(sync_redis)  # type: ignore[operator]
    result = check(sync_redis)
    assert any(expected in v for v in result.violations), result.violations


async def test_prometheus_counters_are_checked_against_redis(
    aredis: AsyncRedis, sync_redis: redis.Redis
) -> None:
    await seeded(aredis)
    snap = snapshot(sync_redis)
    api = 'jobs_enqueued_total{type="noop",queue="default"} 6.0\n'
    worker = ('jobs_processed_total{type="noop",queue="default"} 3.0\n'
              'jobs_stale_completions_total{queue="default"} 1.0\n')  # fmt: skip
    assert check_metrics(snap, [api], [worker]) == []
    assert check_metrics(snap, [api.replace("6.0", "7.0")], [worker])
    too_few = worker.replace("3.0", "2.0")
    assert check_metrics(snap, [api], [too_few])  # every worker counted: must be equal
    assert check_metrics(snap, [api], [too_few], every_worker=False) == []  # one was killed
    two_more = worker.replace("3.0", "5.0")  # two acks lost in a Redis restart: those ran twice
    assert check_metrics(snap, [api], [two_more])
    assert check_metrics(snap, [api], [two_more], acks_lost=2) == []
    assert check_metrics(snap, [api], [two_more], acks_lost=1)


async def test_a_retried_ack_is_not_a_stale_completion(
    aredis: AsyncRedis, sync_redis: redis.Redis
) -> None:
    """Found by the dropped-reply chaos test: the retry of an ack that ran was counted stale."""
    queue = ReliableQueue(aredis)
    await queue.enqueue("noop", {}, job_id="j")
    [r] = await queue.reserve("default", 1, lease=30)
    assert await queue.ack("default", [(r.id, r.token)]) == []
    assert await queue.ack("default", [(r.id, r.token)]) == []  # the reply was lost: again
    assert await queue.ack("default", [(r.id, r.token + 1)]) == ["j"]  # not our lease: stale
    stats = sync_redis.hgetall("jr:{default}:stats")
    assert (stats[b"processed"], stats[b"stale"]) == (b"1", b"1")


def test_persistence_and_eviction_warnings() -> None:
    assert (
        persistence_warnings({"appendonly": "yes", "save": "", "maxmemory-policy": "noeviction"})
        == []
    )
    [off] = persistence_warnings({"appendonly": "no", "save": "", "maxmemory-policy": "noeviction"})
    assert "persistence is off" in off
    [rdb] = persistence_warnings({"appendonly": "no", "save": "3600 1"})
    assert "only RDB snapshots" in rdb
    [evict] = persistence_warnings({"appendonly": "yes", "maxmemory-policy": "allkeys-lru"})
    assert "evicts job keys" in evict
    assert persistence_warnings({"appendonly": "yes", "maxmemory-policy": "volatile-lru"}) == []


async def test_warnings_read_the_live_redis_and_survive_a_dead_one(aredis: AsyncRedis) -> None:
    assert any("persistence is off" in w for w in await warn_about_redis(aredis))
    dead = AsyncRedis(port=1, socket_connect_timeout=0.2)
    assert await warn_about_redis(dead) == []
    await dead.aclose()
