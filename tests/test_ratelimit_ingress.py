"""Ingress limits on the API: per client key, 429 with Retry-After in the Problem shape, shared
through Redis, off by default; health, readiness and metrics are never limited."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jobrunner.api.ingress import ingress_limit
from jobrunner.config import Settings
from tests.api_server import running_api


@pytest.fixture
def limited_api(redis_url: str) -> Iterator[httpx.Client]:
    settings = Settings(redis_url=redis_url, ingress_rate="token_bucket:3/10s:burst=3")
    with (
        running_api(settings) as base,
        httpx.Client(base_url=base, headers=base.headers, timeout=10) as client,
    ):
        yield client


def post(client: httpx.Client, who: str | None = "alice") -> httpx.Response:
    headers = {"X-Client-Id": who} if who else {}
    return client.post("/jobs", json={"type": "test.record", "data": {}}, headers=headers)


def test_a_client_over_its_limit_gets_429_with_retry_after(limited_api: httpx.Client) -> None:
    assert [post(limited_api).status_code for _ in range(3)] == [202, 202, 202]
    refused = post(limited_api)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["field"] == "X-Client-Id"
    assert "alice" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 4  # a token every 3.3 s
    # The refused request wrote nothing: three jobs were enqueued, not four.
    queues = limited_api.get("/queues", headers={"X-Client-Id": "ops"}).json()
    assert queues[0]["counters"]["enqueued"] == 3


def test_each_client_key_has_its_own_budget(limited_api: httpx.Client) -> None:
    for _ in range(3):
        post(limited_api, "alice")
    assert post(limited_api, "alice").status_code == 429
    assert post(limited_api, "bob").status_code == 202
    # Without the header the client is its IP address: a budget of its own too.
    assert post(limited_api, None).status_code == 202


def test_probes_and_metrics_are_never_limited(limited_api: httpx.Client) -> None:
    for _ in range(10):
        assert limited_api.get("/healthz", headers={"X-Client-Id": "alice"}).status_code == 200
        assert limited_api.get("/metrics", headers={"X-Client-Id": "alice"}).status_code == 200


def test_two_api_servers_share_one_budget(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, ingress_rate="token_bucket:2/10s:burst=2")
    with (
        running_api(settings) as first,
        running_api(settings) as second,
        httpx.Client(base_url=first, headers=first.headers) as a,
        httpx.Client(base_url=second, headers=second.headers) as b,
    ):
        assert post(a, "carol").status_code == 202
        assert post(b, "carol").status_code == 202
        assert post(a, "carol").status_code == 429
        assert post(b, "carol").status_code == 429


def test_off_by_default(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url)
    assert ingress_limit(settings) is None
    with running_api(settings) as base, httpx.Client(base_url=base, headers=base.headers) as client:
        assert {post(client).status_code for _ in range(20)} == {202}


def test_a_concurrency_limit_is_no_ingress_rate(redis_url: str) -> None:
    with pytest.raises(ValueError, match="not a concurrency limit"):
        ingress_limit(Settings(redis_url=redis_url, ingress_rate="concurrency:4"))
    with pytest.raises(ValueError, match="cannot read limit"):
        Settings(ingress_rate="lots")
