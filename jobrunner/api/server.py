"""Serve the API with uvicorn, ending live event streams before a graceful shutdown.

uvicorn's graceful shutdown waits for every open response to finish, and an event stream never
finishes on its own: with a dashboard open, SIGTERM would wait forever. ``ApiServer`` ends the
streams first (their clients reconnect elsewhere), then shuts down as uvicorn does.
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from jobrunner.api.dashboard import end_live_streams


class ApiServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await end_live_streams(self.app)
        await super().shutdown(sockets)


def api_config(app: FastAPI, host: str, port: int, **options: object) -> uvicorn.Config:
    """The settings ``jobrunner api`` serves with: uvloop, httptools, no access log."""
    defaults: dict[str, object] = {"loop": "uvloop", "http": "httptools",
                                   "log_level": "warning", "access_log": False}  # fmt: skip
    return uvicorn.Config(app, host=host, port=port, **{**defaults, **options})  # type: ignore[arg-type]


def run_api(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; returns once every connection is closed."""
    ApiServer(api_config(app, host, port), app).run()
