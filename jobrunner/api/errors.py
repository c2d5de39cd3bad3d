"""Every error the API answers is a ``Problem``: a code a program can branch on, the field at
fault when there is one, and a sentence for people. No traceback ever leaves the server."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from jobrunner.errors import RedisFull, RedisUnavailable
from jobrunner.logs import get_logger

RETRY_AFTER_SECONDS = 1
REDIS_UNAVAILABLE = (
    "Redis cannot be reached. The jobs were most likely not written, but a connection "
    "lost after the request was sent cannot tell: retry with the same idempotency_key."
)
REDIS_FULL = (
    "Redis is at its memory limit and refuses new jobs; they were not written. "
    "Try again once workers have drained the queue."
)
AUTH_UNAVAILABLE = "Redis cannot be reached to check the token; try again shortly"
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
              413: "payload_too_large"}  # fmt: skip


class ApiError(Exception):
    """Raised by a route to answer with a Problem."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.headers = headers


def problem(
    status: int,
    code: str,
    detail: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "field": field, "detail": detail}, status_code=status, headers=headers
    )


async def send_problem(send: Send, status: int, code: str, detail: str) -> None:
    """A Problem answer written straight to the ASGI channel (for middleware)."""
    headers = [(b"content-type", b"application/json")]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="jobrunner"'))
    body = json.dumps({"code": code, "field": None, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_error_handlers(app: FastAPI, max_payload_bytes: int) -> None:
    log = get_logger(component="api")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.detail, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first: dict[str, Any] = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return problem(400, "malformed_json", f"the body is not valid JSON: {first['msg']}")
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        return problem(422, "invalid", str(first.get("msg")), ".".join(location) or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own answers (unknown route, wrong method, body over the bound).
        if exc.status_code == 413:
            detail = f"the body is larger than {max_payload_bytes} bytes"
            return problem(413, "payload_too_large", detail)
        code = HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    @app.exception_handler(RedisUnavailable)
    async def redis_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable", error=str(exc))
        return problem(503, "redis_unavailable", REDIS_UNAVAILABLE,
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip

    @app.exception_handler(RedisFull)
    async def redis_full(_: Request, exc: Exception) -> JSONResponse:
        log.warning("redis full", error=str(exc))
        return problem(503, "redis_full", REDIS_FULL,
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", error=repr(exc))
        return problem(500, "internal", "an unexpected error; it has been logged")
