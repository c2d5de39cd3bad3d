"""Request and response bodies of the HTTP API (pydantic models: validation and OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobrunner.job import QUEUE_NAME, JobRecord


class JobRequest(BaseModel):
    """One job to enqueue."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=200, examples=["email"])
    data: Any = Field(
        default=None,
        description="the payload: any JSON value, nested at most 64 deep, with at most 100,000 "
        "array items and object members in all (else 422 max_depth / max_items)",
    )
    queue: str | None = Field(
        default=None,
        pattern=QUEUE_NAME.pattern,
        description="a declared queue; default: the type's queue, else 'default'",
    )
    delay: float = Field(
        default=0.0, ge=0, le=365 * 86400, description="seconds before it is ready"
    )
    max_retries: int | None = Field(default=None, ge=0, le=1000)
    timeout: float | None = Field(default=None, gt=0, le=86400)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the same key again returns the first job's id instead of a new job",
    )


class BatchRequest(BaseModel):
    """Several jobs at once (one round trip per queue)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobRequest] = Field(min_length=1, max_length=10_000)


class Enqueued(BaseModel):
    ids: list[str]
    created: list[bool] = Field(description="false where an idempotency key matched a job")


class JobView(BaseModel):
    id: str
    type: str
    queue: str
    state: str
    attempts: int
    max_retries: int | None
    timeout: float | None
    data: Any
    last_error: str | None
    enqueued_at: float | None
    started_at: float | None
    finished_at: float | None
    result: Any = Field(default=None, description="what the handler returned (once done)")
    has_result: bool = Field(default=False, description="a result was kept (it may be null)")
    due_at: float | None = Field(
        default=None, description="in lists of scheduled or running jobs: when it is due, or "
        "when its lease ends",
    )  # fmt: skip

    @classmethod
    def of(cls, record: JobRecord, due_at: float | None = None) -> JobView:
        job = record.job
        return cls(
            id=job.id,
            type=job.type,
            queue=job.queue,
            state=record.state.value,
            attempts=record.attempts,
            max_retries=job.max_retries,
            timeout=job.timeout,
            data=job.payload,
            last_error=record.last_error,
            enqueued_at=record.enqueued_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            result=record.result,
            has_result=record.has_result,
            due_at=due_at,
        )


class FailedPage(BaseModel):
    queue: str
    offset: int
    limit: int
    total: int
    jobs: list[JobView]


class Requeued(BaseModel):
    requeued: int


class Deleted(BaseModel):
    deleted: int


class JobList(BaseModel):
    """A page of a queue's scheduled (soonest first) or running jobs, with ``due_at``."""

    queue: str
    state: str
    offset: int
    limit: int
    total: int
    jobs: list[JobView]


class Cancelled(BaseModel):
    id: str
    state: str = Field(description="cancelled (it will not run), cancelling (its worker is "
                       "stopping it), or the state it had ended in already")  # fmt: skip


class Paused(BaseModel):
    queue: str
    paused: bool
    changed: bool


class QueueView(BaseModel):
    name: str
    ready: int
    scheduled: int
    in_flight: int
    dead: int
    paused: bool = Field(default=False, description="workers take none of its jobs; enqueues "
                         "are still accepted")  # fmt: skip
    counters: dict[str, int]
    rates: dict[str, float] = Field(
        default_factory=dict,
        description="per second over the last 10 s and 60 s: enqueued, processed, failed, dead",
    )
    shards: list[QueueView] = Field(
        default_factory=list, description="a sharded queue's shards, each (the figures above "
        "are their sums)",
    )  # fmt: skip


class Problem(BaseModel):
    """Every error answer: a machine-readable code, the offending field if any, and why."""

    code: str
    field: str | None = None
    detail: str
