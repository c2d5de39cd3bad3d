"""Queue and operations routes: ``/queues`` (with pause and resume), ``/metrics``, ``/healthz``
and ``/readyz``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from jobrunner.api.auth import principal_of
from jobrunner.api.errors import RETRY_AFTER_SECONDS, ApiError
from jobrunner.api.jobs import queue_of
from jobrunner.api.responses import NOT_FOUND, UNAVAILABLE
from jobrunner.api.schemas import Paused, QueueView
from jobrunner.calls import QueueStats
from jobrunner.metrics import ApiMetrics

READY_MAX_HEARTBEAT_AGE = 30.0  # seconds: a worker that beat more recently counts as alive


def queues_router(metrics: ApiMetrics, declared: Sequence[str]) -> APIRouter:
    """Both read the declared queues only, in one round trip: their cost does not grow with
    whatever else is in Redis."""
    router = APIRouter()

    @router.get("/queues", response_model=list[QueueView])
    async def queues(request: Request) -> list[QueueView]:
        """Every declared queue: ready, scheduled, in flight, dead, counters, recent rates."""
        principal = principal_of(request.state)
        visible = [name for name in declared if principal.allows(name)]
        out = []
        for s in await queue_of(request).stats_many(visible):
            out.append(_view(s, request.app.state.rates.rates(s.name)))
        return out

    @router.post("/queues/{name}/pause", response_model=Paused, responses=NOT_FOUND)
    async def pause(request: Request, name: str) -> Paused:
        """Workers stop taking the queue's jobs; those running finish. Enqueues are still
        accepted (they wait), so producers need not know: resume to drain them."""
        return await set_paused(request, name, True)

    @router.post("/queues/{name}/resume", response_model=Paused, responses=NOT_FOUND)
    async def resume(request: Request, name: str) -> Paused:
        """Workers take the queue's jobs again."""
        return await set_paused(request, name, False)

    async def set_paused(request: Request, name: str, paused: bool) -> Paused:
        if name not in declared or not principal_of(request.state).allows(name):
            raise ApiError(404, "not_found", f"no declared queue {name!r}")
        changed = await queue_of(request).pause(name, paused)
        return Paused(queue=name, paused=paused, changed=changed)

    @router.get("/metrics", response_class=PlainTextResponse)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format: this API's counters and each declared queue's depth."""
        for stats in await queue_of(request).stats_many(declared):
            metrics.set_depths(stats)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive (it does not look at Redis)."""
        return {"status": "ok"}

    @router.get("/readyz", responses=UNAVAILABLE)
    async def readyz(request: Request) -> dict[str, object]:
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

    return router


def _view(s: QueueStats, rates: dict[str, float]) -> QueueView:
    return QueueView(name=s.name, ready=s.ready, scheduled=s.scheduled, in_flight=s.reserved,
                     dead=s.dead, paused=s.paused, counters=s.counters, rates=rates,
                     shards=[_view(shard, {}) for shard in s.shards])  # fmt: skip
