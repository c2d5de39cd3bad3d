"""A real uvicorn server in a background thread, for tests that speak HTTP to the API.

Authentication is on unless the settings turn it off: the server's URL comes with a token that
has every scope (``base.headers``), made in Redis as ``jobrunner token create`` makes one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
import uvicorn
from fastapi import FastAPI

from jobrunner.api import create_app
from jobrunner.config import Settings
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
    client = redis.Redis.from_url(redis_url)
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
