"""Chaos on Redis Cluster: a master killed under load (its replica takes over), with and
without waiting for a replica. The ledger outside Redis decides what was lost, as on one Redis.
(Workers SIGKILLed on a cluster: tests/test_chaos_workers.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobrunner.dev.redis_cluster import RedisClusterServer
from jobrunner.keys import QueueKeys
from jobrunner.lab.chaos import faults
from jobrunner.lab.chaos.producer import Probe
from jobrunner.lab.chaos.report import ChaosReport, publish
from jobrunner.lab.chaos.session import ChaosSession
from tests.conftest import wait_until
from tests.workers import FAST_LOOPS

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[RedisClusterServer]:
    """A cluster of the test's own: a test here kills its nodes."""
    with RedisClusterServer() as c:
        yield c


def session(tmp_path: Path, name: str, url: str, **options: object) -> ChaosSession:
    return ChaosSession(name, env=FAST_LOOPS, ledger_dir=tmp_path / "ledger", redis_url=url,
                        log_dir=tmp_path / "logs", **options)  # type: ignore[arg-type]  # fmt: skip


def wait_for_progress(s: ChaosSession, jobs: int, timeout: float = 30) -> None:
    target = s.completions() + jobs
    wait_until(lambda: s.completions() >= target, timeout=timeout, interval=0.1, what="progress")


def master_of(cluster: RedisClusterServer, queue: str) -> int:
    with redis.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port) as client:
        return int(client.get_node_from_key(QueueKeys(queue).ready).port)


def kill_a_master_under_load(
    tmp_path: Path, cluster: RedisClusterServer, wait_replicas: int
) -> ChaosReport:
    """Steady load; SIGKILL the master serving the queue; its replica takes over and the node
    comes back as its replica; the same workers and producer go on against the new master."""
    victim = master_of(cluster, "default")
    name = f"cluster-master-kill[wait={wait_replicas}]"
    with session(tmp_path, name, cluster.url, lease=2.0, wait_replicas=wait_replicas) as s:
        s.producer.start_load(rate=100, batch=10, probe=Probe(ms=10))
        wait_for_progress(s, 50)
        s.record(faults.kill_redis_node(s.stack, cluster.node(victim)))
        wait_until(lambda: victim not in cluster.master_ports() and len(cluster.master_ports())
                   == 3, timeout=30, interval=0.1, what="a replica to take over")  # fmt: skip
        cluster.node(victim).start()  # restarted, as an orchestrator would: now a replica
        wait_until(cluster.healthy, timeout=30, interval=0.1, what="the node to rejoin")
        wait_for_progress(s, 100, timeout=60)  # the same workers go on, on the new master
        assert len(s.stack.worker_pids()) == 2  # none crashed
        s.producer.stop_load()
        s.settle()
        report = s.report()
    publish(report)
    return report


def test_a_master_killed_under_load_loses_acknowledged_jobs_without_wait(
    tmp_path: Path, cluster: RedisClusterServer
) -> None:
    """Replication is asynchronous: the writes the dead master had not yet sent its replica
    are gone, acknowledged enqueues and acks with them (the ledger counts them)."""
    report = kill_a_master_under_load(tmp_path, cluster, wait_replicas=0)
    print(f"\nmaster killed, no WAIT: lost={report.lost} duplicates={report.duplicates} "
          f"violations={report.invariant_violations}")  # fmt: skip
    assert report.phantoms == 0
    assert report.duplicates <= report.in_flight_at_faults + report.lost


def test_with_wait_for_a_replica_a_master_killed_under_load_loses_nothing_acknowledged(
    tmp_path: Path, cluster: RedisClusterServer
) -> None:
    report = kill_a_master_under_load(tmp_path, cluster, wait_replicas=1)
    print(f"\nmaster killed, WAIT 1: lost={report.lost} duplicates={report.duplicates} "
          f"in flight={report.in_flight_at_faults} "
          f"violations={report.invariant_violations}")  # fmt: skip
    assert report.lost == 0, report.lost_ids
    assert report.phantoms == 0
    # duplicates are not bounded by the jobs in flight at the kill: a reservation (not waited
    # for) written on the dead master and not yet replicated runs its job again on the new one
