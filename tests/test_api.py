"""The HTTP API over real HTTP, against a private Redis: every route and every error code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer
from jobrunner.queue import ReliableQueue
from tests.api_server import bearer, make_token, running_api
from tests.conftest import BACKENDS, on_backend

redis_url = pytest.fixture(params=BACKENDS)(on_backend)


@pytest.fixture
def api(redis_url: str) -> Iterator[httpx.Client]:
    settings = Settings(redis_url=redis_url, max_payload_bytes=10_000, max_queue_depth=50,
                        queues=["default", "high", "b"])  # fmt: skip
    with (
        running_api(settings) as base,
        httpx.Client(base_url=base, headers=base.headers, timeout=10) as client,
    ):
        yield client


def problem(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "field", "detail"}
    return body


def test_enqueue_one_and_read_it_back(api: httpx.Client, sync_redis: redis.Redis) -> None:
    response = api.post("/jobs", json={"type": "noop", "data": {"a": [1, 2]}, "queue": "high"})
    assert response.status_code == 202
    body = response.json()
    [job_id] = body["ids"]
    assert body["created"] == [True]
    assert sync_redis.lrange("jr:{high}:ready", 0, -1) == [job_id.encode()]
    job = api.get(f"/jobs/{job_id}").json()
    assert (job["state"], job["type"], job["queue"], job["data"]) == (
        "ready", "noop", "high", {"a": [1, 2]},
    )  # fmt: skip
    assert job["attempts"] == 0
    assert job["enqueued_at"] > 0


def test_enqueue_a_batch_with_delays(api: httpx.Client) -> None:
    jobs = [{"type": "noop"}, {"type": "email", "delay": 30}, {"type": "noop", "queue": "b"}]
    response = api.post("/jobs", json={"jobs": jobs})
    assert response.status_code == 202
    ids = response.json()["ids"]
    assert len(set(ids)) == 3
    states = [api.get(f"/jobs/{i}").json()["state"] for i in ids]
    assert states == ["ready", "scheduled", "ready"]
    queues = {q["name"]: q for q in api.get("/queues").json()}
    assert (queues["default"]["ready"], queues["default"]["scheduled"]) == (1, 1)
    assert queues["b"]["ready"] == 1


@pytest.mark.parametrize("redis_url", ["single"], indirect=True)  # per queue on a cluster
def test_an_idempotency_key_names_one_job_whatever_the_queue(
    api: httpx.Client, sync_redis: redis.Redis
) -> None:
    """Job ids are per queue, so keys once made one job per queue under one id: now the key
    names the first job wherever the repeat is sent."""
    first = api.post("/jobs", json={"type": "noop", "idempotency_key": "k-1"}).json()
    again = api.post("/jobs", json={"type": "noop", "queue": "high", "idempotency_key": "k-1"})
    assert again.json() == {"ids": first["ids"], "created": [False]}
    assert sync_redis.llen("jr:{high}:ready") == 0
    same_request = api.post("/jobs", json={"jobs": [
        {"type": "noop", "queue": "b", "idempotency_key": "k-2"},
        {"type": "noop", "queue": "high", "idempotency_key": "k-2"},
    ]}).json()  # fmt: skip
    assert same_request["ids"][0] == same_request["ids"][1]
    assert same_request["created"] == [True, False]


@pytest.mark.parametrize("redis_url", ["single"], indirect=True)  # per queue on a cluster
def test_a_batch_with_a_full_queue_is_refused_whole(
    api: httpx.Client, sync_redis: redis.Redis
) -> None:
    assert (
        api.post("/jobs", json={"jobs": [{"type": "noop", "queue": "b"}] * 50}).status_code == 202
    )
    mixed = [{"type": "noop"}] * 10 + [{"type": "noop", "queue": "b"}]
    refused = api.post("/jobs", json={"jobs": mixed})
    assert refused.status_code == 429
    assert "queue 'b' holds 50 waiting jobs" in problem(refused)["detail"]
    assert sync_redis.llen("jr:{default}:ready") == 0  # nothing of the request was written


def test_the_same_idempotency_key_returns_the_first_job(api: httpx.Client) -> None:
    first = api.post("/jobs", json={"type": "noop", "idempotency_key": "order-42"}).json()
    again = api.post("/jobs", json={"type": "email", "idempotency_key": "order-42"}).json()
    assert again["ids"] == first["ids"]
    assert (first["created"], again["created"]) == ([True], [False])
    assert api.get(f"/jobs/{first['ids'][0]}").json()["type"] == "noop"
    assert api.get("/queues").json()[0]["ready"] == 1


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"type": "no.such.type"}, 422, "unknown_type", "type"),
        ({"type": "noop", "delay": -1}, 422, "invalid", "delay"),
        ({"type": 5}, 422, "invalid", "type"),
        ({"type": "noop", "surprise": 1}, 422, "invalid", "surprise"),
        ({"type": "noop", "queue": "bad queue name"}, 422, "invalid", "queue"),
        ({"jobs": []}, 422, "invalid", "jobs"),
        ({"jobs": [{"type": "noop"}, {"type": "nope"}]}, 422, "unknown_type", "jobs.1.type"),
        (
            {"jobs": [{"type": "noop"}, {"type": "noop", "delay": "soon"}]},
            422,
            "invalid",
            "jobs.1.delay",
        ),
        ({"data": {}}, 422, "invalid", "type"),
        ({"type": "noop", "jobs": [{"type": "noop"}]}, 422, "invalid", "jobs"),
        ({"type": "noop", "data": nested(65)}, 422, "max_depth", "data"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_write_nothing(
    api: httpx.Client,
    sync_redis: redis.Redis,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = api.post("/jobs", json=body)
    assert response.status_code == status
    answer = problem(response)
    assert (answer["code"], answer["field"]) == (code, field)
    assert sync_redis.keys("jr:{*") == []


def test_malformed_json_is_a_400(api: httpx.Client) -> None:
    response = api.post(
        "/jobs", content=b'{"type": "noop",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert problem(response)["code"] == "malformed_json"


def test_an_oversized_body_is_a_413(api: httpx.Client, sync_redis: redis.Redis) -> None:
    response = api.post("/jobs", json={"type": "noop", "data": "x" * 20_000})
    assert response.status_code == 413
    assert problem(response)["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must bite while streaming
        yield b'{"type": "noop", "data": "'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"}'

    streamed = api.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert sync_redis.keys("jr:{*") == []


def test_unknown_job_is_a_404(api: httpx.Client) -> None:
    response = api.get("/jobs/nope")
    assert response.status_code == 404
    assert problem(response)["code"] == "not_found"


def test_over_its_bound_a_queue_answers_429_then_accepts_when_drained(
    api: httpx.Client, redis_url: str
) -> None:
    jobs = [{"type": "noop"}] * 50
    assert api.post("/jobs", json={"jobs": jobs}).status_code == 202
    refused = api.post("/jobs", json={"type": "noop"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert problem(refused)["code"] == "queue_full"

    async def drain_some() -> None:
        client = async_redis(redis_url)
        try:
            q = ReliableQueue(client)
            batch = await q.reserve("default", 10, lease=30)
            await q.ack("default", [(r.id, r.token) for r in batch])
            await q.aclose()
        finally:
            await client.aclose()

    asyncio.run(drain_some())
    assert api.post("/jobs", json={"type": "noop"}).status_code == 202


def test_failed_jobs_are_listed_and_requeued(api: httpx.Client, redis_url: str) -> None:
    ids = api.post("/jobs", json={"jobs": [{"type": "noop"}] * 3}).json()["ids"]

    async def kill_all() -> None:
        client = async_redis(redis_url)
        try:
            q = ReliableQueue(client)
            for r in await q.reserve("default", 3, lease=30):
                await q.fail("default", r.id, r.token, "boom", dead=True)
            await q.aclose()
        finally:
            await client.aclose()

    asyncio.run(kill_all())
    page = api.get("/failed", params={"limit": 2}).json()
    assert (page["total"], len(page["jobs"])) == (3, 2)
    assert {j["last_error"] for j in page["jobs"]} == {"boom"}
    assert api.get("/failed", params={"offset": 2}).json()["jobs"][0]["id"] in ids
    assert api.post(f"/failed/{ids[0]}/requeue").json() == {"requeued": 1}
    assert problem(api.post(f"/failed/{ids[0]}/requeue"))["code"] == "not_found"
    assert api.post("/failed/requeue").json() == {"requeued": 2}
    assert api.get("/failed").json()["total"] == 0
    assert {api.get(f"/jobs/{i}").json()["state"] for i in ids} == {"ready"}


def test_health_and_readiness(api: httpx.Client, redis_url: str) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    not_ready = api.get("/readyz")
    assert not_ready.status_code == 503
    assert problem(not_ready)["code"] == "no_workers"

    async def beat() -> None:
        client = async_redis(redis_url)
        try:
            await ReliableQueue(client).heartbeat("w1", {"model": "asyncio"}, ttl=30)  # no scripts
        finally:
            await client.aclose()

    asyncio.run(beat())
    assert api.get("/readyz").json() == {"status": "ready", "workers": 1}


def test_openapi_document_and_docs_are_served(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert {"/jobs", "/jobs/{job_id}", "/failed", "/queues", "/readyz"} <= set(spec["paths"])
    assert api.get("/docs").status_code == 200


def test_redis_down_is_a_503_with_retry_after_never_a_2xx() -> None:
    server = RedisServer().start()
    settings = Settings(redis_url=server.url)
    with (
        running_api(settings) as base,
        httpx.Client(base_url=base, headers=base.headers, timeout=20) as client,
    ):
        assert client.post("/jobs", json={"type": "noop"}).status_code == 202
        server.kill()
        try:
            down = client.post("/jobs", json={"type": "noop"})
            assert down.status_code == 503
            assert down.headers["retry-after"] == "1"
            assert problem(down)["code"] == "redis_unavailable"
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200
        finally:
            server.stop()


def test_jobrunner_api_serves_the_app_as_a_process(redis_url: str) -> None:
    import subprocess
    import sys

    from jobrunner.dev.redis_server import free_port
    from tests.conftest import wait_until

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.cli", "api", "--port", str(port),
         "--redis-url", redis_url, "--log-format", "json", "--import", "tests.jobs"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 30, what="the API process to answer")
        response = httpx.post(
            f"http://127.0.0.1:{port}/jobs",
            json={"type": "email"},
            headers=bearer(make_token(redis_url)),
        )
        assert response.status_code == 202
    finally:
        proc.terminate()
        # uvicorn shuts down cleanly, then re-raises the signal so the exit status tells why.
        assert proc.wait(20) in (0, -15)


@pytest.mark.slow
def test_readiness_follows_a_real_worker(redis_url: str, tmp_path: Any) -> None:
    import signal

    from tests.conftest import wait_until
    from tests.workers import WorkerProcess

    with (
        running_api(Settings(redis_url=redis_url)) as base,
        httpx.Client(base_url=base, headers=base.headers) as api,
    ):
        assert api.get("/readyz").status_code == 503
        worker = WorkerProcess(redis_url, tmp_path)
        try:
            wait_until(lambda: api.get("/readyz").status_code == 200, what="ready with a worker")
        finally:
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0
        # a worker that stops says so at once (it removes its heartbeat), no waiting for a TTL
        answer = api.get("/readyz")
        assert answer.status_code == 503
        assert problem(answer)["code"] == "no_workers"


def test_a_payload_at_the_depth_limit_is_stored_and_read_back(api: httpx.Client) -> None:
    """Data nested 300 deep was accepted, then GET /jobs/{id} answered 500 for its whole life."""
    job_id = api.post("/jobs", json={"type": "noop", "data": nested(64)}).json()["ids"][0]
    answer = api.get(f"/jobs/{job_id}")
    assert answer.status_code == 200
    assert answer.json()["data"] == nested(64)
    deep = api.post("/jobs", json={"type": "noop", "data": nested(300)})
    assert (deep.status_code, problem(deep)["code"]) == (422, "max_depth")
    assert "nested 300 deep; the limit is 64" in problem(deep)["detail"]


@pytest.mark.parametrize(
    "raw",
    [b'{"type": "noop", "data": "\\ud800"}', b'{"type": "noop", "data": {"\\udfff": 1}}'],
)
def test_a_lone_surrogate_is_a_4xx_not_a_500(
    api: httpx.Client, sync_redis: redis.Redis, raw: bytes
) -> None:
    answer = api.post("/jobs", content=raw.replace(b"\\\\", b"\\"),
                      headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status_code == 422
    assert "surrogate" in problem(answer)["detail"]
    assert sync_redis.keys("jr:{*") == []


def test_a_paired_surrogate_escape_is_text(api: httpx.Client) -> None:
    raw = b'{"type": "noop", "data": "\\ud83d\\ude00"}'.replace(b"\\\\", b"\\")
    job_id = api.post("/jobs", content=raw, headers={"content-type": "application/json"})
    assert api.get(f"/jobs/{job_id.json()['ids'][0]}").json()["data"] == "\U0001f600"


def test_four_wide_bodies_at_once_leave_the_api_answering(redis_url: str) -> None:
    """A 1 MiB body of a 500,000-element array took 9.3 s to check; four at once made /healthz
    wait 28 s. Each is now refused over the item limit without building it in Python."""
    from concurrent.futures import ThreadPoolExecutor

    body = b'{"type": "noop", "data": [' + b",".join([b"1"] * 500_000) + b"]}"
    with running_api(Settings(redis_url=redis_url)) as base:

        def post() -> httpx.Response:
            headers = {**base.headers, "content-type": "application/json"}
            return httpx.post(f"{base}/jobs", content=body, timeout=30, headers=headers)

        with ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(post) for _ in range(4)]
            health = httpx.get(f"{base}/healthz", timeout=5)  # the deadline a probe would have
        statuses = {a.result().json()["code"] for a in answers}
    assert health.status_code == 200
    assert statuses == {"max_items"}
