"""Chaos across hosts: Redis, the API, workers and the producer each in a network namespace of
their own on one bridge (``jobrunner.lab.netns``), with real network faults between them: a
silent iptables partition, and 200 ms latency with 5 % loss on every link to Redis (a userspace
proxy on the Redis host: no ``netem`` here). The ledger and the invariant checker judge, as in
the other chaos suites; they reach Redis through its Unix socket, out of band, so the judge
never stands behind the faults it judges."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from jobrunner.dev.redis_server import find_redis_server
from jobrunner.lab.chaos import faults
from jobrunner.lab.chaos.invariants import snapshot
from jobrunner.lab.chaos.ledger import read_records
from jobrunner.lab.chaos.producer import HttpSender, LibrarySender, Probe, Producer
from jobrunner.lab.chaos.proxy import RedisProxy
from jobrunner.lab.chaos.report import ChaosReport, FaultRecord, publish
from jobrunner.lab.chaos.session import PROBES_MODULE, ChaosSession
from jobrunner.lab.netns import Network, unavailable
from tests.conftest import wait_until
from tests.workers import FAST_LOOPS

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

REDIS_PORT = 6379  # inside the Redis host: a port space of its own, not the shared Redis's
PROXY_PORT = 6380
API_PORT = 8000


@pytest.fixture(scope="module", autouse=True)
def namespaces_available() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(f"needs network namespaces: {reason}")


@dataclass
class Hosts:
    net: Network
    session: ChaosSession
    redis_url: str  # what the other hosts use: Redis's address, or the slow proxy's
    proxy: RedisProxy | None

    def add_worker(self, host: str) -> int:
        return self.session.stack.add_worker(args=["--redis-url", self.redis_url],
                                             launcher=self.net[host].command([]))  # fmt: skip

    def worker_log(self, pid: int) -> str:
        proc = next(p for p in self.session.stack.workers if p.pid == pid)
        return proc.log_path.read_text(errors="replace")


@contextmanager
def hosts(
    tmp_path: Path, names: list[str], *, lease: float, proxy: bool = False
) -> Iterator[Hosts]:
    """Redis on host ``redis`` and the ``names`` hosts; a chaos session whose Redis is that one
    (workers are added on hosts with ``Hosts.add_worker``); everything removed on exit. With
    ``proxy``, the other hosts reach Redis through a proxy on its host (latency and loss)."""
    with ExitStack() as stack:
        net = stack.enter_context(Network(["redis", *names]))
        socket_path = tmp_path / "redis.sock"
        net.spawn("redis", [find_redis_server(), "--port", str(REDIS_PORT),
                            "--bind", f"127.0.0.1 {net['redis'].address}",
                            "--unixsocket", str(socket_path), "--unixsocketperm", "700",
                            "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                  log_path=tmp_path / "redis.log")  # fmt: skip
        local_url = f"unix://{socket_path}?db=0"
        wait_until(lambda: _answers(local_url), timeout=10, what="redis-server on its host")
        redis_url = f"redis://{net['redis'].address}:{REDIS_PORT}/0"
        slow = None
        if proxy:
            slow = RedisProxy("127.0.0.1", REDIS_PORT, listen_host=net["redis"].address,
                              listen_port=PROXY_PORT, seed=21,
                              thread_setup=net["redis"].enter)  # fmt: skip
            stack.enter_context(slow)
            redis_url = slow.url
        session = ChaosSession(f"netns-{tmp_path.name}", workers=0, redis_url=local_url,
                               env=FAST_LOOPS, lease=lease, ledger_dir=tmp_path / "ledger",
                               log_dir=tmp_path / "logs")  # fmt: skip
        stack.enter_context(session)  # leaves first: workers stop before the network goes
        yield Hosts(net, session, redis_url, slow)


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=0.5) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def assert_judged_sound(report: ChaosReport) -> None:
    assert report.invariant_violations == []
    assert report.lost == 0, report.lost_ids
    assert report.phantoms == 0, report.phantom_ids
    assert report.duplicates <= report.in_flight_at_faults


def runs(s: ChaosSession, event: str) -> list[dict[str, object]]:
    return [r for r in read_records(s.ledger_dir, "runs") if r.get("e") == event]


def test_a_worker_partitioned_from_redis_past_its_lease_has_its_jobs_redelivered_and_its_late_acks_refused(  # noqa: E501
    tmp_path: Path,
) -> None:
    """A worker cut off by the network (not paused: it runs on) loses its leases; another
    takes the jobs, and what the cut-off one acks once it is back is refused as stale."""
    with hosts(tmp_path, ["w1", "w2"], lease=1.0) as h:
        s = h.session
        w1 = h.add_worker("w1")
        s.producer.send([Probe(ms=2500)] * 4)
        wait_until(lambda: len(runs(s, "start")) == 4, what="w1 running all four")
        w2 = h.add_worker("w2")  # idle until w1's leases run out
        held = faults.in_flight(s.stack)
        started = time.time()
        with h.net.partitioned("w1", "redis"):

            def redelivered_and_finished_on_w1() -> bool:
                on_w2 = [r for r in runs(s, "start") if r["pid"] == w2]
                on_w1 = [r for r in runs(s, "end") if r["pid"] == w1]
                return len(on_w2) == 4 and len(on_w1) == 4

            wait_until(redelivered_and_finished_on_w1, timeout=15, interval=0.1,
                       what="w2 running the jobs again while w1 finished its own")  # fmt: skip
        s.record(FaultRecord("partition", started, time.time(), held, "w1 <-> redis"))
        wait_until(lambda: snapshot(s.stack.client).stats.get("stale", 0) == 4, timeout=30,
                   interval=0.1, what="w1's four late acks refused")  # fmt: skip
        s.settle()
        report = s.report()
        counters = snapshot(s.stack.client).stats
        w1_log = h.worker_log(w1)
    publish(report)
    print(f"partition lasted {report_fault_seconds(s):.1f} s, lease 1.0 s; counters {counters}")
    assert_judged_sound(report)
    assert (report.completed, report.duplicates, held) == (4, 4, 4)  # each ran on both hosts
    assert counters["processed"] == 4
    assert counters["reaped"] >= 4
    assert counters["stale"] == 4
    assert "stale completions rejected" in w1_log


def report_fault_seconds(s: ChaosSession) -> float:
    return sum(f.ended - f.started for f in s.faults)


def test_latency_and_loss_on_every_link_lose_nothing_and_bound_duplicates(
    tmp_path: Path,
) -> None:
    """200 ms each way and 5 % of segments held for a retransmission, on the producer's and
    each worker's link to Redis: slower, never wrong."""
    with hosts(tmp_path, ["w1", "w2", "client"], lease=2.0, proxy=True) as h:
        s = h.session
        assert h.proxy is not None
        for host in ("w1", "w2"):
            h.add_worker(host)
        sender = LibrarySender(h.redis_url)
        with Producer(s.ledger_dir, sender, thread_setup=h.net["client"].enter) as producer:
            producer.start_load(rate=40, batch=4, probe=Probe(ms=20))
            wait_until(lambda: s.completions() >= 40, timeout=20, interval=0.1, what="progress")
            started = time.time()
            h.proxy.latency, h.proxy.loss = 0.2, 0.05
            held = 0  # a lasting fault: the most jobs in flight at once while it lasted
            while time.time() < started + 15:  # the slow, lossy link is the fault
                held = max(held, faults.in_flight(s.stack))
                time.sleep(0.25)
            h.proxy.latency, h.proxy.loss = 0.0, 0.0
            s.record(FaultRecord("latency+loss", started, time.time(), held, "every link"))
            during = [r for r in runs(s, "end") if started <= float(str(r["end"])) <= time.time()]
            producer.stop_load()
        s.settle()
        report = s.report()
        counters = snapshot(s.stack.client).stats
    publish(report)
    print(f"{len(during)} runs ended during the fault; {h.proxy.stalls} of {h.proxy.chunks} "
          f"segments held as lost; counters {counters}")  # fmt: skip
    assert_judged_sound(report)
    assert h.proxy.stalls > 0  # the loss did strike
    assert report.duplicates <= counters.get("reaped", 0)  # each one a lease that ran out
    assert len(during) > 0  # work went on through it
    assert report.acknowledged == report.sent - report.unknown


def test_the_api_partitioned_from_redis_answers_503_and_writes_nothing_half(
    tmp_path: Path,
) -> None:
    """The API cut off from Redis refuses with a 503 problem within its timeout, and comes back
    by itself; no batch is half written: each one answered 503 ran whole or not at all."""
    with hosts(tmp_path, ["api", "w1", "client"], lease=1.0) as h:
        s = h.session
        h.add_worker("w1")
        api = h.net["api"]
        h.net.spawn("api", [sys.executable, "-m", "jobrunner.cli", "api", "--redis-url",
                            h.redis_url, "--host", api.address, "--port", str(API_PORT),
                            "--import", PROBES_MODULE, "--log-format", "json"],
                    log_path=tmp_path / "api.log")  # fmt: skip
        base = f"http://{api.address}:{API_PORT}"
        client = h.net["client"]

        def healthy() -> bool:
            with client.entered():
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

        wait_until(healthy, timeout=30, interval=0.1, what="the API on its host")
        sender = HttpSender(base, timeout=30, token=s.stack.api_token)
        with Producer(s.ledger_dir, sender, thread_setup=client.enter) as producer:
            producer.start_load(rate=20, batch=5, probe=Probe(ms=5))
            wait_until(lambda: s.completions() >= 20, timeout=20, interval=0.1, what="progress")
            held = faults.in_flight(s.stack)
            started = time.time()
            with h.net.partitioned("api", "redis"):
                with client.entered():
                    asked = time.monotonic()
                    answer = httpx.post(f"{base}/jobs", headers=s.stack.api_headers, timeout=40,
                                        json={"type": "chaos.probe",
                                              "data": {"probe": "direct", "ms": 1}})  # fmt: skip
                    took = time.monotonic() - asked
                wait_until(lambda: producer.counts["unknown"] > 0, timeout=20, interval=0.1,
                           what="the producer's enqueues refused too")  # fmt: skip
            s.record(FaultRecord("partition", started, time.time(), held, "api <-> redis"))
            acked_at_heal = producer.counts["ack"]
            wait_until(lambda: producer.counts["ack"] > acked_at_heal, timeout=30, interval=0.1,
                       what="an acknowledged enqueue after healing")  # fmt: skip
            producer.stop_load()
        s.settle()
        report = s.report()
    publish(report)
    print(f"503 after {took:.1f} s: {answer.text}")
    assert answer.status_code == 503
    assert answer.json()["code"] == "redis_unavailable"
    assert answer.headers["retry-after"]
    assert took < 30
    assert "direct" not in {r["probe"] for r in runs(s, "start")}  # refused, and not written
    assert_judged_sound(report)
    batches: dict[float, list[str]] = defaultdict(list)
    for record in read_records(s.ledger_dir, "producer"):
        if record["s"] == "unknown":
            batches[record["t"]].append(record["probe"])
    assert batches, "some enqueues must have met the partition"
    ran = {str(r["probe"]) for r in runs(s, "end") if r["outcome"] == "ok"}
    for probes in batches.values():
        assert len(ran.intersection(probes)) in (0, len(probes)), probes
