"""The history table on a real PostgreSQL: migrations, the idempotent batched write, the
query's filters, paging and full-text search, and retention."""

from __future__ import annotations

import time

import psycopg
import pytest

from jobrunner.archive.store import (
    HistoryQuery,
    HistoryStore,
    Incoming,
    decode_cursor,
    migrate,
    migrations,
)
from tests.postgres import count

NOW_MS = int(time.time() * 1000)


def row(job_id: str, *, state: str = "done", fi: int = NOW_MS, **kw: object) -> Incoming:
    base = Incoming(id=job_id, queue="default", type="email", state=state, attempts=1,
                    error=None, payload='{"to": "a@b"}', result=None, enqueued_ms=fi - 50,
                    started_ms=fi - 20, finished_ms=fi)  # fmt: skip
    return base._replace(**kw)  # type: ignore[arg-type]


async def test_migrations_apply_in_order_once_and_record_their_versions(pg_url: str) -> None:
    versions = [version for version, _, _ in migrations()]
    assert versions == sorted(versions)
    assert versions[:2] == [1, 2]
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await migrate(conn) == versions
        assert await migrate(conn) == []  # a second archiver starting finds nothing to do
    assert count(pg_url, "SELECT count(*) FROM schema_version") == len(versions)


async def test_a_batch_written_again_adds_nothing_and_a_later_ending_wins(pg_url: str) -> None:
    """The crash between COMMIT and XACK replays a batch; a requeued job ends a second time."""
    async with await HistoryStore.connect(pg_url) as store:
        batch = [row("a"), row("b"), row("b")]  # b twice in one batch: one row
        assert await store.write(batch) == 2
        assert await store.write(batch) == 0
        assert await store.write([row("a", state="dead", fi=NOW_MS - 1000)]) == 0  # older
        assert await store.write([row("a", state="dead", fi=NOW_MS + 1000, error="x")]) == 1
        page = await store.query(HistoryQuery())
    assert count(pg_url) == 2
    assert {(r.id, r.state) for r in page.rows} == {("a", "dead"), ("b", "done")}


async def test_a_payload_jsonb_refuses_is_kept_as_a_json_string(pg_url: str) -> None:
    async with await HistoryStore.connect(pg_url) as store:
        assert await store.write([row("nul", payload='"a\\u0000b"', error="bad\x00byte")]) == 1
        (got,) = (await store.query(HistoryQuery())).rows
    assert (got.payload, got.error) == ('"a\\u0000b"', "badbyte")


async def test_filters_combine_and_pages_follow_each_other_without_gaps(pg_url: str) -> None:
    rows = [
        row(f"j{i:03}", fi=NOW_MS - i * 1000, type="email" if i % 2 else "resize",
            state="dead" if i % 5 == 0 else "done",
            error="SMTP timeout talking to mx1" if i % 5 == 0 else None)
        for i in range(100)
    ]  # fmt: skip
    async with await HistoryStore.connect(pg_url) as store:
        await store.write(rows)
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.query(HistoryQuery(type="email", limit=7, cursor=cursor))
            seen += [r.id for r in page.rows]
            if page.next is None:
                break
            cursor = page.next
        dead = await store.query(HistoryQuery(state="dead", error="smtp timeout"))
        window = await store.query(HistoryQuery(since=(NOW_MS - 10_000) / 1000,
                                                until=(NOW_MS - 4_000) / 1000))  # fmt: skip
        nothing = await store.query(HistoryQuery(error="disk -smtp"))
    assert seen == [f"j{i:03}" for i in range(100) if i % 2]  # newest first, each once
    assert [r.id for r in dead.rows] == [f"j{i:03}" for i in range(0, 100, 5)]
    assert [r.id for r in window.rows] == [f"j{i:03}" for i in range(5, 11)]
    assert nothing.rows == []


async def test_a_query_refuses_a_bad_limit_state_or_cursor(pg_url: str) -> None:
    async with await HistoryStore.connect(pg_url) as store:
        for bad in (HistoryQuery(limit=0), HistoryQuery(state="ready"),
                    HistoryQuery(cursor="not-a-cursor!")):  # fmt: skip
            with pytest.raises(ValueError, match=r"limit|state|cursor"):
                await store.query(bad)
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor("%%%")


async def test_retention_deletes_only_rows_older_than_its_days_in_batches(pg_url: str) -> None:
    day_ms = 86_400_000
    old = [row(f"old{i}", fi=NOW_MS - 40 * day_ms) for i in range(25)]
    async with await HistoryStore.connect(pg_url) as store:
        await store.write([*old, row("recent", fi=NOW_MS - 2 * day_ms)])
        assert await store.delete_older_than(30, batch=10) == 25
    assert count(pg_url) == 1
