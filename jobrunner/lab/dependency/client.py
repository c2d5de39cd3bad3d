"""Calling the simulated dependency: over HTTP (shared by every worker process) or in-process.

Both raise ``DependencyFailed`` when the call fails, so a handler retries it with its backoff.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any
from weakref import WeakKeyDictionary

import aiohttp

from jobrunner.dev.processes import end_process
from jobrunner.dev.redis_server import free_port
from jobrunner.errors import JobrunnerError
from jobrunner.lab.dependency.model import DependencyConfig, DependencyModel


class DependencyFailed(JobrunnerError):
    """The dependency answered with a failure (overloaded, outage, error) or not at all."""


class HttpDependency:
    """An aiohttp client per event loop (the thread model runs a loop per thread)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._sessions: WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            WeakKeyDictionary()
        )

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = self._sessions[loop] = aiohttp.ClientSession(timeout=self.timeout)
        return session

    async def call(self) -> None:
        try:
            async with self._session().post(f"{self.url}/call") as response:
                if response.status != 200:
                    reason = (await response.json()).get("reason", response.status)
                    raise DependencyFailed(f"dependency failed: {reason}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DependencyFailed(f"dependency unreachable: {exc!r}") from exc

    async def close(self) -> None:
        """Close this loop's session (call from the loop that used it)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()


class InProcessDependency:
    """The model on this process's wall clock, answering after its latency."""

    def __init__(self, config: DependencyConfig | None = None) -> None:
        self.model = DependencyModel(config or DependencyConfig(), start=time.time())

    async def call(self) -> None:
        result = self.model.call(time.time())
        await asyncio.sleep(result.latency)
        if not result.ok:
            raise DependencyFailed(f"dependency failed: {result.reason}")

    async def close(self) -> None:
        return None


# ------------------------------------------------------------------ the server as a process


def _request(url: str, data: Any = None, timeout: float = 10.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class DependencyServer:
    """``python -m jobrunner.lab.dependency`` as a child process on a free port; a context manager.

    ``reset(config)`` starts a fresh model (its outage clock starts then); ``stats(times=True)``
    reads every call it received.
    """

    def __init__(self, config: DependencyConfig | None = None, port: int | None = None) -> None:
        self.config = config or DependencyConfig()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DependencyServer:
        cmd = [sys.executable, "-m", "jobrunner.lab.dependency", "--port", str(self.port),
               "--config", json.dumps(self.config.to_dict())]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=dict(os.environ))
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.stats()
                return self
            except (urllib.error.URLError, OSError):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"no dependency server started on {self.url}") from None
                time.sleep(0.05)  # the server is coming up: poll until it answers

    def stop(self) -> None:
        if self._proc is not None:
            end_process(self._proc)
            self._proc = None

    def reset(self, config: DependencyConfig | None = None) -> None:
        if config is not None:
            self.config = config
        _request(f"{self.url}/reset", self.config.to_dict())

    def stats(self, times: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = _request(f"{self.url}/stats" + ("?times=1" if times else ""))
        return result

    def __enter__(self) -> DependencyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
