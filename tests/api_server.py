"""A real uvicorn server in a background thread, for tests that speak HTTP to the API.

Authentication is on unless the settings turn it off: the server's URL comes with a token that
has every scope (``base.headers``), made in Redis as ``jobrunner token create`` makes one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from jobrunner.api import create_app
from jobrunner.config import Settings
from jobrunner.connection import sync_redis
from jobrunner.dev.redis_server import free_port
from jobrunner.registry import load_handlers
from jobrunner.tokens import SCOPES, encode_record, new_token, tokens_key
from tests.conftest import wait_until


class ApiUrl(str):
    """The base URL, carrying a token for it: ``httpx.Client(base_url=b, headers=b.headers)``."""

    token: str
    headers: dict[str, str]


def make_token(
    redis_url: str, scopes: Sequence[str] = SCOPES, queues: Sequence[str] = (), name: str = "test"
) -> str:
    token, record = new_token(name, scopes, queues)
    client = sync_redis(redis_url)  # a cluster client where the URL names a cluster
    try:
        client.hset(tokens_key(), record.id, encode_record(record))
    finally:
        client.close()
    return token


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@contextmanager
def running_api(settings: Settings, app: FastAPI | None = None) -> Iterator[ApiUrl]:
    """Serve the app on a free loopback port until the block ends; yields its base URL."""
    app = app or create_app(settings, load_handlers(["tests.jobs"]))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    base = ApiUrl(f"http://127.0.0.1:{port}")
    base.token = make_token(settings.redis_url or "") if settings.auth else ""
    base.headers = bearer(base.token) if settings.auth else {}
    try:
        wait_until(lambda: server.started, 20, what="the API to start")
        yield base
    finally:
        server.should_exit = True
        thread.join(20)


@contextmanager
def api_process(
    redis_url: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``jobrunner api`` as a real process on a free port; yields its URL and the process."""
    port = free_port()
    argv = [sys.executable, "-m", "jobrunner.cli", "api", "--redis-url", redis_url,
            "--port", str(port), "--log-format", "json", *args]  # fmt: skip
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, 30, what="the API process to answer")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
