"""The producer's pipelining connections and coalesced enqueues, against a real Redis: replies
reach their callers, errors stay with theirs, a lost connection is reported and replaced, a
silent server times out."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import hiredis
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobrunner.calls import Enqueued, NewJob, enqueue_refusal
from jobrunner.client import Client
from jobrunner.errors import QueueFull, RedisUnavailable
from jobrunner.pipelined import PipelinedConnection, SyncPipelinedConnection, error_of
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Registry
from jobrunner.sync_client import SyncClient


async def test_sixty_four_concurrent_callers_each_get_their_own_reply(redis_url: str) -> None:
    conn = PipelinedConnection.from_redis(AsyncRedis.from_url(redis_url))
    try:
        replies = await asyncio.gather(*(conn.execute("ECHO", f"m{i}") for i in range(64 * 20)))
        assert replies == [f"m{i}".encode() for i in range(64 * 20)]
    finally:
        await conn.aclose()


def test_a_cluster_nodes_refusals_become_the_errors_the_cluster_router_retries() -> None:
    """A MOVED read as a plain error reply was not retried: after a resharding every call on
    the moved slot failed for good, where the map should have been read afresh."""
    moved = error_of(hiredis.ReplyError("MOVED 5718 127.0.0.1:7001"))
    assert isinstance(moved, MovedError)
    assert (moved.slot_id, moved.node_addr) == (5718, ("127.0.0.1", 7001))
    assert isinstance(error_of(hiredis.ReplyError("ASK 5718 127.0.0.1:7002")), AskError)
    refused = error_of(hiredis.ReplyError("TRYAGAIN Multiple keys request during rehashing"))
    assert isinstance(refused, TryAgainError)
    assert isinstance(error_of(hiredis.ReplyError("CLUSTERDOWN Hash slot not served")),
                      ClusterDownError)  # fmt: skip
    plain = error_of(hiredis.ReplyError("ERR unknown command"))
    assert type(plain) is ResponseError
    assert str(plain) == "ERR unknown command"
    # one the router gave up retrying (a slot move longer than its retry_for) is, to an
    # enqueue's caller, Redis unavailable: refused whole, nothing written (the API's 503)
    for reply in ("MOVED 1 h:1", "ASK 1 h:1", "TRYAGAIN x", "CLUSTERDOWN x"):
        told = enqueue_refusal(error_of(hiredis.ReplyError(reply)))
        assert isinstance(told, RedisUnavailable)
        assert "nothing was written" in str(told)
    assert enqueue_refusal(plain) is None


async def test_an_error_reply_raises_for_its_caller_only(redis_url: str) -> None:
    conn = PipelinedConnection.from_redis(AsyncRedis.from_url(redis_url))
    try:
        good, bad, after = await asyncio.gather(
            conn.execute("ECHO", "a"), conn.execute("NOSUCHCOMMAND"), conn.execute("ECHO", "b"),
            return_exceptions=True,
        )  # fmt: skip
        assert (good, after) == (b"a", b"b")
        assert isinstance(bad, ResponseError)
    finally:
        await conn.aclose()


async def test_a_killed_connection_fails_its_callers_and_the_next_call_reconnects(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    conn = PipelinedConnection.from_redis(AsyncRedis.from_url(redis_url))
    try:
        await conn.execute("CLIENT", "SETNAME", "victim")
        blocked = asyncio.ensure_future(conn.execute("BLPOP", "nothing-comes", 30))
        await asyncio.sleep(0)  # written
        for client in sync_redis.client_list():
            if client["name"] == "victim":
                sync_redis.client_kill_filter(_id=client["id"])
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(blocked, 10)
        assert await conn.execute("ECHO", "again") == b"again"
    finally:
        await conn.aclose()


async def test_a_flushed_script_is_loaded_again(redis_url: str, sync_redis: redis.Redis) -> None:
    async with Client.from_url(redis_url, registry=Registry()) as client:
        await client.enqueue("email", {"n": 1})
        sync_redis.script_flush()
        job_id = await client.enqueue("email", {"n": 2})
        assert (await client.get(job_id)) is not None


async def test_a_password_and_an_acl_user_from_the_url_are_used(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    sync_redis.acl_setuser("producer", enabled=True, passwords=["+s3cret"], keys=["*"],
                           commands=["+@all"])  # fmt: skip
    try:
        url = redis_url.replace("redis://", "redis://producer:s3cret@")
        conn = PipelinedConnection.from_redis(AsyncRedis.from_url(url))
        try:
            assert await conn.execute("ACL", "WHOAMI") == b"producer"
        finally:
            await conn.aclose()
        wrong = PipelinedConnection.from_redis(AsyncRedis.from_url(url.replace("s3cret", "x")))
        with pytest.raises(redis.exceptions.AuthenticationError):
            await wrong.execute("PING")
        await wrong.aclose()
    finally:
        sync_redis.acl_deluser("producer")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts and never answers: the path to Redis went quiet."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


async def test_a_server_that_goes_silent_times_out_every_waiting_caller(silent_server: int) -> None:
    conn = PipelinedConnection(port=silent_server, timeout=0.5)
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(conn.execute("PING") for _ in range(3)), return_exceptions=True), 10
        )
        assert all(isinstance(o, RedisTimeoutError) for o in outcomes), outcomes
    finally:
        await conn.aclose()


def test_threads_sharing_a_sync_client_each_get_their_own_jobs(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    ids: list[list[str]] = [[] for _ in range(16)]
    with SyncClient.from_url(redis_url, registry=Registry()) as client:

        def produce(n: int) -> None:
            for i in range(50):
                ids[n].append(client.enqueue("email", {"thread": n, "i": i}))

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for n, mine in enumerate(ids):
            assert len(mine) == 50
            for i, job_id in enumerate(mine):
                record = client.get(job_id)
                assert record is not None
                assert record.job.payload == {"thread": n, "i": i}
    assert sync_redis.llen("jr:{default}:ready") == 16 * 50
    assert sync_redis.hget("jr:{default}:stats", "enqueued") == b"800"  # written at close


def test_the_sync_connection_keeps_errors_with_their_thread_and_survives_a_kill(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    conn = SyncPipelinedConnection(redis.Redis.from_url(redis_url))
    try:
        with pytest.raises(ResponseError):
            conn.execute("NOSUCHCOMMAND")
        assert conn.execute("CLIENT", "SETNAME", "victim") == b"OK"
        for client in sync_redis.client_list():
            if client["name"] == "victim":
                sync_redis.client_kill_filter(_id=client["id"])
        with pytest.raises(RedisConnectionError):
            conn.execute("PING")
        assert conn.execute("ECHO", "again") == b"again"
    finally:
        conn.close()


def test_a_sync_enqueue_whose_connection_died_says_redis_is_unavailable(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    with SyncClient.from_url(redis_url, registry=Registry()) as client:
        client.enqueue("email", {"n": 1})
        for c in sync_redis.client_list():
            sync_redis.client_kill_filter(_id=c["id"], skipme=True)
        with pytest.raises(RedisUnavailable):
            client.enqueue("email", {"n": 2})
        assert client.enqueue("email", {"n": 3})  # and the next one reconnects


async def test_concurrent_enqueues_to_one_queue_share_script_calls_and_keep_their_own_ids(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    async with Client.from_url(redis_url, registry=Registry()) as client:
        await client.enqueue("email", {"warm": True})  # the script is loaded, the queue known
        sync_redis.config_resetstat()
        ids = await asyncio.gather(*(client.enqueue("email", {"i": i}) for i in range(64)))
        calls = sync_redis.info("commandstats")["cmdstat_evalsha"]["calls"]
        assert calls < 64 / 4, calls  # coalesced: the first alone, the rest in a few groups
        assert len(set(ids)) == 64
        for i, job_id in enumerate(ids):
            record = await client.get(job_id)
            assert record is not None
            assert record.job.payload == {"i": i}


async def test_a_bad_job_fails_only_its_own_caller_in_a_coalesced_group(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    async with Client.from_url(redis_url, registry=Registry()) as client:
        outcomes = await asyncio.gather(
            client.enqueue("email", {"i": 0}),
            client.enqueue("email", {"i": 1}, delay=-1),  # refused before it joins
            client.enqueue("email", {"i": 2}),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], ValueError)
        assert all(isinstance(o, str) for o in (outcomes[0], outcomes[2])), outcomes
    assert sync_redis.llen("jr:{default}:ready") == 2


async def test_a_full_queue_refuses_every_caller_of_the_group_that_reached_it(
    redis_url: str,
) -> None:
    aredis = AsyncRedis.from_url(redis_url)
    queue = ReliableQueue(aredis, pipelined=True)
    registry = Registry()

    def one(i: int) -> list[NewJob]:
        return [NewJob(registry.new_job("email", {"i": i}), fresh=True)]

    try:
        first, *rest = await asyncio.gather(
            *(queue.enqueue_batch(one(i), max_depth=1) for i in range(5)), return_exceptions=True
        )
        assert isinstance(first, Enqueued)  # alone, to an empty queue
        assert all(isinstance(o, QueueFull) for o in rest), rest  # the group found it full
    finally:
        await queue.aclose()
        await aredis.aclose()
