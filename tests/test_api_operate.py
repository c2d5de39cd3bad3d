"""The operator's routes over real HTTP with a real worker: results in ``GET /jobs/{id}``,
cancel, pause and resume, the scheduled and running lists, deleting dead jobs, and who may."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from jobrunner.config import Settings
from jobrunner.sync_client import SyncClient
from tests.api_server import bearer, make_token, running_api
from tests.conftest import BACKENDS, on_backend, wait_until
from tests.workers import WorkerProcess

redis_url = pytest.fixture(params=BACKENDS)(on_backend)


@pytest.fixture
def api(redis_url: str) -> Iterator[httpx.Client]:
    settings = Settings(redis_url=redis_url, queues=["default", "other"])
    with (
        running_api(settings) as base,
        httpx.Client(base_url=base, headers=base.headers, timeout=10) as client,
    ):
        yield client


def job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
    return body


def enqueue(api: httpx.Client, type: str, data: Any = None, **more: Any) -> str:
    response = api.post("/jobs", json={"type": type, "data": data, **more})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["ids"][0]
    return job_id


def test_a_result_is_shown_with_the_job_and_cancel_stops_a_running_one(
    api: httpx.Client, redis_url: str, tmp_path: Path
) -> None:
    done_id = enqueue(api, "test.echo", {"n": 1})
    running_id = enqueue(api, "test.stoppable", {"ledger": redis_url})
    worker = WorkerProcess(redis_url, tmp_path, "--model", "thread", "--concurrency", "2")
    try:
        wait_until(lambda: job(api, done_id)["state"] == "done", what="the echo job")
        shown = job(api, done_id)
        assert shown["result"] == {"echo": {"n": 1}, "attempt": 1}
        assert shown["has_result"] is True
        wait_until(lambda: job(api, running_id)["state"] == "reserved", what="the long job")
        listed = api.get("/running").json()
        assert [j["id"] for j in listed["jobs"]] == [running_id]
        assert listed["jobs"][0]["due_at"] > shown["finished_at"]  # its lease's end
        assert api.post(f"/jobs/{running_id}/cancel").json() == {
            "id": running_id, "state": "cancelling"
        }  # fmt: skip
        wait_until(lambda: job(api, running_id)["state"] == "cancelled", what="it stopped")
        assert api.post(f"/jobs/{running_id}/cancel").json()["state"] == "cancelled"
    finally:
        worker.stop()
    counters = {q["name"]: q for q in api.get("/queues").json()}["default"]["counters"]
    assert counters["cancelled"] == 1


def test_a_waiting_job_cancelled_never_runs_and_an_unknown_one_is_404(api: httpx.Client) -> None:
    job_id = enqueue(api, "noop", delay=60)
    assert api.post(f"/jobs/{job_id}/cancel").json()["state"] == "cancelled"
    assert job(api, job_id)["state"] == "cancelled"
    assert api.get("/scheduled").json()["total"] == 0
    missing = api.post("/jobs/nope/cancel")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_scheduled_lists_delayed_jobs_and_retries_soonest_first(
    api: httpx.Client, redis_url: str
) -> None:
    late = enqueue(api, "noop", delay=600)
    soon = enqueue(api, "noop", delay=60)
    with SyncClient.from_url(redis_url) as client:
        assert client.get(soon) is not None
    page = api.get("/scheduled", params={"limit": 1}).json()
    assert (page["total"], [j["id"] for j in page["jobs"]]) == (2, [soon])
    rest = api.get("/scheduled", params={"offset": 1}).json()["jobs"]
    assert [j["id"] for j in rest] == [late]
    assert rest[0]["due_at"] > page["jobs"][0]["due_at"]
    assert api.get("/scheduled", params={"queue": "nope"}).status_code == 422


def test_pause_stops_a_worker_taking_jobs_and_resume_drains_them(
    api: httpx.Client, redis_url: str, tmp_path: Path
) -> None:
    assert api.post("/queues/default/pause").json() == {
        "queue": "default", "paused": True, "changed": True
    }  # fmt: skip
    assert api.post("/queues/default/pause").json()["changed"] is False
    ids = [enqueue(api, "noop", {"i": i}) for i in range(20)]  # accepted while paused
    queues = {q["name"]: q for q in api.get("/queues").json()}
    assert (queues["default"]["paused"], queues["other"]["paused"]) == (True, False)
    other = enqueue(api, "noop", queue="other")
    worker = WorkerProcess(redis_url, tmp_path, "--queues", "default,other")
    try:
        worker.wait_ready()
        wait_until(lambda: job(api, other)["state"] == "done", what="the other queue's job")
        assert {job(api, i)["state"] for i in ids} == {"ready"}  # paused: none taken
        assert api.post("/queues/default/resume").json()["paused"] is False
        wait_until(lambda: all(job(api, i)["state"] == "done" for i in ids), what="the drain")
    finally:
        worker.stop()
    assert api.post("/queues/undeclared/pause").status_code == 404


def test_a_dead_job_is_deleted_for_good_and_a_live_one_never(
    api: httpx.Client, redis_url: str, sync_redis: redis.Redis
) -> None:
    dead = enqueue(api, "noop")
    live = enqueue(api, "noop")
    sync_redis.lrem("jr:{default}:ready", 0, dead)
    sync_redis.zadd("jr:{default}:dead", {dead: 1})
    sync_redis.hset(f"jr:{{default}}:job:{dead}", "s", "dead")
    assert api.delete(f"/failed/{dead}").json() == {"deleted": 1}
    assert api.get(f"/jobs/{dead}").status_code == 404
    refused = api.delete(f"/failed/{live}")
    assert refused.status_code == 404
    assert job(api, live)["state"] == "ready"


def test_operator_actions_need_the_admin_scope(api: httpx.Client, redis_url: str) -> None:
    job_id = enqueue(api, "noop")
    reader = bearer(make_token(redis_url, ["read", "enqueue"], name="app"))
    actions = [("POST", f"/jobs/{job_id}/cancel"), ("POST", "/queues/default/pause"),
               ("POST", "/queues/default/resume"), ("DELETE", f"/failed/{job_id}")]  # fmt: skip
    for method, path in actions:
        response = api.request(method, path, headers=reader)
        assert response.status_code == 403, (method, path, response.text)
    assert api.get("/scheduled", headers=reader).status_code == 200
    assert api.get("/running", headers=reader).status_code == 200
    assert job(api, job_id)["state"] == "ready"
