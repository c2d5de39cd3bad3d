"""The job history in PostgreSQL: the schema (versioned migrations in ``migrations/``), the
batched, idempotent write, the filtered query with keyset paging, and retention.

A write is one transaction: COPY the batch into a temporary table, then one ``INSERT ... SELECT
... ON CONFLICT (id) DO UPDATE ... WHERE`` the ending is later than the row's. Writing a batch
again (the archiver crashed after the COMMIT, before it acknowledged the entries) changes
nothing, and a job id ends up in one row, holding its last ending.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from importlib.resources import files
from typing import Any, NamedTuple

import msgspec
import psycopg

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MIGRATION_LOCK = 0x6A72_6869  # pg_advisory_xact_lock key: one migrating process at a time
MAX_PAGE = 1000
STATES = ("done", "dead", "cancelled")


class Incoming(NamedTuple):
    """One ended job to write, as the stream entry gives it (times in ms since the epoch;
    payload and result as JSON text, None when absent)."""

    id: str
    queue: str
    type: str
    state: str
    attempts: int
    error: str | None
    payload: str | None
    result: str | None
    enqueued_ms: int | None
    started_ms: int | None
    finished_ms: int


class HistoryRow(msgspec.Struct, kw_only=True):
    """An archived job (times in epoch seconds, as ``JobRecord``'s)."""

    id: str
    queue: str
    type: str
    state: str
    attempts: int
    error: str | None = None
    payload: Any = None
    result: Any = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float


class HistoryPage(msgspec.Struct, kw_only=True):
    """Rows, newest ending first; ``next`` is the cursor of the following page (None: last)."""

    rows: list[HistoryRow]
    next: str | None = None


class HistoryQuery(msgspec.Struct, kw_only=True, frozen=True):
    """Filters (all optional, and-ed): ``since``/``until`` bound the finish time in epoch
    seconds (since included, until not); ``error`` is a full-text search on the error text
    (websearch syntax: words, "a phrase", -not, or)."""

    type: str | None = None
    queue: str | None = None
    queues: tuple[str, ...] = ()  # only these queues (a token bound to queues); (): any
    state: str | None = None
    since: float | None = None
    until: float | None = None
    error: str | None = None
    limit: int = 100
    cursor: str | None = None


def migrations() -> list[tuple[int, str, str]]:
    """Every migration shipped with the package: (version, name, SQL), in version order."""
    found = []
    for entry in files("jobrunner.archive").joinpath("migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    """Apply the migrations the database has not had, in order, in one transaction (under an
    advisory lock, so two archivers starting together do not race); returns those applied."""
    applied = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
        current = (await cur.fetchone() or (0,))[0]
        for version, name, sql in migrations():
            if version > current:
                await conn.execute(sql.encode())
                await conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(version)
    return applied


COLUMNS = ("id", "queue", "type", "state", "attempts", "error", "payload", "result",
           "enqueued_ms", "started_ms", "finished_ms")  # fmt: skip
INCOMING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS history_incoming (id text, queue text, type text, "
    "state text, attempts integer, error text, payload text, result text, enqueued_ms bigint, "
    "started_ms bigint, finished_ms bigint) ON COMMIT DELETE ROWS"
)
COPY = f"COPY history_incoming ({', '.join(COLUMNS)}) FROM STDIN"
# DISTINCT ON: an id twice in one batch (ended twice, or an entry delivered again) is one row
UPSERT = """
INSERT INTO job_history AS h (id, queue, type, state, attempts, error, payload, result,
                              enqueued_at, started_at, finished_at)
SELECT DISTINCT ON (id) id, queue, type, state, attempts, error, payload::jsonb, result::jsonb,
       to_timestamp(enqueued_ms / 1000.0), to_timestamp(started_ms / 1000.0),
       to_timestamp(finished_ms / 1000.0)
FROM history_incoming
ORDER BY id, finished_ms DESC
ON CONFLICT (id) DO UPDATE SET
    queue = excluded.queue, type = excluded.type, state = excluded.state,
    attempts = excluded.attempts, error = excluded.error, payload = excluded.payload,
    result = excluded.result, enqueued_at = excluded.enqueued_at,
    started_at = excluded.started_at, finished_at = excluded.finished_at, archived_at = now()
WHERE excluded.finished_at > h.finished_at
"""
SELECT = """
SELECT id, queue, type, state, attempts, error, payload, result,
       extract(epoch FROM enqueued_at)::float8, extract(epoch FROM started_at)::float8,
       extract(epoch FROM finished_at)::float8,
       (extract(epoch FROM finished_at) * 1000000)::bigint
FROM job_history
"""


def _as_strings(rows: Sequence[Incoming]) -> list[Incoming]:
    """The batch as Postgres takes any text: payload and result kept as JSON strings of their
    text, NUL characters dropped. For a batch refused as data (JSON that jsonb refuses, say
    ``\\u0000``): the record is kept, its payload shown rather than lost."""

    def clean(value: str | None) -> str | None:
        return value.replace("\x00", "") if value is not None else None

    def as_string(value: str | None) -> str | None:
        return json.dumps(value.replace("\x00", "")) if value is not None else None

    return [
        row._replace(
            id=row.id.replace("\x00", ""),
            type=clean(row.type) or "",
            error=clean(row.error),
            payload=as_string(row.payload),
            result=as_string(row.result),
        )
        for row in rows
    ]


def encode_cursor(finished_us: int, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{finished_us}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """ValueError for a cursor this module did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, _, job_id = text.partition(":")
        return int(micros), job_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a history cursor: {cursor!r}") from exc


class HistoryStore:
    """One PostgreSQL connection (autocommit; each write its own transaction)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    @classmethod
    async def connect(
        cls, url: str, *, migrate_schema: bool = True, timeout: float = 5.0
    ) -> HistoryStore:
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=max(1, round(timeout))
        )
        try:
            if migrate_schema:
                await migrate(conn)
            await conn.execute(INCOMING)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def aclose(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> HistoryStore:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def write(self, rows: Sequence[Incoming]) -> int:
        """Write a batch in one transaction; returns the rows inserted or changed (a batch
        written before changes none). A batch Postgres refuses as data is written again with
        its payloads and results as JSON strings (``_as_strings``)."""
        if not rows:
            return 0
        try:
            return await self._write(rows)
        except psycopg.errors.DataError:
            return await self._write(_as_strings(rows))

    async def _write(self, rows: Sequence[Incoming]) -> int:
        async with self.conn.transaction(), self.conn.cursor() as cur:
            async with cur.copy(COPY) as copy:
                for row in rows:
                    await copy.write_row(row)
            await cur.execute(UPSERT)
            return cur.rowcount

    async def query(self, q: HistoryQuery) -> HistoryPage:
        """One page of rows matching ``q``, newest ending first (ties by id)."""
        if not 1 <= q.limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}, not {q.limit}")
        if q.state is not None and q.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {q.state!r}")
        where: list[str] = []
        params: list[Any] = []
        for column in ("type", "queue", "state"):
            value = getattr(q, column)
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if q.queues:
            where.append("queue = ANY(%s)")
            params.append(list(q.queues))
        if q.since is not None:
            where.append("finished_at >= to_timestamp(%s)")
            params.append(q.since)
        if q.until is not None:
            where.append("finished_at < to_timestamp(%s)")
            params.append(q.until)
        if q.error:
            where.append("error_search @@ websearch_to_tsquery('simple', %s)")
            params.append(q.error)
        if q.cursor is not None:
            micros, job_id = decode_cursor(q.cursor)
            where.append(
                "(finished_at, id) < (to_timestamp(0) + %s * interval '1 microsecond', %s)"
            )
            params += (micros, job_id)
        sql = SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY finished_at DESC, id DESC LIMIT %s"
        params.append(q.limit + 1)
        cur = await self.conn.execute(sql.encode(), params)
        found = await cur.fetchall()
        rows = [
            HistoryRow(
                id=r[0],
                queue=r[1],
                type=r[2],
                state=r[3],
                attempts=r[4],
                error=r[5],
                payload=r[6],
                result=r[7],
                enqueued_at=r[8],
                started_at=r[9],
                finished_at=r[10],
            )
            for r in found[: q.limit]
        ]
        more = len(found) > q.limit
        return HistoryPage(rows=rows, next=encode_cursor(found[q.limit - 1][11], rows[-1].id)
                           if more else None)  # fmt: skip

    async def delete_older_than(self, days: float, batch: int = 10_000) -> int:
        """Retention: delete rows that ended more than ``days`` ago, ``batch`` rows per
        transaction (short locks, bounded WAL per statement); returns how many."""
        deleted = 0
        while True:
            cur = await self.conn.execute(
                "DELETE FROM job_history WHERE id IN (SELECT id FROM job_history "
                "WHERE finished_at < now() - %s * interval '1 day' LIMIT %s)",
                (days, batch),
            )
            deleted += cur.rowcount
            if cur.rowcount < batch:
                return deleted
