"""Chaos, the link to Redis: Redis unreachable at enqueue (a clear error from the library, the
API and the CLI) and a connection dropped while an ack's reply is on its way."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import free_port
from jobrunner.errors import RedisUnavailable
from jobrunner.lab.chaos.invariants import snapshot
from jobrunner.lab.chaos.ledger import read_records
from jobrunner.lab.chaos.producer import Probe
from jobrunner.lab.chaos.proxy import RedisProxy, script_sha
from jobrunner.lab.chaos.report import publish
from jobrunner.lab.chaos.session import ChaosSession
from jobrunner.queue import ReliableQueue
from tests.conftest import wait_until
from tests.workers import FAST_LOOPS

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def test_a_dropped_ack_reply_is_retried_and_costs_at_most_one_run_each(tmp_path: Path) -> None:
    with ChaosSession("ack-reply-dropped", workers=0, env=FAST_LOOPS, lease=1.0,
                      ledger_dir=tmp_path / "ledger", log_dir=tmp_path / "logs") as s:  # fmt: skip
        redis_server = s.stack.redis_server
        assert redis_server is not None
        with RedisProxy("127.0.0.1", redis_server.port) as proxy:
            s.stack.add_worker(args=["--redis-url", proxy.url])
            s.producer.send([Probe(ms=5)] * 10)
            # Once the ack script is loaded: a dropped reply then means an ack that did run.
            wait_until(lambda: s.stack.client.script_exists(script_sha("ack").decode()) == [True],
                       what="the ack script loaded")  # fmt: skip
            proxy.drop_replies(script_sha("ack"), count=3)
            for _ in range(5):
                s.producer.send([Probe(ms=5)] * 10)
            wait_until(lambda: proxy.dropped == 3, what="three ack replies dropped")
            s.settle()
            report = s.report()
            counters = snapshot(s.stack.client).stats
    publish(report)
    assert (report.lost, report.phantoms, report.completed) == (0, 0, 60), report.lost_ids
    assert report.duplicates <= 3  # at most one extra run per dropped reply
    assert counters["processed"] == 60
    assert counters.get("stale", 0) == 0, counters  # a retried ack is not a stale completion
    assert report.invariant_violations == []


def test_redis_unreachable_at_enqueue_is_a_clear_error_everywhere(tmp_path: Path) -> None:
    with ChaosSession("redis-unreachable", workers=1, via="api", env=FAST_LOOPS,
                      ledger_dir=tmp_path / "ledger", log_dir=tmp_path / "logs") as s:  # fmt: skip
        server = s.stack.redis_server
        assert server is not None
        assert s.stack.api_url is not None
        server.kill()
        try:
            answer = httpx.post(f"{s.stack.api_url}/jobs", json={"type": "chaos.probe"},
                                timeout=20, headers=s.stack.api_headers)  # fmt: skip
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["code"] == "redis_unavailable"

            async def enqueue() -> None:
                redis = async_redis(s.stack.redis_url)
                try:
                    await ReliableQueue(redis).enqueue("chaos.probe", {"probe": "x"})
                finally:
                    await redis.aclose()

            with pytest.raises(RedisUnavailable, match="cannot enqueue: Redis is unreachable"):
                asyncio.run(enqueue())
            cli = subprocess.run(
                [sys.executable, "-m", "jobrunner.cli", "enqueue", "noop", "--redis-url",
                 s.stack.redis_url], capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert cli.returncode == 1
            assert f"Redis at {s.stack.redis_url}: cannot enqueue" in cli.stderr
            assert "Traceback" not in cli.stderr
            worker = s.stack.worker_pids()
        finally:
            server.start()
            s.stack.restore_token()  # no persistence: Redis lost the stack's token with the rest
        s.producer.send([Probe()] * 5)  # the same worker carries on once Redis is back
        s.settle()
        assert s.stack.worker_pids() == worker
        report = s.report()
    assert (report.completed, report.lost) == (5, 0)


def test_a_flood_beyond_the_ingress_limit_accounts_for_every_request(tmp_path: Path) -> None:
    env = {**FAST_LOOPS, "JOBRUNNER_INGRESS_RATE": "50/s"}
    with ChaosSession("ingress-flood", via="api", env=env, ledger_dir=tmp_path / "ledger",
                      log_dir=tmp_path / "logs") as s:  # fmt: skip
        s.producer.start_load(rate=400, batch=1, probe=Probe(ms=1))
        wait_until(lambda: s.producer.counts["rejected"] >= 100, what="the limit to bite")
        s.producer.stop_load()
        s.settle()
        report = s.report()
    publish(report)
    codes = {r["code"] for r in read_records(s.ledger_dir, "producer")}
    assert codes == {"202", "429 rate_limited"}, codes
    assert report.unknown == 0
    assert report.acknowledged + report.rejected == report.sent
    assert report.acknowledged < report.sent / 2  # the limit held the flood back
    assert (report.completed, report.lost, report.phantoms) == (report.acknowledged, 0, 0)
    assert report.invariant_violations == []


def test_the_proxy_spends_a_drop_only_on_a_connection_it_will_cut() -> None:
    """Two marked commands pipelined on one connection are one drop, not two: the second must
    not use up a drop whose cut the count never sees (the dropped-ack test above once waited
    for a third drop that could not come). A server of the test's own answers on demand, so
    the order of reads is fixed."""
    port, received, replies = free_port(), [], []
    listener = socket.create_server(("127.0.0.1", port))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            replies.append(conn)
            threading.Thread(target=lambda c=conn: _collect(c, received), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    marked = b"*2\r\n$4\r\nECHO\r\n$6\r\nmarker\r\n"
    try:
        with RedisProxy("127.0.0.1", port) as proxy:
            proxy.drop_replies(b"marker", count=2)
            first = socket.create_connection(("127.0.0.1", proxy.port))
            first.sendall(marked)
            wait_until(lambda: len(received) == 1, what="the first command at the server")
            first.sendall(marked)  # a second marked command on the doomed connection
            wait_until(lambda: len(received) == 2, what="the second command at the server")
            replies[0].sendall(b"$6\r\nmarker\r\n")
            wait_until(lambda: proxy.dropped == 1, what="the first connection cut")
            second = socket.create_connection(("127.0.0.1", proxy.port))
            second.sendall(marked)
            wait_until(lambda: len(received) == 3, what="a command on a new connection")
            replies[1].sendall(b"$6\r\nmarker\r\n")
            wait_until(lambda: proxy.dropped == 2, what="the drop left for the next connection")
            first.close()
            second.close()
    finally:
        listener.close()
        for conn in replies:
            conn.close()


def _collect(conn: socket.socket, received: list[bytes]) -> None:
    with contextlib.suppress(OSError):
        while data := conn.recv(65536):
            received.append(data)
