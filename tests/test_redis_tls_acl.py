"""Redis with TLS and an ACL user: the API, a worker, a scheduler and the archiver through
rediss:// only.

The test makes a certificate authority and a server certificate for 127.0.0.1 with openssl,
starts a redis-server whose TLS port is the only one jobrunner is given, and a user made from
``jobrunner redis-acl``'s rule (the commands jobrunner needs, on ``jr:*`` keys, nothing else).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis

from jobrunner.acl import acl_rule
from jobrunner.archive.archiver import Archiver
from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer, free_port
from jobrunner.job import make_job
from jobrunner.queue import ReliableQueue
from tests.api_server import api_process, bearer
from tests.conftest import eventually, wait_until
from tests.postgres import count
from tests.workers import FAST_LOOPS

pytestmark = pytest.mark.slow
PASSWORD = "s3cret-for-the-test"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(where: Path) -> None:
    """A CA, and a server certificate for 127.0.0.1 that it signed."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=where)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=where)  # fmt: skip
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
            cwd=where)  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RedisServer]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test's certificates (apt-get install openssl)")
    where = tmp_path_factory.mktemp("tls")
    make_certificates(where)
    tls_port = free_port()
    server = RedisServer(extra_args=(
        "--tls-port", str(tls_port), "--tls-cert-file", str(where / "server.crt"),
        "--tls-key-file", str(where / "server.key"), "--tls-ca-cert-file", str(where / "ca.crt"),
        "--tls-auth-clients", "no",
    ))  # fmt: skip
    with server:
        admin = redis.Redis(port=server.port)
        admin.execute_command("ACL", "SETUSER", *acl_rule("jobrunner", PASSWORD))
        admin.close()
        url = (f"rediss://jobrunner:{quote(PASSWORD)}@127.0.0.1:{tls_port}/0"
               f"?ssl_ca_certs={quote(str(where / 'ca.crt'))}")  # fmt: skip
        yield url, server


def fresh_admin(server: RedisServer) -> redis.Redis:
    """An admin connection (not through the ACL user) to an emptied server with an empty ACL
    log, so a test can list what the user was refused."""
    admin = redis.Redis(port=server.port)
    admin.flushall()
    admin.execute_command("ACL", "LOG", "RESET")
    return admin


def test_the_acl_user_can_do_nothing_else(tls_redis: tuple[str, RedisServer]) -> None:
    url, _ = tls_redis
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        client.set("jr:probe", "1")
        for forbidden in (lambda: client.set("other:key", "1"), client.flushall,
                          lambda: client.config_get("*"), lambda: client.keys("*")):  # fmt: skip
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
    finally:
        client.close()


def test_api_worker_and_scheduler_run_jobs_through_tls_and_the_acl_user(
    tls_redis: tuple[str, RedisServer], tmp_path: Path
) -> None:
    url, server = tls_redis
    admin = fresh_admin(server)
    token_made = subprocess.run(
        [sys.executable, "-m", "jobrunner.cli", "token", "create", "--name", "t", "--scope",
         "enqueue", "--scope", "read", "--redis-url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert token_made.returncode == 0, token_made.stderr
    headers = bearer(token_made.stdout.strip())
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('[[schedule]]\nname = "tick"\ntype = "noop"\nevery = "200ms"\n')
    common = ["--redis-url", url, "--import", "jobrunner.lab.handlers.demo"]
    env = {**FAST_LOOPS}
    worker = subprocess.Popen([sys.executable, "-m", "jobrunner.cli", "worker", *common],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.cli", "scheduler", *common, "--schedules", str(schedules),
         "--ttl", "2", "--poll-interval", "0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with api_process(url, "--import", "jobrunner.lab.handlers.demo", env=env) as (api, _):
            jobs = [{"type": "noop"}, {"type": "email", "data": {"latency": 0.01}}]
            answer = httpx.post(f"{api}/jobs", headers=headers, json={"jobs": jobs})
            assert answer.status_code == 202, answer.text
            ids = answer.json()["ids"]

            def done() -> bool:
                states = [httpx.get(f"{api}/jobs/{i}", headers=headers).json()["state"]
                          for i in ids]  # fmt: skip
                return states == ["done", "done"]

            wait_until(done, 30, what="both jobs done through TLS")
            wait_until(lambda: int(admin.hget("jr:{default}:stats", "processed") or 0) >= 4, 30,
                       what="scheduled jobs to run too")  # fmt: skip
            assert admin.hget("jr:{default}:schedule:tick", "fired") is not None
            assert httpx.get(f"{api}/readyz").status_code == 200
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        assert worker.wait(30) == 0
        assert scheduler.wait(30) == 0
    # Only the start-up check's CONFIG GET was refused (on purpose, and it says nothing then).
    denied = {entry["object"] for entry in admin.acl_log() if entry["username"] == "jobrunner"}
    admin.close()
    assert denied <= {"config|get"}


async def test_history_and_the_archiver_need_nothing_beyond_the_acl_rule(
    tls_redis: tuple[str, RedisServer], pg_url: str
) -> None:
    """The terminal scripts' XADD/XTRIM and the archiver's group reads, acks and deletes."""
    url, server = tls_redis
    admin = fresh_admin(server)
    client = async_redis(url)
    queue = ReliableQueue(client, count_every=0, history=1000)
    await queue.enqueue_jobs([make_job("noop", job_id=f"j{i}") for i in range(50)])
    batch = await queue.reserve("default", 50, lease=30)
    await queue.start("default", [(r.id, r.token) for r in batch])
    await queue.ack("default", [(r.id, r.token) for r in batch])
    archiver = Archiver(client, pg_url, consumer="acl", block=0.1, queues_every=0.1)
    task = asyncio.create_task(archiver.run())
    await eventually(lambda: asyncio.sleep(0, archiver.counts["entries"] == 50), what="archived")
    archiver.stop()
    await task
    await queue.aclose()
    await client.aclose()
    denied = [entry["object"] for entry in admin.acl_log() if entry["username"] == "jobrunner"]
    admin.close()
    assert denied == []
    assert count(pg_url) == 50
