"""``jobrunner api`` as a separate process on a free port, for the API benchmarks and profiles."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from jobrunner.dev.redis_server import free_port


@dataclass
class ApiProcess:
    base: str
    process: subprocess.Popen[bytes]


@contextmanager
def serving_api(redis_url: str, *args: str, start_timeout: float = 30.0) -> Iterator[ApiProcess]:
    """Start the API, wait until /healthz answers, stop it (SIGTERM) when the block ends."""
    port = free_port()
    api = ApiProcess(
        f"http://127.0.0.1:{port}",
        subprocess.Popen(
            [sys.executable, "-m", "jobrunner.cli", "api", "--port", str(port),
             "--redis-url", redis_url, "--log-level", "warning",
             "--import", "jobrunner.lab.handlers.demo", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(f"{api.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not start") from None
                time.sleep(0.1)  # start-up poll: the process gives no other readiness signal
        yield api
    finally:
        api.process.terminate()
        api.process.wait(20)
