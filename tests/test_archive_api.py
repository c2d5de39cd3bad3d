"""GET /history over real HTTP, real Redis (tokens) and a real PostgreSQL; Client.history."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from jobrunner.archive.store import HistoryStore, Incoming
from jobrunner.client import Client
from jobrunner.config import Settings
from jobrunner.errors import ConfigError
from tests.api_server import bearer, make_token, running_api

NOW_MS = int(time.time() * 1000)


def rows() -> list[Incoming]:
    """60 jobs over two queues and two types, one a second; every tenth died of a timeout."""
    return [
        Incoming(id=f"j{i:02}", queue="mail" if i % 2 else "images",
                 type="email" if i % 2 else "resize", state="dead" if i % 10 == 0 else "done",
                 attempts=1, error="SMTP timeout after 30 s" if i % 10 == 0 else None,
                 payload=f'{{"n": {i}}}', result=None, enqueued_ms=NOW_MS - i * 1000 - 80,
                 started_ms=NOW_MS - i * 1000 - 30, finished_ms=NOW_MS - i * 1000)
        for i in range(60)
    ]  # fmt: skip


@pytest.fixture
def history_url(pg_url: str) -> str:
    async def seed() -> None:
        async with await HistoryStore.connect(pg_url) as store:
            await store.write(rows())

    asyncio.run(seed())
    return pg_url


def test_history_filters_pages_and_searches_errors_over_http(
    redis_url: str, history_url: str
) -> None:
    settings = Settings(redis_url=redis_url, pg_url=history_url)
    with running_api(settings) as base, httpx.Client(base_url=base, headers=base.headers) as api:
        got, cursor = [], None
        while True:
            params = {"type": "email", "limit": 8, **({"cursor": cursor} if cursor else {})}
            page = api.get("/history", params=params).json()
            got += [job["id"] for job in page["jobs"]]
            if (cursor := page["next"]) is None:
                break
        dead = api.get("/history", params={"error": "timeout", "state": "dead"}).json()
        window = api.get("/history", params={"since": (NOW_MS - 5500) / 1000,
                                             "until": (NOW_MS - 1500) / 1000}).json()  # fmt: skip
        bad_cursor = api.get("/history", params={"cursor": "nonsense!"})
        bad_state = api.get("/history", params={"state": "ready"})
    assert got == [f"j{i:02}" for i in range(1, 60, 2)]  # newest first, each once, no gaps
    assert [job["id"] for job in dead["jobs"]] == [f"j{i:02}" for i in range(0, 60, 10)]
    first = dead["jobs"][0]
    assert (first["payload"], first["error"], first["queue"]) == (
        {"n": 0}, "SMTP timeout after 30 s", "images"
    )  # fmt: skip
    assert [job["id"] for job in window["jobs"]] == ["j02", "j03", "j04", "j05"]
    assert (bad_cursor.status_code, bad_cursor.json()["field"]) == (400, "cursor")
    assert bad_state.status_code == 422


def test_history_needs_the_read_scope_and_a_queue_bound_token_sees_its_queues_only(
    redis_url: str, history_url: str
) -> None:
    settings = Settings(redis_url=redis_url, pg_url=history_url)
    with running_api(settings) as base:
        mail_reader = bearer(make_token(redis_url, ["read"], ["mail"], name="mail"))
        enqueuer = bearer(make_token(redis_url, ["enqueue"], name="producer"))
        with httpx.Client(base_url=base) as api:
            mine = api.get("/history", headers=mail_reader, params={"limit": 1000}).json()
            other = api.get("/history", headers=mail_reader, params={"queue": "images"})
            unscoped = api.get("/history", headers=enqueuer)
    assert {job["queue"] for job in mine["jobs"]} == {"mail"}
    assert len(mine["jobs"]) == 30
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_queue")
    assert unscoped.status_code == 403


def test_history_answers_503_while_its_database_is_unreachable(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, pg_url="postgresql://postgres@127.0.0.1:1/none")
    with running_api(settings) as base, httpx.Client(base_url=base, headers=base.headers) as api:
        answer = api.get("/history")
    assert (answer.status_code, answer.json()["code"]) == (503, "history_unavailable")
    assert answer.headers["retry-after"] == "1"


def test_without_a_history_database_the_api_has_no_history_route(redis_url: str) -> None:
    with running_api(Settings(redis_url=redis_url)) as base:
        answer = httpx.get(f"{base}/history", headers=base.headers)
    assert answer.status_code == 404


async def test_the_client_pages_through_the_history_by_its_cursor(
    redis_url: str, history_url: str
) -> None:
    async with Client.from_url(redis_url, pg_url=history_url) as client:
        first = await client.history(queue="images", limit=20)
        rest = await client.history(queue="images", limit=20, cursor=first.next)
    assert [r.id for r in first.rows + rest.rows] == [f"j{i:02}" for i in range(0, 60, 2)]
    assert rest.next is None
    assert first.rows[0].finished_at == pytest.approx(NOW_MS / 1000)


async def test_the_client_without_a_history_database_says_how_to_give_it_one(
    redis_url: str,
) -> None:
    async with Client.from_url(redis_url) as client:
        with pytest.raises(ConfigError, match="JOBRUNNER_PG_URL"):
            await client.history()
