"""Redis Cluster under resharding: a queue's slot moved to another master while it is in use.

While a slot moves, its keys are split between two nodes. A script whose declared keys are all
still on the source runs there, and fails at the first key it builds itself (a job hash) that
has already moved, after the writes before it: Lua has no rollback. Every script call on a
cluster therefore declares a key that never exists (``keys.slot_guard``), which makes Redis
refuse it whole until the move ends. The first test shows the half-written promote the guard
prevents (its negative control), the second moves a busy queue's slot and counts what was lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ClusterError, ResponseError

from jobrunner.calls import NewJob
from jobrunner.connection import async_redis
from jobrunner.dev.redis_cluster import RedisClusterServer
from jobrunner.dev.slot_move import SlotMove
from jobrunner.job import make_job
from jobrunner.keys import QueueKeys
from jobrunner.lab.chaos import faults
from jobrunner.lab.chaos.producer import Probe
from jobrunner.lab.chaos.report import publish
from jobrunner.lab.chaos.session import ChaosSession
from jobrunner.queue import ReliableQueue
from jobrunner.routed import NOT_RUN, RoutedConnections
from jobrunner.scripts import Scripts, script_source
from tests.conftest import wait_until
from tests.workers import FAST_LOOPS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    """A cluster of this module's own: its tests move slots between masters."""
    with RedisClusterServer() as c:
        yield c


def redis_now_ms(node: redis.Redis) -> int:
    seconds, micros = node.time()
    return seconds * 1000 + micros // 1000


async def test_a_promote_meeting_a_job_hash_already_moved_is_refused_whole_not_half_written(
    cluster: RedisClusterServer,
) -> None:
    keys = QueueKeys("reshard-promote")
    client = async_redis(cluster.url)
    queue = ReliableQueue(client, count_every=0)
    await queue.enqueue_batch([NewJob(make_job("noop", {}, queue=keys.name))])  # ready exists
    await queue.enqueue_batch([NewJob(make_job("noop", {"n": n}, queue=keys.name), delay=0.001)
                               for n in range(2)])  # fmt: skip
    move = SlotMove(cluster, keys.ready)
    source = redis.Redis(port=move.source_port, decode_responses=True)
    due = source.zrange(keys.scheduled, 0, -1, withscores=True)
    wait_until(lambda: redis_now_ms(source) > max(score for _, score in due), timeout=5,
               what="both scheduled jobs due")  # fmt: skip
    first, second = (job_id for job_id, _ in due)  # the order promote takes them in
    ready_before = source.lrange(keys.ready, 0, -1)
    move.begin()
    move.migrate([keys.job_prefix + second])  # its hash is on the target, the rest is not yet
    try:
        # Through the cluster's routed connections: refused whole (TRYAGAIN), retried until
        # retry_for runs out, and nothing written.
        routed = RoutedConnections(client, retry_for=0.5)  # type: ignore[arg-type]
        promote = Scripts(client).promote
        with pytest.raises(NOT_RUN):
            await routed.evalsha(promote.sha, promote.script, [keys.scheduled, keys.ready],
                                 [keys.job_prefix, 1000])  # fmt: skip
        await routed.aclose()
        # through redis-py's cluster client, as the scheduler and the blocking client call
        # their scripts: refused whole as well (Scripts declares the guard on a cluster), and
        # redis-py gives up following the redirects ("TTL exhausted")
        with pytest.raises((ClusterError, *NOT_RUN)):
            await promote(keys=[keys.scheduled, keys.ready], args=[keys.job_prefix, 1000])
        assert source.zcard(keys.scheduled) == 2
        assert source.lrange(keys.ready, 0, -1) == ready_before
        # The negative control: the same script with only the keys it uses declared, sent to
        # the node that still serves the slot, runs, promotes the first job, and fails at the
        # second's hash after taking it off the scheduled set: that job is in no list or set.
        with pytest.raises(ResponseError, match="non local key"):
            source.eval(script_source("promote"), 2, keys.scheduled, keys.ready,
                        keys.job_prefix, 1000)  # fmt: skip
        ready = source.lrange(keys.ready, 0, -1)
        assert first in ready
        assert second not in ready
        # the scheduled set emptied (no key on the source: a read of it is sent on, ASK), and
        # the target holds nothing of the slot but the moved hash, which says "scheduled"
        assert keys.scheduled not in move.keys_left()
        with redis.Redis(port=move.target_port, decode_responses=True) as target:
            on_target = target.execute_command("CLUSTER GETKEYSINSLOT", move.slot, 100)
            assert on_target == [keys.job_prefix + second]
            target.execute_command("ASKING")
            assert target.hget(keys.job_prefix + second, "s") == "scheduled"
    finally:
        while left := move.keys_left():
            move.migrate(left)
        move.finish()
        source.close()
        await queue.aclose()
        await client.aclose()


@pytest.mark.chaos
def test_a_queue_slot_moved_to_another_master_under_load_loses_nothing(
    cluster: RedisClusterServer, tmp_path: Path
) -> None:
    """Steady load; the default queue's slot moves to another master, two keys every 50 ms,
    its job hashes first. Calls meeting the slot mid-move are refused whole and retried; once
    it has moved, the same workers and producer follow it to its new master."""
    logs = tmp_path / "logs"
    with ChaosSession("cluster-slot-moved", env=FAST_LOOPS, ledger_dir=tmp_path / "ledger",
                      redis_url=cluster.url, log_dir=logs, lease=2.0) as s:  # fmt: skip
        s.producer.start_load(rate=200, batch=10, probe=Probe(ms=10))
        target = s.completions() + 50
        wait_until(lambda: s.completions() >= target, timeout=30, interval=0.1, what="load")
        move = SlotMove(cluster, QueueKeys("default").ready)
        fault = faults.move_slot(s.stack, move)
        s.record(fault)
        assert move.owner() == move.target_port
        target = s.completions() + 100
        wait_until(lambda: s.completions() >= target, timeout=60, interval=0.1,
                   what="progress on the slot's new master")  # fmt: skip
        assert len(s.stack.worker_pids()) == 2  # none crashed
        s.producer.stop_load()
        s.settle()
        report = s.report()
    publish(report)
    print(f"\nslot moved under load: {fault.target}, in flight {fault.in_flight}, took "
          f"{fault.ended - fault.started:.1f} s; lost={report.lost} "
          f"duplicates={report.duplicates}")  # fmt: skip
    assert move.moved > 10  # the queue's lists, sets and job hashes all went over
    assert fault.in_flight > 0
    assert (report.lost, report.phantoms) == (0, 0), report.lost_ids
    assert report.invariant_violations == []
