"""Fuzz the API: from its own OpenAPI document (schemathesis), and POST /jobs with JSON that is
deep, wide and full of unpaired surrogates (hypothesis): whatever is sent, never a 5xx, and a
job that was accepted can be read back. The second would have found the nesting and surrogate
500s the safe-to-expose issue reported (schemathesis' own data is shallow and valid UTF-8)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.api import create_app
from jobrunner.config import Settings
from jobrunner.registry import load_handlers
from tests.api_server import ApiUrl, running_api

# The document is built without serving anything: no Redis is needed to describe the API.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(redis_url="redis://unused"), load_handlers(["tests.jobs"])).openapi()
)


@pytest.fixture(scope="module")
def api_base(redis_server: object) -> Iterator[ApiUrl]:
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
def test_no_request_gets_a_server_error(case: schemathesis.Case, api_base: ApiUrl) -> None:
    response = case.call(base_url=api_base, timeout=10, headers=api_base.headers)
    if case.path == "/readyz" and response.status_code == 503:  # no worker runs in this test
        assert response.json()["code"] == "no_workers"
        return
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400 and response.status_code != 405:
        body = response.json()
        assert set(body) == {"code", "field", "detail"}, body  # every error has one shape


# Text with every kind of code point, unpaired surrogates included: json.dumps writes those as
# \\ud800-style escapes, which a strict decoder must refuse rather than store.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(TEXT, inner, max_size=5), max_leaves=40)  # fmt: skip


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested 0 to 400 deep (the limit is 64; 300 broke GET /jobs/{id} once)."""
    value = draw(SCALARS)
    for _ in range(draw(st.integers(0, 400))):
        value = [value] if draw(st.booleans()) else {draw(TEXT): value}
    return value


@pytest.mark.slow
@given(data=st.one_of(JSON, deep()), wrap=st.booleans())
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_json_payload_is_stored_and_read_back_or_refused_with_a_4xx(
    data: Any, wrap: bool, api_base: ApiUrl
) -> None:
    body = {"jobs": [{"type": "noop", "data": data}]} if wrap else {"type": "noop", "data": data}
    raw = json.dumps(body, ensure_ascii=True)  # lone surrogates become \\udXXX escapes
    with httpx.Client(base_url=api_base, headers=api_base.headers, timeout=10) as http:
        answer = http.post("/jobs", content=raw, headers={"content-type": "application/json"})
        assert answer.status_code in (202, 422), (answer.status_code, answer.text[:300])
        if answer.status_code == 422:
            assert answer.json()["code"] in ("invalid", "max_depth", "max_items")
            return
        view = http.get(f"/jobs/{answer.json()['ids'][0]}")
        assert view.status_code == 200, view.text[:300]
        assert view.json()["data"] == data  # the payload as it was sent
