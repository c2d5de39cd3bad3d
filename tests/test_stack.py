"""The stack: everything starts, scales, crashes on request and stops with no stray process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from jobrunner.dev.stack import Stack, StackError
from jobrunner.dev.up import Controller, Supervisor
from jobrunner.job import Job, encode_job
from jobrunner.keys import QueueKeys
from tests.conftest import wait_until
from tests.workers import FAST_LOOPS, ROOT

pytestmark = pytest.mark.slow

TEST_ENV = {**FAST_LOOPS, "PYTHONPATH": str(ROOT)}


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def enqueue_noops(client: redis.Redis, count: int) -> None:
    """Straight into the ready list, as ReliableQueue.enqueue_jobs lays jobs out."""
    keys = QueueKeys("default")
    with client.pipeline() as pipe:
        for i in range(count):
            job = Job(id=f"job-{i}", type="noop", payload={})
            pipe.hset(keys.job(job.id), mapping={"d": encode_job(job), "s": "ready", "a": 0})
            pipe.lpush(keys.ready, job.id)
        pipe.execute()


def processed(client: redis.Redis) -> int:
    return int(client.hget(QueueKeys("default").stats, "processed") or 0)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(workers=2, model="process", concurrency=2, env=TEST_ENV, log_dir=tmp_path) as s:
        yield s


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    seen: set[int] = set()
    with Stack(workers=2, model="process", concurrency=2, env=TEST_ENV, log_dir=tmp_path) as s:
        assert s.api_url is not None
        with urllib.request.urlopen(f"{s.api_url}/healthz") as response:
            assert response.status == 200
        # API, two workers, their two children each, Redis.
        wait_until(lambda: len(s.all_pids()) >= 1 + 2 + 4 + 1, what="every process")
        seen = s.all_pids()
        assert len(s.worker_pids()) == 2
        assert len(s.metrics_urls()) == 3
    assert alive(seen) == set(), "processes outlived the stack"


def test_a_killed_worker_leaves_no_orphan_and_the_rest_keep_working(stack: Stack) -> None:
    seen = stack.all_pids()
    victim = stack.kill_worker()
    assert victim not in stack.worker_pids()
    assert len(stack.worker_pids()) == 1
    enqueue_noops(stack.client, 50)
    wait_until(lambda: processed(stack.client) == 50, what="the survivor to drain the queue")
    orphans = alive(seen) - stack.all_pids()
    assert orphans == set(), "the killed worker's children outlived it"


def test_scale_up_and_down_while_running(stack: Stack) -> None:
    stack.scale(3)
    assert len(stack.worker_pids()) == 3
    removed = stack.remove_worker()
    assert removed not in stack.worker_pids()
    stack.scale(1)
    assert len(stack.worker_pids()) == 1
    enqueue_noops(stack.client, 20)
    stack.wait_idle(timeout=30)
    assert processed(stack.client) == 20
    with pytest.raises(ValueError, match=">= 0"):
        stack.scale(-1)


def test_a_paused_worker_resumes(stack: Stack) -> None:
    pid = stack.worker_pids()[0]
    stack.pause_worker(pid)
    wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, what="SIGSTOP")
    stack.resume_worker(pid)
    wait_until(lambda: psutil.Process(pid).status() != psutil.STATUS_STOPPED, what="SIGCONT")
    with pytest.raises(StackError, match="not one of"):
        stack.pause_worker(1)


def test_redis_restart_keeps_the_queue_with_appendonly(tmp_path: Path) -> None:
    with Stack(workers=0, api=False, redis_appendonly=True, log_dir=tmp_path) as s:
        enqueue_noops(s.client, 10)
        # AOF is fsynced every second: wait until the file holds the last write.
        aof_dir = s.redis_server.data_dir  # type: ignore[union-attr]
        wait_until(
            lambda: any(b"job-9" in f.read_bytes() for f in aof_dir.rglob("*.aof*") if f.is_file()),
            what="the AOF to hold the jobs",
        )
        s.restart_redis()
        assert s.depth()["ready"] == 10


def test_a_worker_that_cannot_start_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="exited"):
        Stack(workers=1, api=False, imports=["no.such.module"], log_dir=tmp_path).start()


def test_a_temporary_log_dir_goes_with_the_stack_unless_kept() -> None:
    with Stack(workers=1, api=False, env=TEST_ENV) as s:
        assert (s.log_dir / f"{s.workers[0].name}.log").exists()
    assert not s.log_dir.exists(), "the stack's own log directory was left in /tmp"
    with Stack(workers=1, api=False, env=TEST_ENV, keep_logs=True) as kept:
        pass
    try:
        assert any(kept.log_dir.glob("worker-*.log"))
    finally:
        shutil.rmtree(kept.log_dir)


def test_a_failed_start_keeps_its_logs() -> None:
    failed = Stack(workers=1, api=False, imports=["no.such.module"])
    with pytest.raises(StackError, match="exited"):
        failed.start()
    try:
        logs = "".join(p.read_text() for p in failed.log_dir.glob("*.log"))
        assert "cannot import 'no.such.module'" in logs
    finally:
        shutil.rmtree(failed.log_dir)


def test_controller_commands(stack: Stack) -> None:
    controller = Controller(stack)
    assert "worker pid" in (controller.handle("+") or "")
    assert len(stack.worker_pids()) == 3
    assert "SIGKILLed" in (controller.handle("kill") or "")
    wait_until(lambda: len(stack.worker_pids()) == 2, what="the killed worker to be gone")
    assert "1 workers running" in (controller.handle("scale 1") or "")
    assert "usage" in (controller.handle("scale") or "")
    assert "unknown command" in (controller.handle("fly") or "")
    assert "redis" in (controller.handle("status") or "")
    assert controller.handle("q") is None


def _up(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobrunner.cli", "up", "--port", "0", "--log-dir",
         str(tmp_path), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=ROOT, env={**os.environ, **TEST_ENV},
    )  # fmt: skip


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        line = proc.stdout.readline()  # the child prints a line at a time; EOF ends it
        if not line or time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} in:\n{seen}")
        seen += line
    return seen


def _close(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()  # reaps it and closes the pipes


def _descendants(pid: int) -> set[int]:
    return {c.pid for c in psutil.Process(pid).children(recursive=True)}


def test_jobrunner_up_takes_commands_and_quits_cleanly(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--workers", "1")
    try:
        text = _read_until(proc, "commands:")
        assert "REDIS_URL=redis://127.0.0.1:" in text
        assert "docs http://127.0.0.1:" in text
        children = _descendants(proc.pid)
        assert proc.stdin is not None
        proc.stdin.write("+\n")
        proc.stdin.flush()
        _read_until(proc, "(2 running)")
        children |= _descendants(proc.pid)
        proc.stdin.write("q\n")
        proc.stdin.flush()
        _read_until(proc, "stack stopped")
        assert proc.wait(timeout=30) == 0
    finally:
        _close(proc)
    assert len(children) >= 4  # Redis, API, two workers
    assert alive(children) == set()


def test_jobrunner_up_reports_a_worker_that_died_and_restarts_it(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--workers", "2")
    try:
        text = _read_until(proc, "commands:")
        assert "To see the dashboard, open this link" in text
        assert "/dashboard?token=" in text
        workers = {p.pid for p in psutil.Process(proc.pid).children() if "worker" in p.cmdline()}
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)  # from outside, as the OOM killer would
        text = _read_until(proc, "started in its place")
        assert f"(pid {victim}) died: killed by SIGKILL" in text
        assert "restarting in 0.5s" in text
        assert "(2 running)" in text
        now = {p.pid for p in psutil.Process(proc.pid).children() if "worker" in p.cmdline()}
        assert victim not in now
        assert len(now) == 2
        proc.send_signal(signal.SIGINT)
        _read_until(proc, "stack stopped")
        assert proc.wait(timeout=30) == 0
    finally:
        _close(proc)


def test_the_supervisor_backs_off_while_workers_keep_dying_and_can_only_report(
    stack: Stack,
) -> None:
    said: list[str] = []
    clock = [1000.0]
    supervisor = Supervisor(stack, said.append, clock=lambda: clock[0])
    delays = []
    for _ in range(4):
        supervisor.deaths_in_a_row += 1
        delays.append(supervisor.delay())
    assert delays == [0.5, 1.0, 2.0, 4.0]
    supervisor.deaths_in_a_row = 0
    before = len(stack.worker_pids())
    pid = stack.crash_worker()
    wait_until(lambda: pid not in stack.worker_pids(), what="the crash")
    supervisor.check()
    assert said[-1].endswith("restarting in 0.5s")
    assert len(stack.worker_pids()) == before - 1
    clock[0] += 0.5
    supervisor.check()  # due now: a new worker, beating, in its place
    assert "started in its place" in said[-1]
    assert len(stack.worker_pids()) == before
    reporter = Supervisor(stack, said.append, restart=False)
    pid = stack.crash_worker()
    wait_until(lambda: pid not in stack.worker_pids(), what="the second crash")
    reporter.check()
    assert f"(pid {pid}) died: killed by SIGKILL" in said[-1]
    assert "restarting" not in said[-1]
    assert len(stack.worker_pids()) == before - 1


def test_jobrunner_up_stops_everything_on_sigint(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--workers", "2", "--model", "process", "--concurrency", "2")
    try:
        _read_until(proc, "commands:")
        wait_until(lambda: len(_descendants(proc.pid)) >= 1 + 1 + 2 + 4, what="every process")
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        _read_until(proc, "stack stopped")
        assert proc.wait(timeout=30) == 0
    finally:
        _close(proc)
    assert alive(children) == set()


def test_naive_workers_for_side_by_side_comparisons(tmp_path: Path) -> None:
    with Stack(workers=1, api=False, worker_command="naive-worker", env=TEST_ENV,
               log_dir=tmp_path) as s:  # fmt: skip
        from jobrunner.keys import naive_key

        jobs = [encode_job(Job(id=f"n-{i}", type="noop", payload={})) for i in range(30)]
        s.client.lpush(naive_key("default"), *jobs)
        wait_until(lambda: s.client.llen(naive_key("default")) == 0, what="the naive drain")
        assert s.metrics_urls() == []  # the baseline serves no metrics
