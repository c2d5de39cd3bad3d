"""Scheduler processes for tests: ``jobrunner scheduler`` as a subprocess, and what it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent


def write_schedules(path: Path, *entries: dict[str, Any]) -> Path:
    """A TOML schedules file with one ``[[schedule]]`` table per entry."""
    lines = []
    for entry in entries:
        lines.append("[[schedule]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class SchedulerProcess:
    """``jobrunner scheduler --id NAME`` in a subprocess, logging JSON lines to a file."""

    def __init__(
        self,
        redis_url: str,
        tmp_path: Path,
        schedules: Path,
        name: str,
        *,
        ttl: float = 1.0,
        poll_interval: float = 0.05,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        self._log = self.log_path.open("wb")
        cmd = [
            sys.executable, "-m", "jobrunner.cli", "scheduler", "--redis-url", redis_url,
            "--schedules", str(schedules), "--id", name, "--ttl", str(ttl),
            "--poll-interval", str(poll_interval), "--log-format", "json",
        ]  # fmt: skip
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=self._log,
                                     stderr=self._log)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_started(self, timeout: float = 30.0) -> None:
        def started() -> bool:
            assert self.proc.poll() is None, f"{self.name} exited early:\n{self.log_text()}"
            return bool(self.events("scheduler started"))

        wait_until(started, timeout, what=f"{self.name} to start")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == event]


def leader(client: redis.Redis) -> tuple[str, int, int] | None:
    """(id, token, since ms) of the current leader, or None."""
    fields = client.hgetall("jr:{scheduler}:leader")
    if not fields:
        return None
    return fields[b"id"].decode(), int(fields[b"token"]), int(fields[b"since"])


def fired_slots(client: redis.Redis, name: str, queue: str = "default") -> list[int]:
    """Slot times of the schedule's jobs in the ready list, in enqueue order (with repeats)."""
    prefix = f"sched:{name}:"
    ids = [i.decode() for i in reversed(client.lrange(f"jr:{{{queue}}}:ready", 0, -1))]
    # an id is sched:<name>:<slot ms>, and @<queue> off the default queue
    return [int(i[len(prefix) :].partition("@")[0]) for i in ids if i.startswith(prefix)]


def schedule_state(client: redis.Redis, name: str, queue: str = "default") -> dict[str, int]:
    fields = client.hgetall(f"jr:{{{queue}}}:schedule:{name}")
    return {k.decode(): int(v) for k, v in fields.items() if v.isdigit()}


def redis_now_ms(client: redis.Redis) -> int:
    sec, usec = client.time()
    return int(sec) * 1000 + int(usec) // 1000
