"""``GET /history``: jobs that ended, from the PostgreSQL history (jobrunner/archive).

Served only when the API is given a history database (``--pg-url`` / ``JOBRUNNER_PG_URL``);
the app imports this module then, so an API without it needs no psycopg. One connection,
opened at the first request (migrating the schema if the archiver has not yet), dropped and
opened again after a failure; PostgreSQL unreachable is a 503, as Redis unreachable is.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from jobrunner.api.auth import principal_of
from jobrunner.api.errors import RETRY_AFTER_SECONDS, ApiError
from jobrunner.api.responses import ERRORS
from jobrunner.archive.store import MAX_PAGE, HistoryQuery, HistoryStore

ERROR_SEARCH = 'full-text search on the error: words, "a phrase", -without, or'


class HistoryJob(BaseModel):
    id: str
    queue: str
    type: str
    state: Literal["done", "dead", "cancelled"]
    attempts: int
    error: str | None
    payload: Any
    result: Any
    enqueued_at: float | None
    started_at: float | None
    finished_at: float


class HistoryPage(BaseModel):
    """Newest ending first; pass ``next`` as ``cursor`` for the following page."""

    jobs: list[HistoryJob]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class HistoryReader:
    """The API's connection to the history database."""

    def __init__(self, pg_url: str) -> None:
        self.pg_url = pg_url
        self._store: HistoryStore | None = None
        self._lock = asyncio.Lock()

    async def query(self, q: HistoryQuery) -> HistoryPage:
        try:
            async with self._lock:
                if self._store is None:
                    self._store = await HistoryStore.connect(self.pg_url)
                page = await self._store.query(q)
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            await self.aclose()
            raise ApiError(503, "history_unavailable", f"the history database: {exc}".strip(),
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc  # fmt: skip
        except ValueError as exc:
            raise ApiError(400, "bad_request", str(exc), field="cursor") from exc
        rows = [HistoryJob(**msgspec.structs.asdict(row)) for row in page.rows]
        return HistoryPage(jobs=rows, next=page.next)

    async def aclose(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.aclose()


def history_router(reader: HistoryReader) -> APIRouter:
    router = APIRouter()

    @router.get("/history", response_model=HistoryPage, responses=ERRORS)
    async def history(
        request: Request,
        type: str | None = None,
        queue: str | None = None,
        state: Literal["done", "dead", "cancelled"] | None = None,
        since: Annotated[float | None, Query(description="finished at or after (epoch s)")] = None,
        until: Annotated[float | None, Query(description="finished before (epoch s)")] = None,
        error: Annotated[str | None, Query(max_length=200, description=ERROR_SEARCH)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> HistoryPage:
        """Jobs that ended (done, dead, cancelled), archived from Redis by `jobrunner
        archiver`, newest first, filtered; a token bound to queues sees only those."""
        principal = principal_of(request.state)
        if queue is not None and not principal.allows(queue):
            raise ApiError(403, "forbidden_queue",
                           f"token {principal.record.name!r} may not use queue {queue!r}",
                           field="queue")  # fmt: skip
        return await reader.query(
            HistoryQuery(type=type, queue=queue, queues=principal.record.queues, state=state,
                         since=since, until=until, error=error, limit=limit, cursor=cursor)
        )  # fmt: skip

    return router
