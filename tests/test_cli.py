"""The ``jobrunner`` command against the session's private Redis.

The commands run ``asyncio.run`` themselves, so these tests are synchronous.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner, Result
from redis.asyncio import Redis as AsyncRedis

from jobrunner.cli import main
from jobrunner.job import JobState, decode_job
from jobrunner.queue import ReliableQueue

Q = "jr:{default}"


# Every command, each tested here or in its own file (up: test_stack.py, loadgen: test_loadgen.py).
# (job, result, cancel, pause, resume: test_cli_operate.py; archiver: test_archive_worker.py.)
COMMANDS = ["worker", "naive-worker", "api", "enqueue", "stats", "requeue", "redis", "profile",
            "up", "demo", "loadgen", "scheduler", "chaos", "experiment", "token",
            "redis-acl", "job", "result", "cancel", "pause", "resume", "shard",
            "archiver", "grpc"]  # fmt: skip
PRODUCTION = ["worker", "enqueue", "stats", "requeue", "scheduler", "token", "redis-acl", "job",
              "result", "cancel", "pause", "resume", "shard"]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the URL a test passes may reach the CLI, never one from the machine's environment."""
    for name in list(os.environ):
        if name.upper().startswith("JOBRUNNER_") or name.upper() == "REDIS_URL":
            monkeypatch.delenv(name)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return result


def stats_rows(redis_url: str) -> dict[str, dict[str, Any]]:
    rows = json.loads(ok("stats", "--json", "--redis-url", redis_url).stdout)
    return {row["queue"]: row for row in rows}


def with_queue(redis_url: str, work: Any) -> Any:
    """Run ``await work(queue)`` on a fresh client and event loop, as a sync test can."""

    async def go() -> Any:
        client = AsyncRedis.from_url(redis_url)
        try:
            return await work(ReliableQueue(client))
        finally:
            await client.aclose()

    return asyncio.run(go())


def dead_letter(redis_url: str, count: int, queue: str = "default") -> list[str]:
    """Enqueue ``count`` jobs, reserve them and fail each one straight to dead."""

    async def work(q: ReliableQueue) -> list[str]:
        ids = [await q.enqueue("noop", {"n": i}, queue=queue) for i in range(count)]
        reservations = await q.reserve(queue, count, lease=30.0)
        assert sorted(r.id for r in reservations) == sorted(ids)
        for r in reservations:
            assert await q.fail(queue, r.id, r.token, "boom", dead=True) == "dead"
        return ids

    ids: list[str] = with_queue(redis_url, work)
    return ids


def test_enqueue_prints_one_id_per_copy_and_stores_each_job(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    result = ok("enqueue", "noop", '{"a":1}', "--count", "3", "--redis-url", redis_url)
    ids = result.stdout.split()
    assert len(ids) == 3
    assert len(set(ids)) == 3

    for job_id in ids:
        fields = sync_redis.hgetall(f"{Q}:job:{job_id}")
        assert fields[b"s"] == b"ready"
        job = decode_job(fields[b"d"])
        assert (job.id, job.type, job.payload, job.queue) == (job_id, "noop", {"a": 1}, "default")
        # Not given: left to the handler's options, and the stored retry budget is the default.
        assert (job.max_retries, job.timeout) == (None, None)
        assert fields[b"mr"] == b"3"
    assert sorted(b.decode() for b in sync_redis.lrange(f"{Q}:ready", 0, -1)) == sorted(ids)

    async def records(q: ReliableQueue) -> list[Any]:
        return [await q.get_job(job_id) for job_id in ids]

    for record in with_queue(redis_url, records):
        assert record is not None
        assert record.state is JobState.READY
        assert record.job.payload == {"a": 1}


def test_enqueue_options_reach_the_job(redis_url: str, sync_redis: redis.Redis) -> None:
    result = ok(
        "enqueue", "email", '[1, "two", null]', "--queue", "mail", "--delay", "60",
        "--max-retries", "7", "--timeout", "2.5", "--redis-url", redis_url,
    )  # fmt: skip
    (job_id,) = result.stdout.split()
    fields = sync_redis.hgetall(f"jr:{{mail}}:job:{job_id}")
    assert fields[b"s"] == b"scheduled"
    job = decode_job(fields[b"d"])
    assert (job.type, job.payload, job.queue) == ("email", [1, "two", None], "mail")
    assert (job.max_retries, job.timeout) == (7, 2.5)
    assert fields[b"mr"] == b"7"
    assert sync_redis.zscore("jr:{mail}:scheduled", job_id) is not None
    assert stats_rows(redis_url)["mail"]["scheduled"] == 1


def test_enqueue_without_payload_sends_null(redis_url: str, sync_redis: redis.Redis) -> None:
    (job_id,) = ok("enqueue", "noop", "--redis-url", redis_url).stdout.split()
    assert decode_job(sync_redis.hget(f"{Q}:job:{job_id}", "d")).payload is None


def test_enqueue_reads_the_url_from_redis_url(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert len(ok("enqueue", "noop", "{}").stdout.split()) == 1
    assert stats_rows(redis_url)["default"]["ready"] == 1


@pytest.mark.parametrize("payload", ["{a:1}", "{'a': 1}", '{"a":', "nope"])
def test_enqueue_rejects_a_payload_that_is_not_json(
    redis_url: str, sync_redis: redis.Redis, payload: str
) -> None:
    result = run("enqueue", "noop", payload, "--redis-url", redis_url)
    assert result.exit_code == 2
    assert "Invalid value for PAYLOAD" in result.stderr
    assert "not JSON" in result.stderr
    assert result.stdout == ""
    assert sync_redis.dbsize() == 0


def test_stats_json_counts_the_ready_jobs(redis_url: str) -> None:
    ok("enqueue", "noop", '{"a":1}', "--count", "3", "--redis-url", redis_url)
    rows = json.loads(ok("stats", "--json", "--redis-url", redis_url).stdout)
    assert rows == [
        {
            "queue": "default",
            "ready": 3,
            "scheduled": 0,
            "reserved": 0,
            "dead": 0,
            "counters": {"enqueued": 3},
        }
    ]


def test_stats_json_of_an_empty_redis_is_an_empty_list(redis_url: str) -> None:
    assert json.loads(ok("stats", "--json", "--redis-url", redis_url).stdout) == []


def test_stats_lists_every_queue(redis_url: str) -> None:
    ok("enqueue", "noop", "--count", "2", "--queue", "high", "--redis-url", redis_url)
    ok("enqueue", "noop", "--queue", "low", "--redis-url", redis_url)
    rows = stats_rows(redis_url)
    assert sorted(rows) == ["high", "low"]
    assert rows["high"]["ready"] == 2
    assert rows["low"]["ready"] == 1


def test_stats_table_shows_queues_and_columns(redis_url: str) -> None:
    ok("enqueue", "noop", "--count", "4", "--redis-url", redis_url)
    output = ok("stats", "--redis-url", redis_url).stdout
    for column in ("queue", "ready", "scheduled", "reserved", "dead", "processed", "retried"):
        assert column in output
    line = next(line for line in output.splitlines() if "default" in line)
    assert "4" in line


def test_requeue_without_ids_or_all_is_a_usage_error(redis_url: str) -> None:
    result = run("requeue", "--redis-url", redis_url)
    assert result.exit_code == 2
    assert "give job ids or --all" in result.stderr


def test_requeue_all_sends_every_dead_job_back_to_ready(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    ids = dead_letter(redis_url, 3)
    before = stats_rows(redis_url)["default"]
    assert (before["ready"], before["dead"]) == (0, 3)

    assert ok("requeue", "--all", "--redis-url", redis_url).stdout.strip() == "requeued 3"

    after = stats_rows(redis_url)["default"]
    assert (after["ready"], after["counters"]["requeued"]) == (3, 3)
    depths = with_queue(redis_url, lambda q: q.stats("default"))
    assert (depths.ready, depths.dead) == (3, 0)
    assert sync_redis.zcard(f"{Q}:dead") == 0
    assert sorted(b.decode() for b in sync_redis.lrange(f"{Q}:ready", 0, -1)) == sorted(ids)
    for job_id in ids:
        assert sync_redis.hmget(f"{Q}:job:{job_id}", "s", "a", "e") == [b"ready", b"0", b"boom"]


def test_stats_dead_is_the_current_depth_after_a_requeue(redis_url: str) -> None:
    dead_letter(redis_url, 2)
    ok("requeue", "--all", "--redis-url", redis_url)
    assert stats_rows(redis_url)["default"]["dead"] == 0


def test_requeue_by_id_moves_only_those_jobs(redis_url: str) -> None:
    first, second, third = dead_letter(redis_url, 3)
    result = ok("requeue", first, third, "no-such-id", "--redis-url", redis_url)
    assert result.stdout.strip() == "requeued 2"

    async def states(q: ReliableQueue) -> list[JobState]:
        records = [await q.get_job(job_id) for job_id in (first, second, third)]
        return [r.state for r in records if r is not None]

    assert with_queue(redis_url, states) == [JobState.READY, JobState.DEAD, JobState.READY]


def test_requeue_all_of_another_queue_leaves_default_alone(redis_url: str) -> None:
    dead_letter(redis_url, 1)
    dead_letter(redis_url, 2, queue="other")
    result = ok("requeue", "--all", "--queue", "other", "--redis-url", redis_url)
    assert result.stdout.strip() == "requeued 2"

    async def depths(q: ReliableQueue) -> dict[str, tuple[int, int]]:
        out = {}
        for name in ("default", "other"):
            stats = await q.stats(name)
            out[name] = (stats.ready, stats.dead)
        return out

    assert with_queue(redis_url, depths) == {"other": (2, 0), "default": (0, 1)}


def test_requeue_all_with_nothing_dead_requeues_nothing(redis_url: str) -> None:
    assert ok("requeue", "--all", "--redis-url", redis_url).stdout.strip() == "requeued 0"


def test_main_help_lists_every_command() -> None:
    output = ok("--help").stdout
    assert "Usage:" in output
    for name in main.commands:  # type: ignore[attr-defined]
        assert name in output


@pytest.mark.parametrize(
    "command",
    COMMANDS,
)
def test_every_command_has_help(command: str) -> None:
    output = ok(command, "--help").stdout
    if command == "demo":  # its options are the demo script's own (argparse)
        assert "--jobs" in output
        return
    assert output.startswith(f"Usage: main {command}")
    assert "--help" in output


def test_the_command_list_is_the_one_tested_above() -> None:
    assert main.list_commands(click.Context(main)) == sorted(COMMANDS)


def test_only_the_production_commands_are_imported_with_the_cli() -> None:
    assert sorted(main.commands) == sorted(PRODUCTION)  # type: ignore[attr-defined]


def test_the_top_level_help_lists_every_command_and_the_extra_each_needs() -> None:
    output = ok("--help").stdout
    for command in COMMANDS:
        assert f"  {command} " in output, command
    assert "loadgen" in output.split("API, lab and dev commands")[1]
    for extra in ("[lab]", "[api]", "[demo]"):
        assert extra in output


def test_a_command_whose_extra_is_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_aiohttp(name: str, *args: Any) -> Any:
        return None if name == "aiohttp" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_aiohttp)
    result = run("loadgen", "--jobs", "5")
    assert result.exit_code == 1
    assert "needs the module 'aiohttp'" in result.output
    assert "pip install 'jobrunner[lab]'" in result.output
    assert "[lab]" in run("--help").output
