"""The HTTP API application: wiring only. Routes live in their own modules, one error shape.

``create_app(settings)`` builds it; ``jobrunner api`` serves it with uvicorn on uvloop. The
handlers the API knows (``--import``) decide which job types it accepts and their defaults.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from types import ModuleType
from typing import Any

from fastapi import Depends, FastAPI

from jobrunner.api.auth import Authenticator, AuthMiddleware, TrustedHosts, default_hosts
from jobrunner.api.dashboard import dashboard_router
from jobrunner.api.errors import install_error_handlers, send_problem
from jobrunner.api.ingress import ingress_limit
from jobrunner.api.jobs import jobs_router
from jobrunner.api.limits import BodySizeLimit
from jobrunner.api.openapi import install_openapi
from jobrunner.api.queues import queues_router
from jobrunner.api.rates import RateTracker
from jobrunner.api.schedules import schedules_router
from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.errors import ConfigError
from jobrunner.metrics import ApiMetrics
from jobrunner.preflight import warn_about_redis
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Registry, load_handlers
from jobrunner.tracing import instrument_redis, tracer


def create_app(settings: Settings, registry: Registry | None = None) -> FastAPI:
    registry = registry if registry is not None else load_handlers(settings.imports)
    queues = declared_queues(settings, registry)
    metrics = ApiMetrics()
    metrics.expect(registry.names(), queues)
    debug = debug_routes() if settings.debug_routes else None
    history = history_reader(settings.pg_url) if settings.pg_url else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = async_redis(settings.redis_url, max_connections=64)
        await warn_about_redis(redis, process="api")
        app.state.queue = ReliableQueue(
            redis, prefix=settings.prefix, result_ttl=settings.result_ttl, registry=registry,
            idempotency_ttl=settings.idempotency_ttl, pipelined=True,
            wait_replicas=settings.wait_replicas, wait_timeout=settings.wait_timeout,
            history=settings.history,
        )  # fmt: skip
        app.state.queues = queues
        app.state.rates = RateTracker(app.state.queue, queues)
        app.state.rates.start()
        try:
            with debug.tracing_allocations() if debug else nullcontext():
                yield
        finally:
            await app.state.rates.stop()
            if history is not None:
                await history.aclose()
            await app.state.queue.aclose()
            await redis.aclose()

    app = FastAPI(
        title="jobrunner",
        summary="Enqueue background jobs and watch them run: at-least-once, on Redis.",
        version="0.1.0",
        lifespan=lifespan,
    )
    if (limit_ingress := ingress_limit(settings)) is not None:  # before any route is added
        app.router.dependencies.append(Depends(limit_ingress))
    install_error_handlers(app, settings.max_payload_bytes)
    install_openapi(app)
    authenticator = Authenticator(settings.prefix, settings.token_cache_seconds,
                                  settings.session_ttl, settings.metrics_token)  # fmt: skip
    app.state.authenticator = authenticator
    # outermost last: the Host check, then the body bound, then credentials, then the routes
    app.add_middleware(AuthMiddleware, authenticator=authenticator, refuse=send_problem,
                       enabled=settings.auth)  # fmt: skip
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_payload_bytes,
                       body_timeout=settings.body_timeout)  # fmt: skip
    app.add_middleware(TrustedHosts, allowed=settings.allowed_hosts or default_hosts(""),
                       refuse=send_problem)  # fmt: skip
    app.include_router(jobs_router(settings, registry, metrics, queues))
    app.include_router(queues_router(metrics, queues))
    app.include_router(schedules_router())
    app.include_router(dashboard_router())
    if tracer() is not None:  # tracing.setup turned it on: the official instrumentations
        instrument_app(app)
    if debug:
        app.include_router(debug.debug_router())
    if history is not None:
        app.include_router(importlib.import_module("jobrunner.api.history").history_router(history))
    return app


def instrument_app(app: FastAPI) -> None:
    """A server span per request (not the probes' and scrapers'), and spans for Redis calls."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="/healthz,/readyz,/metrics")
    instrument_redis()


def declared_queues(settings: Settings, registry: Registry) -> list[str]:
    """The queues this API accepts jobs for: ``--queues`` and those its handlers name.

    A job for any other queue is refused, so no client can make queues (and with them Redis
    keys, metric series and dashboard rows) by naming them; their number is bounded too.
    """
    queues = list(dict.fromkeys([*settings.queues, *registry.queues()]))
    if len(queues) > settings.max_queues:
        raise ConfigError(
            f"{len(queues)} queues are declared, more than max_queues ({settings.max_queues})"
        )
    return queues


def history_reader(pg_url: str) -> Any:
    """GET /history's connection to the history database; it needs psycopg (history extra)."""
    try:
        module = importlib.import_module("jobrunner.api.history")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--pg-url needs {exc.name!r}: pip install 'jobrunner[history]'") from exc
    return module.HistoryReader(pg_url)


def debug_routes() -> ModuleType:
    """The profiling routes' module; they need pyinstrument, which the lab extra brings."""
    try:
        return importlib.import_module("jobrunner.api.debug")
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"--debug-routes needs {exc.name!r}: pip install 'jobrunner[lab]'"
        ) from exc
