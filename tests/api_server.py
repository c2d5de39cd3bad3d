"""A real uvicorn server in a background thread, for tests that speak HTTP to the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from jobrunner.api import create_app
from jobrunner.config import Settings
from jobrunner.dev.redis_server import free_port
from jobrunner.registry import load_handlers
from tests.conftest import wait_until


@contextmanager
def running_api(settings: Settings, app: FastAPI | None = None) -> Iterator[str]:
    """Serve the app on a free loopback port until the block ends; yields its base URL."""
    app = app or create_app(settings, load_handlers(["tests.jobs"]))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 20, what="the API to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
