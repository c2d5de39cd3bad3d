"""An ASGI middleware that refuses request bodies above a size, before they are parsed.

(FastAPI's own ``max_body_size`` answers a declared oversized body in plain text, whatever the
app's handlers say; every error of this API is a JSON Problem, so this small middleware stays.)
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class PayloadTooLarge(HTTPException):
    """Raised while a streamed body is read; an HTTPException, because the framework turns any
    other error raised while reading a body into a 400."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodySizeLimit:
    """413 from the declared Content-Length, or as soon as a streamed body passes the bound."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, self.max_bytes)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge()  # answered as a Problem by the app's handler
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send: Send, max_bytes: int) -> None:
    body = b'{"code":"payload_too_large","field":null,"detail":"the body is larger than %d bytes"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body % max_bytes})
