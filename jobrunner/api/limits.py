"""An ASGI middleware that refuses request bodies above a size, before they are parsed.

(FastAPI's own ``max_body_size`` answers a declared oversized body in plain text, whatever the
app's handlers say; every error of this API is a JSON Problem, so this small middleware stays.)
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class PayloadTooLarge(HTTPException):
    """Raised while a streamed body is read; an HTTPException, because the framework turns any
    other error raised while reading a body into a 400."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodyTimeout(HTTPException):
    """The client stopped sending its body half way (answered 408 by the app's handler)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(status_code=408,
                         detail=f"the request body stopped arriving for {seconds:g}s")  # fmt: skip


class BodySizeLimit:
    """413 from the declared Content-Length, or as soon as a streamed body passes the bound;
    408 when the body stalls for ``body_timeout`` seconds between two pieces (a slow client
    must not hold a request open forever). Once the body is complete, waiting on ``receive``
    (an event stream listening for the client to leave) has no time limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, self.max_bytes)
            return
        received = 0
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
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
