"""Sharded queues: one queue over N shards (jobrunner/shards.py), on one Redis and on a cluster."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
import pytest
import redis
from click.testing import CliRunner

from jobrunner.api.live import LiveFeed
from jobrunner.calls import NewJob
from jobrunner.cli import main
from jobrunner.config import Settings
from jobrunner.job import make_job, queue_of
from jobrunner.keys import QueueKeys
from jobrunner.queue import ReliableQueue
from jobrunner.shards import check_shards, expand, logical_of, place, shard_name
from jobrunner.sync_client import SyncClient
from tests.api_server import running_api
from tests.conftest import BACKENDS, eventually, on_backend
from tests.test_worker_contract import running_worker, runs, settings

redis_url = pytest.fixture(params=BACKENDS)(on_backend)


def test_a_job_lands_on_the_shard_its_id_or_key_names_and_fresh_ids_spread_evenly() -> None:
    counts = {"emails": 4}
    chosen = NewJob(make_job("noop", {}, queue="emails", job_id="order-7"))
    assert place(chosen, counts).job.id == place(chosen, counts).job.id
    assert queue_of(place(chosen, counts).job.id) == place(chosen, counts).job.queue
    keyed = [NewJob(make_job("noop", {}, queue="emails"), 0, "k-1") for _ in range(5)]
    assert len({place(item, counts).job.queue for item in keyed}) == 1  # the key decides
    spread = Counter(place(NewJob(make_job("noop", {}, queue="emails")), counts).job.queue
                     for _ in range(4000))  # fmt: skip
    assert set(spread) == {"emails", "emails~1", "emails~2", "emails~3"}
    assert all(800 <= n <= 1200 for n in spread.values()), spread
    plain = NewJob(make_job("noop", {}, queue="other"))
    assert place(plain, counts) is plain


def test_shards_take_turns_at_coming_first_and_keep_their_queue_s_priority() -> None:
    counts = {"bulk": 3}
    assert expand(["high", "bulk", "low"], counts, turn=0) == [
        "high", "bulk", "bulk~1", "bulk~2", "low"]  # fmt: skip
    assert expand(["high", "bulk", "low"], counts, turn=1)[1:4] == ["bulk~1", "bulk~2", "bulk"]
    assert shard_name("bulk", 0) == "bulk"  # shard 0 is the queue: its old jobs stay served
    assert logical_of("bulk~2") == "bulk"


@pytest.mark.parametrize(
    ("queue", "n", "current", "why"),
    [("q", 2, 4, "never shrink"), ("q", 1, 1, "2 to"), ("q~1", 4, 1, "shard's name")],
)
def test_a_declaration_that_would_strand_jobs_or_name_a_shard_is_refused(
    queue: str, n: int, current: int, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        check_shards(queue, n, current)


async def test_a_sharded_queue_is_one_queue_to_producers_readers_and_workers(
    queue: ReliableQueue, redis_url: str, sync_redis: redis.Redis
) -> None:
    assert await queue.declare_shards("emails", 4) == 1
    ids = [await queue.enqueue("test.record", {"ledger": redis_url}, queue="emails")
           for _ in range(80)]  # fmt: skip
    assert {logical_of(queue_of(i)) for i in ids} == {"emails"}
    assert len({queue_of(i) for i in ids}) == 4
    stats = await queue.stats("emails")
    assert stats.ready == 80
    assert [s.name for s in stats.shards] == ["emails", "emails~1", "emails~2", "emails~3"]
    assert sum(s.ready for s in stats.shards) == 80
    assert await queue.queue_names() == ["emails"]
    if queue.cluster:  # the point of shards: the queue's keys spread over the masters
        homes = {sync_redis.get_node_from_key(QueueKeys(s.name).ready).port  # type: ignore[attr-defined]
                 for s in stats.shards}  # fmt: skip
        assert len(homes) >= 2
    s = settings(redis_url, "asyncio", queues=["emails"])
    async with running_worker(queue, s):
        await eventually(lambda: _processed(queue), what="every job to run")
    assert runs(sync_redis) == dict.fromkeys(ids, 1)  # each ran once, whatever its shard


async def _processed(queue: ReliableQueue) -> bool:
    return (await queue.stats("emails")).counters.get("processed", 0) == 80


async def test_dead_jobs_of_every_shard_are_listed_requeued_and_paused_as_one_queue(
    queue: ReliableQueue,
) -> None:
    await queue.declare_shards("bulk", 3)
    ids = [await queue.enqueue("noop", queue="bulk") for _ in range(9)]
    for shard in ("bulk", "bulk~1", "bulk~2"):
        for r in await queue.reserve(shard, 10, lease=30):
            await queue.fail(shard, r.id, r.token, f"boom {r.id}", dead=True)
    dead = await queue.dead_jobs("bulk", 0, 50)
    assert sorted(record.job.id for record in dead) == sorted(ids)
    assert len(await queue.dead_jobs("bulk", 2, 4)) == 4
    assert await queue.requeue("bulk", ids[:2]) == 2  # by id: each names its shard
    assert await queue.requeue("bulk") == 7
    assert (await queue.stats("bulk")).ready == 9
    assert await queue.pause("bulk")
    assert all(s.paused for s in (await queue.stats("bulk")).shards)


async def test_a_queue_that_grows_shards_keeps_serving_the_jobs_it_held(
    queue: ReliableQueue,
) -> None:
    before = await queue.enqueue("noop", queue="jobs")
    await queue.declare_shards("jobs", 2)
    after = [await queue.enqueue("noop", queue="jobs", job_id=uuid.uuid4().hex)
             for _ in range(20)]  # fmt: skip
    served = {r.id for shard in await queue.serving(["jobs"])
              for r in await queue.reserve(shard, 50, lease=30)}  # fmt: skip
    assert served == {before, *after}


def test_the_sync_client_places_jobs_on_shards_and_reads_the_queue_as_one(
    redis_url: str,
) -> None:
    with SyncClient.from_url(redis_url) as client:
        assert CliRunner().invoke(main, ["shard", "reports", "3", "--redis-url", redis_url]
                                  ).exit_code == 0  # fmt: skip
        client.shards.refresh = 0  # re-read at once: the declaration is this test's own
        ids = client.enqueue_many([{"type": "noop", "queue": "reports"}] * 30)
        assert len({queue_of(i) for i in ids}) == 3
        stats = client.stats("reports")
        assert (stats.ready, len(stats.shards)) == (30, 3)
        assert client.get(ids[0]) is not None
    shrink = CliRunner().invoke(main, ["shard", "reports", "2", "--redis-url", redis_url])
    assert shrink.exit_code != 0
    assert "never shrink" in shrink.output


def test_the_api_shows_a_sharded_queue_as_one_with_each_shard_beside(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    assert CliRunner().invoke(main, ["shard", "bulk", "2", "--redis-url", redis_url]).exit_code == 0
    with (
        running_api(Settings(redis_url=redis_url, queues=["default", "bulk"])) as base,
        httpx.Client(base_url=base, headers=base.headers, timeout=10) as http,
    ):
        ids = http.post("/jobs", json={"jobs": [{"type": "noop", "queue": "bulk"}] * 20}).json()
        assert {queue_of(i) for i in ids["ids"]} == {"bulk", "bulk~1"}
        [bulk] = [q for q in http.get("/queues").json() if q["name"] == "bulk"]
        assert bulk["ready"] == 20
        assert [s["name"] for s in bulk["shards"]] == ["bulk", "bulk~1"]
        assert sum(s["ready"] for s in bulk["shards"]) == 20
        shard_id = next(i for i in ids["ids"] if queue_of(i) == "bulk~1")
        assert http.get(f"/jobs/{shard_id}").json()["state"] == "ready"
        assert http.post(f"/jobs/{shard_id}/cancel").json()["state"] == "cancelled"


async def test_the_dashboard_samples_a_sharded_queue_as_one_row_with_its_shards(
    queue: ReliableQueue,
) -> None:
    await queue.declare_shards("bulk", 3)
    for _ in range(12):
        await queue.enqueue("noop", queue="bulk")
    snapshot = await LiveFeed(queue, ["default", "bulk"]).read()
    [bulk] = [row for row in snapshot["queues"] if row["name"] == "bulk"]
    assert bulk["ready"] == 12
    assert [s["name"] for s in bulk["shards"]] == ["bulk", "bulk~1", "bulk~2"]
    assert sum(s["ready"] for s in bulk["shards"]) == 12
