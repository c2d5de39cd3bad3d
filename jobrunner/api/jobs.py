"""Job routes: ``POST /jobs``, ``GET /jobs/{id}``, cancel, the scheduled and running lists, and
the dead letters (``/failed``: list, requeue, delete)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request, Response

from jobrunner.api.auth import Principal, principal_of
from jobrunner.api.bodies import JobIn, decode_jobs
from jobrunner.api.errors import RETRY_AFTER_SECONDS, ApiError
from jobrunner.api.openapi import JOB_BODIES
from jobrunner.api.responses import ERRORS, NOT_FOUND
from jobrunner.api.schemas import (
    Cancelled,
    Deleted,
    Enqueued,
    FailedPage,
    JobList,
    JobView,
    Requeued,
)
from jobrunner.config import Settings
from jobrunner.errors import QueueFull
from jobrunner.job import DEFAULT_QUEUE, Job, check_job, job_id_for_key, new_job_id
from jobrunner.job import queue_of as queue_of_id
from jobrunner.metrics import ApiMetrics
from jobrunner.payload import PayloadLimitError
from jobrunner.queue import Enqueued as Written
from jobrunner.queue import NewJob, ReliableQueue
from jobrunner.registry import Registry
from jobrunner.shards import logical_of
from jobrunner.tracing import enqueue_span

ENQUEUED = msgspec.json.Encoder()
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]


def queue_of(request: Request) -> ReliableQueue:
    """The app's queue (made by its lifespan, on the app's Redis client)."""
    q: ReliableQueue = request.app.state.queue
    return q


class Admission:
    """What an enqueue is checked against and how it is written: the handlers' types, the
    declared queues, the token's queues, the payload limits and the depth bound. ``POST /jobs``
    and the gRPC API (``jobrunner.grpc``) both admit jobs through it, so both refuse the same
    requests with the same codes and sentences (an ``ApiError``)."""

    def __init__(
        self, settings: Settings, registry: Registry, metrics: ApiMetrics, declared: Sequence[str]
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.declared = list(declared)
        self.accepted = frozenset(declared)

    def declared_queue(self, name: str, field: str | None = "queue") -> str:
        if name not in self.accepted:
            raise ApiError(422, "unknown_queue",
                           f"queue {name!r} is not declared; declared: {', '.join(self.declared)}",
                           field=field)  # fmt: skip
        return name

    def permitted(self, principal: Principal, name: str, field: str | None = "queue") -> str:
        """A declared queue the caller's token may use (tokens may be bound to queues)."""
        self.declared_queue(name, field)
        if not principal.allows(name):
            raise ApiError(403, "forbidden_queue",
                           f"token {principal.record.name!r} may not use queue {name!r}",
                           field=field)  # fmt: skip
        return name

    def visible(self, principal: Principal, name: str) -> bool:
        """Whether a job of queue ``name`` may be read (or cancelled) by the caller: a shard is
        its queue's, for what is declared and allowed."""
        home = logical_of(name)
        return home in self.accepted and principal.allows(home)

    def to_job(self, item: JobIn, index: int | None) -> Job:
        """The job a request item asks for, checked once here (the queue is told so)."""
        where = "type" if index is None else f"jobs.{index}.type"
        if item.type not in self.registry:
            known = ", ".join(self.registry.names())
            raise ApiError(422, "unknown_type", f"no handler for {item.type!r}; known: {known}",
                           field=where)  # fmt: skip
        queue = self.declared_queue(item.queue or self.registry.queue_for(item.type),
                                    where.replace("type", "queue"))  # fmt: skip
        job_id = (
            job_id_for_key(item.idempotency_key, queue)
            if item.idempotency_key
            else new_job_id(queue)
        )
        job = Job(id=job_id, type=item.type, payload=item.data, queue=queue,
                  max_retries=item.max_retries, timeout=item.timeout)  # fmt: skip
        data = where.replace("type", "data")
        try:
            check_job(job)  # the payload limits, on the client's JSON text
        except PayloadLimitError as exc:
            raise ApiError(422, exc.limit, str(exc).replace("data", data, 1), field=data) from exc
        except (TypeError, ValueError) as exc:
            raise ApiError(422, "invalid", str(exc), field=data) from exc
        return job

    def new_jobs(self, items: Sequence[JobIn], single: bool, principal: Principal) -> list[NewJob]:
        """The checked jobs of a request (``decode_jobs``'s items), each on a queue the caller
        may use; an ApiError for the first that is not."""
        batch = [
            NewJob(
                self.to_job(item, None if single else i),
                item.delay,
                item.idempotency_key,
                fresh=item.idempotency_key is None,
            )  # else its id is the key's: may exist
            for i, item in enumerate(items)
        ]
        for i, new in enumerate(batch):
            self.permitted(principal, new.job.queue, "queue" if single else f"jobs.{i}.queue")
        return batch

    async def enqueue(self, queue: ReliableQueue, batch: Sequence[NewJob]) -> Written:
        """Write the batch, all or nothing; a full queue is a 429 ``queue_full``."""
        try:
            with enqueue_span(list(batch)) as batch:  # each job carries its trace, if tracing
                done = await queue.enqueue_batch(
                    batch, max_depth=self.settings.max_queue_depth, checked=True
                )
        except QueueFull as exc:
            raise ApiError(429, "queue_full", str(exc), field="queue",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc  # fmt: skip
        for item, added in zip(batch, done.created, strict=True):
            if added:
                self.metrics.enqueued.labels(item.job.type, item.job.queue).inc()
        return done


def jobs_router(
    settings: Settings, registry: Registry, metrics: ApiMetrics, declared: Sequence[str]
) -> APIRouter:
    router = APIRouter()
    admission = Admission(settings, registry, metrics, declared)

    def permitted(request: Request, name: str, field: str | None = "queue") -> str:
        return admission.permitted(principal_of(request.state), name, field)

    @router.post("/jobs", status_code=202, response_model=Enqueued, responses=ERRORS,
                 openapi_extra=JOB_BODIES)  # fmt: skip
    async def enqueue(request: Request) -> Response:
        """Enqueue one job (`{"type": ..., "data": ...}`) or a batch (`{"jobs": [...]}`): the
        whole request is written in one step, or nothing is (any error answer)."""
        # The answer is encoded by msgspec and returned as it is: FastAPI would otherwise
        # validate and serialize it through the pydantic model (`Enqueued`, kept for the docs),
        # the dearest step of a single-job request after the round trip to Redis.
        items, single = decode_jobs(await request.body())
        batch = admission.new_jobs(items, single, principal_of(request.state))
        done = await admission.enqueue(queue_of(request), batch)
        return Response(ENQUEUED.encode({"ids": done.ids, "created": done.created}),
                        status_code=202, media_type="application/json")  # fmt: skip

    @router.get("/jobs/{job_id}", response_model=JobView, responses=NOT_FOUND)
    async def get_job(request: Request, job_id: str, queue: str | None = None) -> JobView:
        """A job's state, attempts, last error and timestamps: one read, whatever the number of
        queues (the id names its queue; `queue` is for an id chosen without one)."""
        name = queue or queue_of_id(job_id)
        visible = admission.visible(principal_of(request.state), name)
        record = await queue_of(request).get_job(job_id, name) if visible else None
        if record is None:
            raise ApiError(404, "not_found", f"no job {job_id!r} (or its result expired)")
        return JobView.of(record)

    @router.post("/jobs/{job_id}/cancel", response_model=Cancelled, responses=NOT_FOUND)
    async def cancel(request: Request, job_id: str, queue: str | None = None) -> Cancelled:
        """Cancel a job: a ready or scheduled one ends `cancelled` and never runs; a running one
        is `cancelling` until its worker stops it. An ended job is left as it is."""
        name = queue or queue_of_id(job_id)
        visible = admission.visible(principal_of(request.state), name)
        state = await queue_of(request).cancel(job_id, name) if visible else ""
        if not state:
            raise ApiError(404, "not_found", f"no job {job_id!r} (or its result expired)")
        return Cancelled(id=job_id, state=state)

    @router.get("/scheduled", response_model=JobList)
    async def scheduled(request: Request, queue: str = DEFAULT_QUEUE, offset: Offset = 0,
                        limit: Limit = 50) -> JobList:  # fmt: skip
        """Jobs waiting for a time, soonest first: delayed ones (attempts 0) and retries
        waiting out their back-off (attempts > 0); `due_at` is when each becomes ready."""
        return await listed(request, "scheduled", queue, offset, limit)

    @router.get("/running", response_model=JobList)
    async def running(request: Request, queue: str = DEFAULT_QUEUE, offset: Offset = 0,
                      limit: Limit = 50) -> JobList:  # fmt: skip
        """Jobs a worker holds, with `due_at` the end of their lease (renewed while they run)."""
        return await listed(request, "running", queue, offset, limit)

    async def listed(request: Request, state: str, queue: str, offset: int, limit: int) -> JobList:
        permitted(request, queue)
        q = queue_of(request)
        read = q.scheduled_jobs if state == "scheduled" else q.running_jobs
        page = await read(queue, offset, limit)
        stats = await q.stats(queue)
        total = stats.scheduled if state == "scheduled" else stats.reserved
        return JobList(queue=queue, state=state, offset=offset, limit=limit, total=total,
                       jobs=[JobView.of(record, due) for record, due in page])  # fmt: skip

    @router.get("/failed", response_model=FailedPage)
    async def failed(
        request: Request, queue: str = DEFAULT_QUEUE, offset: Offset = 0, limit: Limit = 50
    ) -> FailedPage:
        """Dead jobs of a queue, most recent first."""
        permitted(request, queue)
        q = queue_of(request)
        records = await q.dead_jobs(queue, offset, limit)
        total = (await q.stats(queue)).dead
        return FailedPage(queue=queue, offset=offset, limit=limit, total=total,
                          jobs=[JobView.of(r) for r in records])  # fmt: skip

    @router.post("/failed/{job_id}/requeue", response_model=Requeued, responses=NOT_FOUND)
    async def requeue_one(request: Request, job_id: str, queue: str | None = None) -> Requeued:
        """Send one dead job back to ready, with a fresh set of attempts (its id names its
        queue; `queue` is for an id chosen without one)."""
        queue = permitted(request, queue or queue_of_id(job_id))
        n = await queue_of(request).requeue(queue, [job_id])
        if n == 0:
            raise ApiError(404, "not_found", f"no dead job {job_id!r} in queue {queue!r}")
        return Requeued(requeued=n)

    @router.delete("/failed/{job_id}", response_model=Deleted, responses=NOT_FOUND)
    async def delete_one(request: Request, job_id: str, queue: str | None = None) -> Deleted:
        """Remove one dead job for good (only a dead job: a live one is never deleted)."""
        queue = permitted(request, queue or queue_of_id(job_id))
        n = await queue_of(request).delete_dead(queue, [job_id])
        if n == 0:
            raise ApiError(404, "not_found", f"no dead job {job_id!r} in queue {queue!r}")
        return Deleted(deleted=n)

    @router.post("/failed/requeue", response_model=Requeued)
    async def requeue_all(request: Request, queue: str = DEFAULT_QUEUE) -> Requeued:
        """Send every dead job of a queue back to ready."""
        return Requeued(requeued=await queue_of(request).requeue(permitted(request, queue)))

    return router
