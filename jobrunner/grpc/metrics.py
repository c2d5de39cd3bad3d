"""The gRPC server's Prometheus metrics: every call counted by method and status code, and
timed, by a server interceptor (the names follow go-grpc-prometheus, which dashboards know).

Served with the API's own job metrics (``jobs_enqueued``) on ``jobrunner grpc --metrics-port``.
The series of every method with code ``OK`` exist at zero from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from jobrunner.metrics import ApiMetrics

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60,
           600, 3600)  # a WatchJob stream lasts up to an hour  # fmt: skip


class GrpcMetrics(ApiMetrics):
    def __init__(self, methods: tuple[str, ...] = ()) -> None:
        super().__init__()
        r = self.registry
        self.handled = Counter(
            "grpc_server_handled", "Calls finished, by method and status code.",
            ("grpc_service", "grpc_method", "grpc_code"), registry=r,
        )  # fmt: skip
        self.seconds = Histogram(
            "grpc_server_handling_seconds", "From a call's start to its end (a stream's too).",
            ("grpc_service", "grpc_method"), buckets=BUCKETS, registry=r,
        )  # fmt: skip
        for full in methods:
            service, method = split(full)
            self.handled.labels(service, method, "OK")

    def observe(self, full_method: str, code: grpc.StatusCode | None, seconds: float) -> None:
        service, method = split(full_method)
        self.handled.labels(service, method, (code or grpc.StatusCode.OK).name).inc()
        self.seconds.labels(service, method).observe(seconds)


def split(full_method: str) -> tuple[str, str]:
    """``/jobrunner.v1.Jobs/Enqueue`` -> (``jobrunner.v1.Jobs``, ``Enqueue``)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


def _code(context: Any, error: BaseException | None) -> grpc.StatusCode:
    """The call's status: what the handler set or aborted with; an escaping error is what
    grpc.aio answers for it (UNKNOWN), a cancellation CANCELLED."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class CallMetrics(grpc.aio.ServerInterceptor):
    """Times and counts every unary and server-streaming call (the two kinds served here)."""

    def __init__(self, metrics: GrpcMetrics) -> None:
        self.metrics = metrics

    @contextlib.contextmanager
    def _observed(self, method: str, context: Any) -> Iterator[None]:
        """Count and time one call, unary or streaming, by the status it ended with."""
        started, error = time.perf_counter(), None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.metrics.observe(method, _code(context, error), time.perf_counter() - started)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method, observed = details.method, self._observed
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: Any) -> Any:
                with observed(method, context):
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )  # fmt: skip
        if handler.unary_stream is not None:
            inner_stream: Any = handler.unary_stream  # an async generator on grpc.aio

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                with observed(method, context):
                    async for message in inner_stream(request, context):
                        yield message

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )  # fmt: skip
        return handler
