"""No queue name lets one client grow the service: queues are declared, reads cost O(declared).

Reproduces the findings of the safe-to-expose issue: a batch on thousands of new queue names
made thousands of queues, after which one job lookup, /metrics and /queues each touched every
one of them (28 s, 51 s, 39 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from jobrunner.config import Settings
from tests.api_server import running_api

DECLARED = ["default", "high"]


@pytest.fixture
def api(redis_url: str) -> Iterator[httpx.Client]:
    with (
        running_api(Settings(redis_url=redis_url, queues=DECLARED)) as base,
        httpx.Client(base_url=base, headers=base.headers, timeout=10) as client,
    ):
        yield client


def commands(r: redis.Redis) -> int:
    """Commands Redis has run since its start (INFO commandstats, INFO itself excluded)."""
    stats: dict[str, Any] = r.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def test_a_batch_on_undeclared_queues_is_refused_whole_and_makes_no_queue(
    api: httpx.Client, sync_redis: redis.Redis
) -> None:
    jobs = [{"type": "noop", "queue": f"q{i}"} for i in range(3000)]
    answer = api.post("/jobs", json={"jobs": [{"type": "noop"}, *jobs]})
    assert answer.status_code == 422
    assert answer.json()["code"] == "unknown_queue"
    assert answer.json()["field"] == "jobs.1.queue"
    assert sync_redis.keys("jr:{q*") == []
    assert sync_redis.llen("jr:{default}:ready") == 0  # the valid first job was not written
    assert [q["name"] for q in api.get("/queues").json()] == DECLARED


def test_a_job_lookup_is_one_read_however_many_queues_exist(
    api: httpx.Client, sync_redis: redis.Redis
) -> None:
    sync_redis.sadd("jr:queues", *[f"q{i}" for i in range(3000)])  # made by the library, say
    job_id = api.post("/jobs", json={"type": "noop", "queue": "high"}).json()["ids"][0]
    assert job_id.endswith("@high")
    before = commands(sync_redis)
    assert api.get(f"/jobs/{job_id}").json()["queue"] == "high"
    assert api.get("/jobs/no-such-job").status_code == 404
    assert commands(sync_redis) - before <= 10  # two lookups, and a sampler tick at most


def test_metrics_and_queues_read_only_the_declared_queues(
    api: httpx.Client, sync_redis: redis.Redis
) -> None:
    sync_redis.sadd("jr:queues", *[f"q{i}" for i in range(3000)])
    before = commands(sync_redis)
    metrics = api.get("/metrics").text
    listed = api.get("/queues").json()
    assert commands(sync_redis) - before <= 40  # 5 reads per declared queue, twice, + ticks
    assert [q["name"] for q in listed] == DECLARED
    assert 'queue="q1"' not in metrics
    assert 'queue_depth{queue="high",state="ready"}' in metrics


def test_a_queue_named_by_a_handler_is_declared(redis_url: str) -> None:
    """``@handler(..., queue="mail")`` declares its queue to an API that imports it."""
    from jobrunner.api import create_app
    from jobrunner.registry import Registry

    handlers = Registry()
    handlers.handler("send", queue="mail")(lambda payload: None)
    app = create_app(Settings(redis_url=redis_url), handlers)
    with running_api(Settings(redis_url=redis_url), app=app) as base:
        answer = httpx.post(f"{base}/jobs", json={"type": "send", "data": {}}, headers=base.headers)
        assert answer.status_code == 202
        assert answer.json()["ids"][0].endswith("@mail")
        assert [q["name"] for q in httpx.get(f"{base}/queues", headers=base.headers).json()] == [
            "default",
            "mail",
        ]


def test_declaring_more_queues_than_the_bound_is_a_startup_error(redis_url: str) -> None:
    from jobrunner.api import create_app
    from jobrunner.errors import ConfigError
    from jobrunner.registry import Registry

    settings = Settings(redis_url=redis_url, queues=[f"q{i}" for i in range(5)], max_queues=4)
    with pytest.raises(ConfigError, match="more than max_queues"):
        create_app(settings, Registry())
