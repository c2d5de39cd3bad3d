"""The archiver against real Redis and a real PostgreSQL: jobs that end reach the history table
exactly once, through PostgreSQL going away (it waits, loses nothing, and Redis stays within
the stream's bound) and through the archiver dying between its COMMIT and its XACK."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.archive.archiver import GROUP, Archiver
from jobrunner.archive.metrics import ArchiverMetrics
from jobrunner.archive.store import HistoryStore, Incoming
from jobrunner.backoff import Constant
from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer
from jobrunner.job import make_job
from jobrunner.keys import QueueKeys
from jobrunner.lab.chaos.proxy import RedisProxy
from jobrunner.queue import ReliableQueue
from tests.conftest import BACKENDS, eventually, on_backend, wait_until
from tests.postgres import count
from tests.workers import ROOT, WorkerProcess

STREAM = "jr:{default}:history"


async def end_jobs(queue: ReliableQueue, ids: Sequence[str]) -> None:
    """Enqueue, reserve and ack these jobs (the worker's own calls, without a worker)."""
    await queue.enqueue_jobs([make_job("noop", {"n": i}, job_id=i) for i in ids])
    while batch := await queue.reserve("default", 1000, lease=60):
        await queue.start("default", [(r.id, r.token) for r in batch])
        await queue.ack("default", [(r.id, r.token, b'{"ok":true}') for r in batch])


def archiver(aredis: AsyncRedis, pg_url: str, **options: Any) -> Archiver:
    """One polling fast, so that a test waits tenths of seconds, not seconds."""
    options = {"consumer": "test", "block": 0.1, "queues_every": 0.1,
               "backoff": Constant(base=0.05, cap=0.05), **options}  # fmt: skip
    return Archiver(aredis, pg_url, **options)


def pg_ids(pg_url: str) -> int:
    return count(pg_url, "SELECT count(DISTINCT id) FROM job_history")


class ArchiverProcess:
    """``jobrunner archiver`` as a real process, logging to a file in ``tmp_path``."""

    def __init__(self, redis_url: str, pg_url: str, tmp_path: Path, *args: str) -> None:
        self.log_path = tmp_path / "archiver.log"
        self._log = self.log_path.open("ab")
        argv = [sys.executable, "-m", "jobrunner.cli", "archiver", "--redis-url", redis_url,
                "--pg-url", pg_url, "--log-format", "json", *args]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=self._log)

    def stop(self) -> None:
        """SIGTERM, and the clean exit it owes once its batch is done."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert self.proc.wait(30) == 0, self.log_path.read_text()
        finally:
            self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()


def on_queue(redis_url: str, work: Callable[[ReliableQueue], Awaitable[object]]) -> None:
    """Run ``work`` on a queue with history on, from a test that is not a coroutine (it runs
    processes and waits on them)."""

    async def go() -> None:
        client = AsyncRedis.from_url(redis_url)
        queue = ReliableQueue(client, count_every=0, history=100_000)
        try:
            await work(queue)
        finally:
            await queue.aclose()
            await client.aclose()

    asyncio.run(go())


def test_jobs_a_worker_runs_end_up_in_postgres_once_each_and_leave_the_stream(
    redis_url: str, sync_redis: redis.Redis, pg_url: str, tmp_path: Path
) -> None:
    """Real processes end to end: `jobrunner worker --history`, `jobrunner archiver`."""
    jobs = [make_job("noop", {"n": i}) for i in range(300)]
    jobs += [make_job("test.no_such_handler", job_id=f"nobody{i}") for i in range(20)]
    on_queue(redis_url, lambda queue: queue.enqueue_jobs(jobs))
    worker = WorkerProcess(redis_url, tmp_path, "--history", "100000")
    archiving = ArchiverProcess(redis_url, pg_url, tmp_path)
    try:
        wait_until(lambda: count(pg_url) == 320, 60, what="320 rows in the history table")
        wait_until(lambda: sync_redis.xlen(STREAM) == 0, 10, what="the stream emptied")
    finally:
        worker.stop()
        archiving.stop()
    assert pg_ids(pg_url) == 320
    assert count(pg_url, "SELECT count(*) FROM job_history WHERE state = 'dead' "
                 "AND error LIKE 'unknown job type%%'") == 20  # fmt: skip
    assert sync_redis.xpending(STREAM, GROUP)["pending"] == 0


async def test_with_postgres_down_the_archiver_waits_and_then_loses_nothing(
    aredis: AsyncRedis, hqueue: ReliableQueue, sync_redis: redis.Redis, pg_url: str
) -> None:
    host_port = pg_url.rsplit("@", 1)[1].split("/")[0].split(":")
    with RedisProxy(host_port[0], int(host_port[1])) as proxy:
        through = pg_url.replace(":".join(host_port), f"127.0.0.1:{proxy.port}")
        arch = archiver(aredis, through)
        task = asyncio.create_task(arch.run())
        await end_jobs(hqueue, ["before"])
        await eventually(lambda: asyncio.sleep(0, count(pg_url) == 1), what="the first row")
        proxy.set_down(True)
        ids = [f"j{i}" for i in range(2000)]
        await end_jobs(hqueue, ids)
        await eventually(lambda: asyncio.sleep(0, arch.counts["pg_errors"] >= 3),
                         what="three failed attempts to write")  # fmt: skip
        assert count(pg_url) == 1
        assert sync_redis.xlen(STREAM) == 2000  # kept: not acknowledged, not deleted
        proxy.set_down(False)
        await eventually(lambda: asyncio.sleep(0, count(pg_url) == 2001), what="every row")
        arch.stop()
        await task
    assert pg_ids(pg_url) == 2001
    assert sync_redis.xlen(STREAM) == 0


async def test_the_archivers_metrics_show_its_errors_and_the_backlog_while_postgres_is_down(
    aredis: AsyncRedis, hqueue: ReliableQueue, pg_url: str
) -> None:
    def value(name: str, **labels: str) -> float:
        found = metrics.registry.get_sample_value(name, labels)
        assert found is not None, (name, labels)
        return found

    metrics = ArchiverMetrics()
    assert value("archiver_events_total", event="pg_errors") == 0  # there before any failure
    assert value("archiver_last_write_timestamp_seconds") == 0
    host_port = pg_url.rsplit("@", 1)[1].split("/")[0].split(":")
    with RedisProxy(host_port[0], int(host_port[1])) as proxy:
        through = pg_url.replace(":".join(host_port), f"127.0.0.1:{proxy.port}")
        arch = archiver(aredis, through, metrics=metrics)
        task = asyncio.create_task(arch.run())
        proxy.set_down(True)
        await end_jobs(hqueue, [f"j{i}" for i in range(300)])

        def failing_with_a_backlog() -> bool:
            errors = value("archiver_events_total", event="pg_errors")
            return errors >= 2 and value("history_backlog_entries", queue="default") == 300

        await eventually(lambda: asyncio.sleep(0, failing_with_a_backlog()),
                         what="errors counted, the backlog seen")  # fmt: skip
        assert value("archiver_events_total", event="entries") == 0
        proxy.set_down(False)
        await eventually(lambda: asyncio.sleep(0, value("history_backlog_entries",
                                                        queue="default") == 0),
                         what="the backlog archived")  # fmt: skip
        arch.stop()
        await task
    assert value("archiver_events_total", event="entries") == 300
    assert value("archiver_events_total", event="written") == 300
    assert time.time() - value("archiver_last_write_timestamp_seconds") < 60


async def test_postgres_down_longer_than_the_bound_trims_history_and_counts_it(
    aredis: AsyncRedis, sync_redis: redis.Redis, pg_url: str
) -> None:
    """Redis holds at most about the bound; what was trimmed is counted, never silent."""
    queue = ReliableQueue(aredis, count_every=0, history=500)
    arch = archiver(aredis, "postgresql://postgres@127.0.0.1:1/none")  # nothing listens
    task = asyncio.create_task(arch.run())
    await end_jobs(queue, [f"j{i}" for i in range(3000)])
    assert sync_redis.xlen(STREAM) <= 600  # the bound, within one stream node (100 entries)
    trimmed = int(sync_redis.hget("jr:{default}:stats", "history_trimmed") or 0)
    await eventually(lambda: asyncio.sleep(0, arch.counts["pg_errors"] >= 2),
                     what="the archiver failing to reach PostgreSQL")  # fmt: skip
    arch.stop()
    await task
    await queue.aclose()
    arch = archiver(aredis, pg_url)
    task = asyncio.create_task(arch.run())
    await eventually(lambda: asyncio.sleep(0, sync_redis.xlen(STREAM) == 0), what="drained")
    arch.stop()
    await task
    assert trimmed > 0
    assert count(pg_url) + trimmed == 3000
    assert count(pg_url) == arch.counts["written"]


class Crashed(Exception):
    pass


class DiesAfterCommit(Archiver):
    """Dies where it hurts most: the batch is committed, its entries not yet acknowledged."""

    async def _write(self, rows: Sequence[Incoming]) -> int | None:
        await super()._write(rows)
        raise Crashed


async def test_an_archiver_dead_after_its_commit_is_replayed_without_duplicates(
    aredis: AsyncRedis, hqueue: ReliableQueue, sync_redis: redis.Redis, pg_url: str
) -> None:
    ids = [f"j{i}" for i in range(1500)]
    await end_jobs(hqueue, ids)
    dying = DiesAfterCommit(aredis, pg_url, consumer="test", queues_every=0.1, batch=1000)
    with pytest.raises(Crashed):
        await dying.run()
    assert count(pg_url) == 1000
    assert sync_redis.xpending(STREAM, GROUP)["pending"] == 1000
    again = archiver(aredis, pg_url)  # the same consumer name: its pending entries come first
    task = asyncio.create_task(again.run())
    await eventually(lambda: asyncio.sleep(0, sync_redis.xlen(STREAM) == 0), what="drained")
    again.stop()
    await task
    assert (count(pg_url), pg_ids(pg_url)) == (1500, 1500)
    assert again.counts["entries"] == 1500
    assert again.counts["written"] == 500  # the 1,000 replayed changed nothing
    assert sync_redis.xpending(STREAM, GROUP)["pending"] == 0


def test_an_archiver_killed_mid_backlog_and_restarted_archives_every_job_once(
    sync_redis: redis.Redis, redis_url: str, pg_url: str, tmp_path: Path
) -> None:
    """SIGKILL at whatever point the process is: mid-COPY, after COMMIT, mid-XACK."""
    on_queue(redis_url, lambda queue: end_jobs(queue, [f"j{i}" for i in range(20_000)]))
    args = ("--consumer", "one", "--batch", "200")
    first = ArchiverProcess(redis_url, pg_url, tmp_path, *args)
    try:
        wait_until(lambda: count(pg_url) > 0, 30, interval=0.005, what="the first batch")
    finally:
        first.kill()
    at_kill = count(pg_url)
    second = ArchiverProcess(redis_url, pg_url, tmp_path, *args)
    try:
        wait_until(lambda: sync_redis.xlen(STREAM) == 0, 60, what="the stream drained")
    finally:
        second.stop()
    assert 0 < at_kill < 20_000
    assert (count(pg_url), pg_ids(pg_url)) == (20_000, 20_000)
    assert sync_redis.xpending(STREAM, GROUP)["pending"] == 0


async def test_a_dead_archivers_pending_entries_are_claimed_by_another_after_idling(
    aredis: AsyncRedis, hqueue: ReliableQueue, sync_redis: redis.Redis, pg_url: str
) -> None:
    """Not restarted under its name: a second archiver takes its entries over (XAUTOCLAIM)."""
    await end_jobs(hqueue, [f"j{i}" for i in range(1500)])
    dying = DiesAfterCommit(aredis, pg_url, consumer="gone", queues_every=0.1, batch=1000)
    with pytest.raises(Crashed):
        await dying.run()
    other = archiver(aredis, pg_url, consumer="other", claim_idle=0.3)
    task = asyncio.create_task(other.run())
    await eventually(lambda: asyncio.sleep(0, sync_redis.xlen(STREAM) == 0), what="drained")
    other.stop()
    await task
    assert other.counts["claimed"] == 1000
    assert (count(pg_url), pg_ids(pg_url)) == (1500, 1500)
    assert sync_redis.xpending(STREAM, GROUP)["pending"] == 0


async def test_the_archiver_deletes_rows_past_the_retention_in_its_loop(
    aredis: AsyncRedis, hqueue: ReliableQueue, pg_url: str
) -> None:
    async with await HistoryStore.connect(pg_url) as store:
        old = int(time.time() * 1000) - 40 * 86_400_000
        await store.write([Incoming(id=f"old{i}", queue="default", type="noop", state="done",
                                    attempts=1, error=None, payload=None, result=None,
                                    enqueued_ms=old, started_ms=old, finished_ms=old)
                           for i in range(30)])  # fmt: skip
    await end_jobs(hqueue, ["recent"])
    arch = archiver(aredis, pg_url, retention_days=30)
    task = asyncio.create_task(arch.run())
    await eventually(lambda: asyncio.sleep(0, arch.counts["entries"] == 1), what="archived")
    arch.stop()
    await task
    assert arch.counts["expired"] == 30
    assert count(pg_url) == 1


async def test_with_redis_unreachable_the_archiver_waits_and_resumes(
    redis_server: RedisServer, hqueue: ReliableQueue, pg_url: str
) -> None:
    with RedisProxy("127.0.0.1", redis_server.port) as proxy:
        client = AsyncRedis.from_url(proxy.url)
        arch = archiver(client, pg_url)
        task = asyncio.create_task(arch.run())
        await end_jobs(hqueue, ["first"])
        await eventually(lambda: asyncio.sleep(0, count(pg_url) == 1), what="the first row")
        proxy.set_down(True)
        await end_jobs(hqueue, [f"j{i}" for i in range(100)])
        await eventually(lambda: asyncio.sleep(0, arch.counts["redis_errors"] >= 3),
                         what="three failed attempts to reach Redis")  # fmt: skip
        assert count(pg_url) == 1
        proxy.set_down(False)
        await eventually(lambda: asyncio.sleep(0, count(pg_url) == 101), what="every row")
        arch.stop()
        await task
        await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    return on_backend(request)


async def test_the_archiver_drains_several_queues_on_one_redis_or_a_cluster(
    backend_url: str, pg_url: str
) -> None:
    """On a cluster each queue's stream sits in its own slot: read one at a time there."""
    client = async_redis(backend_url)
    queue = ReliableQueue(client, count_every=0, history=100_000)
    names = ["alpha", "beta", "gamma"]
    jobs = [make_job("noop", queue=name, job_id=f"{name}{i}") for name in names for i in range(200)]
    await queue.enqueue_jobs(jobs)
    for name in names:
        batch = await queue.reserve(name, 200, lease=60)
        await queue.start(name, [(r.id, r.token) for r in batch])
        await queue.ack(name, [(r.id, r.token) for r in batch])
    arch = archiver(client, pg_url)
    task = asyncio.create_task(arch.run())
    await eventually(lambda: asyncio.sleep(0, count(pg_url) == 600), what="600 rows")
    arch.stop()
    await task
    lengths = [await client.xlen(QueueKeys(name).history) for name in names]
    await queue.aclose()
    await client.aclose()
    assert lengths == [0, 0, 0]
    assert count(pg_url, "SELECT count(DISTINCT queue) FROM job_history") == 3
