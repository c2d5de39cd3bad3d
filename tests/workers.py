"""Worker processes for tests: ``jobrunner worker`` as a real subprocess, and its children."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from jobrunner.connection import sync_redis
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
# Short background-loop periods so leases and heartbeats play out in seconds, not minutes.
FAST_LOOPS = {
    "JOBRUNNER_HEARTBEAT_INTERVAL": "0.2",
    "JOBRUNNER_MAINTENANCE_INTERVAL": "0.05",
    "JOBRUNNER_IDLE_POLL_MAX": "0.01",
}


class WorkerProcess:
    """``jobrunner worker`` in a subprocess, logging JSON lines to a file we can read back."""

    def __init__(
        self,
        redis_url: str,
        tmp_path: Path,
        *args: str,
        name: str = "worker",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self._log = self.log_path.open("wb")
        cmd = [
            sys.executable, "-m", "jobrunner.cli", "worker",
            "--redis-url", redis_url, "--import", "tests.jobs", "--log-format", "json",
            *args,
        ]  # fmt: skip
        full_env = {**os.environ, **FAST_LOOPS, **(env or {}), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=full_env, stdout=self._log, stderr=self._log
        )
        self.redis_url = redis_url

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the worker heartbeats (it is then fetching)."""
        client = sync_redis(self.redis_url)  # a cluster client where it names one
        try:

            def beating() -> bool:
                assert self.proc.poll() is None, f"worker exited early:\n{self.log_text()}"
                return any(
                    client.hget(key, "pid") == str(self.pid).encode()
                    for key in client.scan_iter("jr:worker:*")
                )

            wait_until(beating, timeout, what="the worker's first heartbeat")
        finally:
            client.close()

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, and the clean exit (status 0) a drained worker owes."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        status = self.wait(timeout)
        assert status == 0, self.log_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_events(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == event:
                    out.append(record)
        return out


def child_pids(pid: int) -> list[int]:
    """Live job-running children of ``pid`` (from /proc; Linux only, like the CI machine)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != pid or fields[0] == "Z":
            continue
        cmdline = (entry / "cmdline").read_bytes()
        if b"spawn_main" in cmdline:  # not multiprocessing's resource tracker
            out.append(int(entry.name))
    return out


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
