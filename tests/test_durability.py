"""The durability knob (``wait_replicas``): an enqueue and an ack are followed by ``WAIT`` on
their connection; an enqueue no replica confirmed in time is refused, an ack goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from jobrunner.dev.redis_server import RedisServer
from jobrunner.errors import RedisUnavailable
from jobrunner.queue import ReliableQueue
from tests.conftest import wait_until


@pytest.fixture
def primary() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def linked_replicas(port: int) -> int:
    with redis.Redis(port=port) as client:
        return int(client.info("replication")["connected_slaves"])


async def test_an_enqueue_no_replica_confirms_is_refused_though_it_is_on_the_primary(
    primary: RedisServer,
) -> None:
    client = AsyncRedis.from_url(primary.url)
    queue = ReliableQueue(client, count_every=0, wait_replicas=1, wait_timeout=0.05)
    with pytest.raises(RedisUnavailable, match="a failover now could lose it"):
        await queue.enqueue("noop", job_id="j1")
    assert (await queue.get_job("j1")) is not None  # written, only not confirmed
    await queue.aclose()
    await client.aclose()


async def test_with_a_replica_linked_enqueues_and_acks_return_once_it_holds_them(
    primary: RedisServer,
) -> None:
    with RedisServer(extra_args=("--replicaof", "127.0.0.1", str(primary.port))) as replica:
        wait_until(lambda: linked_replicas(primary.port) == 1, 10, what="the replica to link")
        client = AsyncRedis.from_url(primary.url)
        queue = ReliableQueue(client, count_every=0, wait_replicas=1, wait_timeout=5)
        job_id = await queue.enqueue("noop")
        with redis.Redis(port=replica.port) as read:  # WAIT returned: the replica has it now
            assert read.exists(queue.keys("default").job(job_id)) == 1
            [leased] = await queue.reserve("default", 1, lease=30, start=1)
            assert await queue.ack("default", [(leased.id, leased.token)]) == []
            assert read.hget(queue.keys("default").job(job_id), "s") == b"done"
        assert queue.unreplicated == 0
        second = await queue.enqueue("noop")
        replica.stop()  # no replica left: an ack goes on, counted as not replicated
        wait_until(lambda: linked_replicas(primary.port) == 0, 10, what="the link to drop")
        acker = ReliableQueue(client, count_every=0, wait_replicas=1, wait_timeout=0.05)
        [leased] = await acker.reserve("default", 1, lease=30, start=1)
        assert leased.id == second
        assert await acker.ack("default", [(leased.id, leased.token)]) == []
        assert acker.unreplicated == 1
        record = await acker.get_job(second)
        assert record is not None
        assert record.state == "done"
        for q in (queue, acker):
            await q.aclose()
        await client.aclose()
