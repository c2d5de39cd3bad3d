"""The simulated dependency as a local HTTP service (a bare ASGI app on uvicorn), so worker
processes can share one and every call they make is counted in one place.

Routes: ``POST /call`` (200 ``{"ok": true}`` or 503 ``{"ok": false, "reason": ...}`` after the
modelled latency), ``GET /stats`` (counts, calls in flight and the most at once; with
``?times=1`` the arrival time of every call, wall-clock seconds), ``POST /reset`` (a new model
from a JSON config; the clock of its outages starts now).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from jobrunner.lab.dependency.model import DependencyConfig, DependencyModel


class DependencyApp:
    """ASGI application around one ``DependencyModel``."""

    def __init__(self, config: DependencyConfig | None = None) -> None:
        self.reset(config or DependencyConfig())

    def reset(self, config: DependencyConfig) -> None:
        self.started = time.time()
        self.model = DependencyModel(config, start=self.started)
        self.in_flight = 0
        self.peak_in_flight = 0

    def stats(self, with_times: bool) -> dict[str, Any]:
        out = self.model.stats()
        out.update(started=self.started, in_flight=self.in_flight,
                   peak_in_flight=self.peak_in_flight)  # fmt: skip
        if with_times:
            out["times"] = [self.started + t for t in self.model.times]
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        if route == ("POST", "/call"):
            await self._call(send)
        elif route == ("GET", "/stats"):
            query = parse_qs(scope.get("query_string", b"").decode())
            await _json(send, 200, self.stats(query.get("times") == ["1"]))
        elif route == ("POST", "/reset"):
            body = await _body(receive)
            try:
                config = DependencyConfig.from_dict(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                await _json(send, 422, {"code": "invalid", "detail": str(exc)})
                return
            self.reset(config)
            await _json(send, 200, {"reset": True, "config": config.to_dict()})
        else:
            await _json(send, 404, {"code": "not_found", "detail": f"no route {route[1]}"})

    async def _call(self, send: Send) -> None:
        result = self.model.call(time.time())
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(result.latency)
        finally:
            self.in_flight -= 1
        if result.ok:
            await _json(send, 200, {"ok": True})
        else:
            await _json(send, 503, {"ok": False, "reason": result.reason})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(send: Send, status: int, data: Any) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(host: str, port: int, config: DependencyConfig) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles both)."""
    import uvicorn

    uvicorn.run(DependencyApp(config), host=host, port=port, log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip
