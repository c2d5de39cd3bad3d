"""The producer clients against real worker processes: results, waiting, cancellation, pausing,
typed payloads, and unknown types refused, for each concurrency model."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

import tests.jobs
from jobrunner.client import Client
from jobrunner.errors import JobCancelled, JobFailed, UnknownJob, UnknownJobType
from jobrunner.registry import Registry, load_handlers
from jobrunner.sync_client import SyncClient
from tests.conftest import eventually, wait_until
from tests.workers import WorkerProcess

MODELS = ["asyncio", "thread", "process"]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Client]:
    async with Client.from_url(redis_url, registry=load_handlers(["tests.jobs"])) as c:
        yield c


@pytest.fixture
def sync_client(redis_url: str) -> Iterator[SyncClient]:
    with SyncClient.from_url(redis_url, registry=load_handlers(["tests.jobs"])) as c:
        yield c


@pytest.fixture(params=MODELS)
def worker(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[str]:
    """A worker process of each model; yields the model's name."""
    proc = WorkerProcess(redis_url, tmp_path, "--model", request.param, "--concurrency", "2")
    proc.wait_ready()
    yield str(request.param)
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.log_text()


async def test_a_result_is_kept_and_awaited_without_polling(
    client: Client, sync_client: SyncClient, worker: str, redis_url: str
) -> None:
    job_id = await client.enqueue("test.echo", {"n": 1})
    assert await client.result(job_id, timeout=30) == {"echo": {"n": 1}, "attempt": 1}
    record = await client.get(job_id)
    assert record is not None
    assert (record.state, record.has_result) == ("done", True)
    assert record.result == {"echo": {"n": 1}, "attempt": 1}
    other = sync_client.enqueue("test.echo_async", {"n": 2})
    assert sync_client.result(other, timeout=30) == {"echo": {"n": 2}}


async def test_a_dead_job_raises_its_error_and_a_bad_result_kills_it(
    client: Client, worker: str
) -> None:
    failing = await client.enqueue("test.fail_times", {"times": 10, "ledger": "redis://x"},
                                   max_retries=0)  # fmt: skip
    with pytest.raises(JobFailed) as info:
        await client.result(failing, timeout=30)
    assert info.value.error
    bad = await client.enqueue("test.returns_a_set")
    with pytest.raises(JobFailed, match="return value cannot be kept: result is a set"):
        await client.result(bad, timeout=30)


async def test_waiting_on_an_unknown_or_unfinished_job_says_so(client: Client) -> None:
    with pytest.raises(UnknownJob):
        await client.result("no-such-job", timeout=1)
    job_id = await client.enqueue("test.echo", {})  # no worker runs: it waits
    with pytest.raises(TimeoutError):
        await client.result(job_id, timeout=0.3)


async def test_a_producer_that_knows_the_handlers_refuses_an_unknown_type(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    async with Client.from_url(redis_url, registry=load_handlers(["tests.jobs"])) as knows:
        with pytest.raises(UnknownJobType, match="no handler for 'typo'; known: "):
            await knows.enqueue("typo", {})
    knows_sync = SyncClient.from_url(redis_url, registry=load_handlers(["tests.jobs"]))
    with knows_sync, pytest.raises(UnknownJobType):
        knows_sync.enqueue("typo", {})
    assert sync_redis.llen("jr:{default}:ready") == 0
    async with Client.from_url(redis_url, registry=Registry()) as blind:  # cannot tell
        assert await blind.enqueue("typo", {})


async def test_a_typed_payload_is_checked_where_the_job_is_made(
    client: Client, sync_client: SyncClient, worker: str, sync_redis: redis.Redis
) -> None:
    with pytest.raises(TypeError, match="payload does not fit Invoice"):
        await tests.jobs.invoice.enqueue({"order": "x"}, client=client)
    assert sync_redis.llen("jr:{default}:ready") == 0
    job_id = await tests.jobs.invoice.enqueue(tests.jobs.Invoice(7, 12.5), client=client)
    assert await client.result(job_id, timeout=30) == "order 7: 12.50"
    job_id = tests.jobs.invoice.enqueue_sync({"order": 8, "total": 1}, client=sync_client)
    assert sync_client.result(job_id, timeout=30) == "order 8: 1.00"


async def test_a_job_cancelled_before_it_starts_never_runs(
    client: Client, redis_url: str, sync_redis: redis.Redis
) -> None:
    job_id = await client.enqueue("test.record", {"ledger": redis_url}, delay=0.2)
    assert await client.cancel(job_id) == "cancelled"
    with pytest.raises(JobCancelled):
        await client.result(job_id, timeout=5)
    assert sync_redis.hget("test:runs", job_id) is None


@pytest.mark.slow
async def test_a_running_job_is_stopped_and_ends_cancelled(
    client: Client, worker: str, redis_url: str, sync_redis: redis.Redis
) -> None:
    """asyncio: its task is cancelled; thread: ctx.check() raises; process: the child is
    killed and replaced. Either way the job ends cancelled and the worker goes on."""
    kind = "test.stoppable_async" if worker == "asyncio" else "test.stoppable"
    job_id = await client.enqueue(kind, {"ledger": redis_url})
    wait_until(lambda: sync_redis.hget("test:runs", job_id) == b"1", 30, what="it to start")
    assert await client.cancel(job_id) == "cancelling"
    with pytest.raises(JobCancelled, match="cancelled"):
        await client.result(job_id, timeout=30)
    assert sync_redis.scard("jr:{default}:cancel") == 0
    after = await client.enqueue("test.echo", {"after": True})  # the worker carries on
    assert (await client.result(after, timeout=30))["echo"] == {"after": True}
    assert sync_redis.hget("jr:{default}:stats", "cancelled") == b"1"


@pytest.mark.slow
async def test_a_paused_queue_lets_running_jobs_finish_and_takes_no_new_ones(
    client: Client, worker: str, redis_url: str, sync_redis: redis.Redis
) -> None:
    running = [await client.enqueue("test.record", {"ledger": redis_url, "seconds": 0.5})
               for _ in range(2)]  # fmt: skip
    wait_until(lambda: sync_redis.zcard("jr:{default}:reserved") == 2, 30, what="both to start")
    assert await client.pause("default")
    waiting = [await client.enqueue("test.echo", {"i": i}) for i in range(5)]  # still accepted
    for job_id in running:
        assert await client.result(job_id, timeout=30) is None  # in flight: finished
    # Over several of the worker's maintenance and idle-poll rounds (its heartbeat moves on
    # meanwhile), it takes nothing from the paused queue.
    beat = sync_redis.zrange("jr:workers", 0, 0, withscores=True)[0][1]
    wait_until(lambda: sync_redis.zrange("jr:workers", 0, 0, withscores=True)[0][1] > beat + 500,
               10, what="the worker to beat for half a second more")  # fmt: skip
    assert (await client.stats("default")).ready == 5  # an idle worker may have claimed one
    for job_id in waiting:
        record = await client.get(job_id)
        assert record is not None
        assert record.state == "ready"
    assert await client.resume("default")

    async def drained() -> bool:
        return (await client.stats("default")).ready == 0

    await eventually(drained, 30, "the queue to drain once resumed")
    for job_id in waiting:
        await client.result(job_id, timeout=30)


async def test_pausing_under_load_stops_the_drain_and_resuming_finishes_every_job(
    client: Client, worker: str, redis_url: str, sync_redis: redis.Redis
) -> None:
    """Jobs keep arriving the whole time: paused, the processed counter stops once the jobs in
    flight finish while the queue grows; resumed, every job completes."""

    def processed() -> int:
        return int(sync_redis.hget("jr:{default}:stats", "processed") or 0)

    ids = [await client.enqueue("test.echo", {"i": i}) for i in range(300)]
    await eventually(lambda: _async(processed() >= 50), 30, "the drain to be under way")
    assert await client.pause("default")
    settled: list[int] = []

    async def stopped() -> bool:  # in-flight and prefetched jobs finish, then nothing more
        ids.extend([await client.enqueue("test.echo", {"more": True}) for _ in range(10)])
        settled.append(processed())
        return len(settled) >= 5 and len(set(settled[-5:])) == 1

    await eventually(stopped, 30, "the processed counter to stop while paused")
    assert processed() < len(ids)
    assert sync_redis.llen("jr:{default}:ready") > 0
    assert await client.resume("default")
    await eventually(lambda: _async(processed() >= len(ids)), 60, "every job once resumed")
    records = [await client.get(i) for i in ids]
    assert {r.state for r in records if r is not None} == {"done"}
    assert sum(r is not None for r in records) == len(ids)


async def _async(value: bool) -> bool:
    return value
