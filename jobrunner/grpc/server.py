"""The gRPC server: the ``Jobs`` service, the standard health service (``grpc.health.v1``,
SERVING while Redis answers) and server reflection, on grpc.aio.

``GrpcServer(settings).start(host, port)`` serves on the running event loop (tests run it in
theirs); ``serve`` runs it until SIGINT/SIGTERM (``jobrunner grpc``, on uvloop).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from jobrunner.api.app import declared_queues
from jobrunner.api.auth import Authenticator
from jobrunner.api.ingress import ingress_limiter
from jobrunner.api.jobs import Admission
from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.grpc.metrics import CallMetrics, GrpcMetrics
from jobrunner.grpc.service import SERVICE, JobsService, add_jobs_service
from jobrunner.grpc.v1 import jobs_pb2 as pb
from jobrunner.logs import get_logger
from jobrunner.preflight import warn_about_redis
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Registry, load_handlers

HEALTH_EVERY = 2.0  # seconds between the health service's Redis pings
HEADROOM = 64 * 1024  # a message's framing over the body bound (field tags, lengths)
MAX_STREAMS = 100  # calls at once on one connection
IDLE_CLOSE = 300.0  # seconds a connection with no call open stays up
KEEPALIVE_MIN = 10.0  # the shortest interval between a client's pings we accept


class GrpcServer:
    """One grpc.aio server on one Redis connection pool; ``start`` then ``stop``."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else load_handlers(settings.imports)
        self.queues = declared_queues(settings, self.registry)
        self.log = get_logger(component="grpc")
        self.redis = async_redis(settings.redis_url, max_connections=64)
        self.queue = ReliableQueue(
            self.redis, prefix=settings.prefix, result_ttl=settings.result_ttl,
            registry=self.registry, idempotency_ttl=settings.idempotency_ttl, pipelined=True,
            wait_replicas=settings.wait_replicas, wait_timeout=settings.wait_timeout,
            history=settings.history,
        )  # fmt: skip
        methods = pb.DESCRIPTOR.services_by_name["Jobs"].methods_by_name
        self.metrics = metrics = GrpcMetrics(tuple(f"/{SERVICE}/{name}" for name in methods))
        metrics.expect(self.registry.names(), self.queues)
        authenticator = Authenticator(settings.prefix, settings.token_cache_seconds,
                                      settings.session_ttl, settings.metrics_token)  # fmt: skip
        self.service = JobsService(Admission(settings, self.registry, metrics, self.queues),
                                   self.queue, authenticator, settings.auth,
                                   ingress_limiter(settings))  # fmt: skip
        self.health = health.aio.HealthServicer()
        bound = settings.max_payload_bytes + HEADROOM  # the HTTP body bound, as a message
        # Bounded as the HTTP API is: HTTP/2 carries many calls on one connection, so the cap
        # that matters is on calls in flight (WatchJob streams included): past
        # max_connections, a call is refused at once with RESOURCE_EXHAUSTED. Connections
        # idle for IDLE_CLOSE seconds are closed, and a client pinging more often than
        # every KEEPALIVE_MIN seconds is told to go away, so idle or chatty peers do not pile up.
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", bound),
                ("grpc.max_send_message_length", max(bound, 4 * 1024 * 1024)),
                ("grpc.so_reuseport", 0),
                ("grpc.max_concurrent_streams", MAX_STREAMS),
                ("grpc.max_connection_idle_ms", int(IDLE_CLOSE * 1000)),
                ("grpc.http2.min_ping_interval_without_data_ms", int(KEEPALIVE_MIN * 1000)),
            ],
            maximum_concurrent_rpcs=settings.max_connections,
            interceptors=[CallMetrics(metrics)],
        )  # fmt: skip
        add_jobs_service(self.service, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME)  # fmt: skip
        reflection.enable_server_reflection(names, self.server)
        self._pinger: asyncio.Task[None] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (port 0: a free one) and serve; returns the port."""
        shown = f"[{host}]" if ":" in host else host
        bound = self.server.add_insecure_port(f"{shown}:{port}")
        if not bound:
            raise OSError(f"cannot listen on {shown}:{port}")
        await warn_about_redis(self.redis, process="grpc")
        await self.server.start()
        await self.check_health()
        self._pinger = asyncio.create_task(self._ping_forever(), name="grpc-health")
        return bound

    async def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, let those running finish within ``grace`` seconds, close."""
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.queue.aclose()
        await self.redis.aclose()

    async def check_health(self) -> bool:
        try:
            up = bool(await self.redis.ping())
        except Exception:  # any failure to answer is "not serving"
            up = False
        status = (health_pb2.HealthCheckResponse.SERVING if up
                  else health_pb2.HealthCheckResponse.NOT_SERVING)  # fmt: skip
        for name in ("", SERVICE):
            await self.health.set(name, status)
        return up

    async def _ping_forever(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_EVERY)
            await self.check_health()


async def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully."""
    server = GrpcServer(settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=server.metrics.registry)
    bound = await server.start(host, port)
    shown = f"[{host}]" if ":" in host else host
    server.log.info("grpc listening", address=f"{shown}:{bound}", auth=settings.auth)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await server.stop()
