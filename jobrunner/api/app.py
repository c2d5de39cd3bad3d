"""The HTTP API application: routes over ``ReliableQueue``, with one error shape for all.

``create_app(settings)`` builds it; ``jobrunner api`` serves it with uvicorn on uvloop. The
handlers the API knows (``--import``) decide which job types are accepted and their defaults.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from types import ModuleType
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from jobrunner.api.dashboard import dashboard_router
from jobrunner.api.errors import RETRY_AFTER_SECONDS, ApiError, install_error_handlers
from jobrunner.api.ingress import ingress_limit
from jobrunner.api.limits import BodySizeLimit
from jobrunner.api.rates import RateTracker
from jobrunner.api.schedules import schedules_router
from jobrunner.api.schemas import (
    BatchRequest,
    Enqueued,
    FailedPage,
    JobRequest,
    JobView,
    Problem,
    QueueView,
    Requeued,
)
from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.errors import ConfigError
from jobrunner.job import DEFAULT_QUEUE, Job, check_job, job_id_for_key, new_job_id
from jobrunner.metrics import JobMetrics
from jobrunner.preflight import warn_about_redis
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Registry, load_handlers

READY_MAX_HEARTBEAT_AGE = 30.0  # seconds: a worker that beat more recently counts as alive
Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {
    400: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
    429: {"model": Problem},
    503: {"model": Problem},
}

NOT_FOUND: Responses = {404: {"model": Problem}}
UNAVAILABLE: Responses = {503: {"model": Problem}}


def debug_routes() -> ModuleType:
    """The profiling routes' module; they need pyinstrument, which the lab extra brings."""
    try:
        return importlib.import_module("jobrunner.api.debug")
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"--debug-routes needs {exc.name!r}: pip install 'jobrunner[lab]'"
        ) from exc


def create_app(settings: Settings, registry: Registry | None = None) -> FastAPI:
    registry = registry if registry is not None else load_handlers(settings.imports)
    metrics = JobMetrics()
    debug = debug_routes() if settings.debug_routes else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = async_redis(settings.redis_url, max_connections=64)
        await warn_about_redis(redis, process="api")
        app.state.queue = ReliableQueue(
            redis, prefix=settings.prefix, result_ttl=settings.result_ttl, registry=registry
        )
        app.state.rates = RateTracker(app.state.queue)
        app.state.rates.start()
        try:
            with debug.tracing_allocations() if debug else nullcontext():
                yield
        finally:
            await app.state.rates.stop()
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
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_payload_bytes)
    if debug:
        app.include_router(debug.debug_router())
    app.include_router(dashboard_router())
    app.include_router(schedules_router())

    def queue_of(request: Request) -> ReliableQueue:
        q: ReliableQueue = request.app.state.queue
        return q

    def to_job(item: JobRequest, index: int | None) -> Job:
        where = "type" if index is None else f"jobs.{index}.type"
        if item.type not in registry:
            known = ", ".join(registry.names())
            raise ApiError(422, "unknown_type", f"no handler for {item.type!r}; known: {known}",
                           field=where)  # fmt: skip
        job_id = job_id_for_key(item.idempotency_key) if item.idempotency_key else new_job_id()
        job = Job(id=job_id, type=item.type, payload=item.data, queue=item.queue,
                  max_retries=item.max_retries, timeout=item.timeout)  # fmt: skip
        try:
            check_job(job)
        except (TypeError, ValueError) as exc:
            raise ApiError(422, "invalid", str(exc), field=where.replace("type", "data")) from exc
        return job

    async def check_backpressure(q: ReliableQueue, queues: set[str]) -> None:
        if not settings.max_queue_depth:
            return
        for name in sorted(queues):
            stats = await q.stats(name)
            if stats.ready + stats.scheduled >= settings.max_queue_depth:
                raise ApiError(
                    429,
                    "queue_full",
                    f"queue {name!r} holds {stats.ready + stats.scheduled} waiting jobs, "
                    f"its bound is {settings.max_queue_depth}; try again later",
                    field="queue",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )

    @app.post("/jobs", status_code=202, response_model=Enqueued, responses=ERRORS)
    async def enqueue(request: Request, body: JobRequest | BatchRequest) -> Enqueued:
        """Enqueue one job (`{"type": ..., "data": ...}`) or a batch (`{"jobs": [...]}`)."""
        items = body.jobs if isinstance(body, BatchRequest) else [body]
        single = isinstance(body, JobRequest)
        jobs = [to_job(item, None if single else i) for i, item in enumerate(items)]
        q = queue_of(request)
        await check_backpressure(q, {job.queue for job in jobs})
        by_delay: dict[float, list[Job]] = {}
        for job, item in zip(jobs, items, strict=True):
            by_delay.setdefault(item.delay, []).append(job)
        by_id: dict[str, bool] = {}
        for delay, batch in by_delay.items():
            flags = await q.enqueue_jobs(batch, delay=delay)
            by_id.update(zip([job.id for job in batch], flags, strict=True))
            for job, new in zip(batch, flags, strict=True):
                if new:
                    metrics.enqueued.labels(job.type, job.queue).inc()
        return Enqueued(ids=[j.id for j in jobs], created=[by_id[j.id] for j in jobs])

    @app.get("/jobs/{job_id}", response_model=JobView, responses=NOT_FOUND)
    async def get_job(request: Request, job_id: str) -> JobView:
        """A job's state, attempts, last error and timestamps."""
        record = await queue_of(request).get_job(job_id)
        if record is None:
            raise ApiError(404, "not_found", f"no job {job_id!r} (or its result expired)")
        return JobView.of(record)

    @app.get("/failed", response_model=FailedPage)
    async def failed(
        request: Request,
        queue: str = DEFAULT_QUEUE,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> FailedPage:
        """Dead jobs of a queue, most recent first."""
        q = queue_of(request)
        records = await q.dead_jobs(queue, offset, limit)
        total = (await q.stats(queue)).dead
        return FailedPage(queue=queue, offset=offset, limit=limit, total=total,
                          jobs=[JobView.of(r) for r in records])  # fmt: skip

    @app.post("/failed/{job_id}/requeue", response_model=Requeued, responses=NOT_FOUND)
    async def requeue_one(request: Request, job_id: str, queue: str = DEFAULT_QUEUE) -> Requeued:
        """Send one dead job back to ready, with a fresh set of attempts."""
        n = await queue_of(request).requeue(queue, [job_id])
        if n == 0:
            raise ApiError(404, "not_found", f"no dead job {job_id!r} in queue {queue!r}")
        return Requeued(requeued=n)

    @app.post("/failed/requeue", response_model=Requeued)
    async def requeue_all(request: Request, queue: str = DEFAULT_QUEUE) -> Requeued:
        """Send every dead job of a queue back to ready."""
        return Requeued(requeued=await queue_of(request).requeue(queue))

    @app.get("/queues", response_model=list[QueueView])
    async def queues(request: Request) -> list[QueueView]:
        """Every queue: ready, scheduled, in flight, dead, lifetime counters, recent rates."""
        q = queue_of(request)
        out = []
        for name in await q.queue_names():
            s = await q.stats(name)
            depths = {"ready": s.ready, "scheduled": s.scheduled, "dead": s.dead}
            rates = request.app.state.rates.rates(name)
            out.append(
                QueueView(
                    name=name, in_flight=s.reserved, counters=s.counters, rates=rates, **depths
                )
            )
        return out

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format: this API's counters and every queue's depth, read now."""
        q = queue_of(request)
        for name in await q.queue_names():
            metrics.set_depths(await q.stats(name))
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive (it does not look at Redis)."""
        return {"status": "ok"}

    @app.get("/readyz", responses=UNAVAILABLE)
    async def readyz(request: Request, response: Response) -> dict[str, object]:
        """Redis answers and at least one worker heartbeat is recent; 503 with the reason if not."""
        q = queue_of(request)
        try:
            await q.redis.ping()
            workers = await q.live_workers(READY_MAX_HEARTBEAT_AGE)
        except RedisError as exc:
            raise ApiError(503, "redis_unavailable", f"Redis does not answer: {exc}",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc  # fmt: skip
        if not workers:
            age = f"{READY_MAX_HEARTBEAT_AGE:.0f}s"
            raise ApiError(503, "no_workers", f"no worker heartbeat in the last {age}")
        return {"status": "ready", "workers": len(workers)}

    return app
