"""Fuzz the API from its own OpenAPI document (schemathesis): whatever is sent, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from jobrunner.api import create_app
from jobrunner.config import Settings
from jobrunner.registry import load_handlers
from tests.api_server import running_api

# The document is built without serving anything: no Redis is needed to describe the API.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(redis_url="redis://unused"), load_handlers(["tests.jobs"])).openapi()
)


@pytest.fixture(scope="module")
def api_base(redis_server: object) -> Iterator[str]:
    from jobrunner.dev.redis_server import RedisServer

    assert isinstance(redis_server, RedisServer)
    with running_api(Settings(redis_url=redis_server.url, max_queue_depth=1000)) as base:
        yield base


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(case: schemathesis.Case, api_base: str) -> None:
    response = case.call(base_url=api_base, timeout=10)
    if case.path == "/readyz" and response.status_code == 503:  # no worker runs in this test
        assert response.json()["code"] == "no_workers"
        return
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400 and response.status_code != 405:
        body = response.json()
        assert set(body) == {"code", "field", "detail"}, body  # every error has one shape
