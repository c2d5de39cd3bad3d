"""Serve the API with uvicorn: bounded connections, timed-out slow clients, clean shutdown.

uvicorn times out idle kept-alive connections but not a client that sends its headers slowly
(a connection held open with half a request costs a file descriptor forever), and its
``limit_concurrency`` answers in plain text. ``guarded_protocol`` adds both bounds to uvicorn's
httptools protocol: a connection past ``max_connections`` is answered 503 in the API's error
shape and closed at once, and one whose headers are not complete within ``header_timeout`` is
closed. (A slow body is timed out by ``BodySizeLimit``, which sees each piece arrive.)

uvicorn's graceful shutdown waits for every open response to finish, and an event stream never
finishes on its own: with a dashboard open, SIGTERM would wait forever. ``ApiServer`` ends the
streams first (their clients reconnect elsewhere), then shuts down as uvicorn does.
"""

from __future__ import annotations

import asyncio
import json
import socket

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobrunner.api.dashboard import end_live_streams
from jobrunner.config import Settings
from jobrunner.logs import Throttle, get_logger


def _busy_response() -> bytes:
    detail = "the API holds as many connections as it allows; retry shortly"
    body = json.dumps({"code": "too_many_connections", "field": None, "detail": detail})
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body.encode())  # fmt: skip


def guarded_protocol(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a connection cap and a header timeout."""
    busy = _busy_response()
    log = get_logger(component="api")
    throttle = Throttle()

    class GuardedProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= max_connections:
                if (held := throttle.allow("connections")) is not None:
                    log.warning("connection refused: at max_connections",
                                limit=max_connections, suppressed=held)  # fmt: skip
                self._refused = True
                transport.write(busy)
                transport.close()
                return
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if not self._refused:  # a refused connection was never set up
                super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedProtocol


class ApiServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await end_live_streams(self.app)
        await super().shutdown(sockets)


def api_config(
    app: FastAPI, host: str, port: int, settings: Settings | None = None, **options: object
) -> uvicorn.Config:
    """The settings ``jobrunner api`` serves with: uvloop, the guarded httptools protocol, no
    access log, the keep-alive timeout of ``settings``."""
    settings = settings or Settings()
    defaults: dict[str, object] = {
        "loop": "uvloop", "log_level": "warning", "access_log": False,
        "http": guarded_protocol(settings.header_timeout, settings.max_connections),
        "timeout_keep_alive": settings.keep_alive_timeout,
    }  # fmt: skip
    return uvicorn.Config(app, host=host, port=port, **{**defaults, **options})  # type: ignore[arg-type]


def run_api(app: FastAPI, host: str, port: int, settings: Settings | None = None) -> None:
    """Serve until SIGINT/SIGTERM; returns once every connection is closed."""
    ApiServer(api_config(app, host, port, settings), app).run()
