"""``POST /jobs`` with one job against a bare endpoint (``GET /healthz``), on one API process.

One blocking keep-alive connection (the standard library's ``http.client``, the lightest client
at hand) sends one request at a time, so each figure is a request's round trip through uvicorn
and the app. ``bench/api_throughput.py`` measures the same pair under load with wrk; this pair is
what the regression gate (bench/gate.py) judges: ``POST /jobs`` as a ratio to the bare endpoint
timed right before and after it, which cancels the machine, the client and the HTTP server
out of it.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from pytest_benchmark.fixture import BenchmarkFixture

from bench.api_process import serving_api
from bench.conftest import Calibration
from jobrunner.dev.redis_server import RedisServer
from jobrunner.tokens import encode_record, new_token, tokens_key

ONE_JOB = json.dumps({"type": "noop", "data": {"n": 1}}).encode()


class Api:
    """A keep-alive connection to the API and the enqueue token's header."""

    def __init__(self, base: str, token: str) -> None:
        url = urlsplit(base)
        self.connection = http.client.HTTPConnection(url.hostname or "", url.port)
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def request(self, method: str, path: str, body: bytes | None = None) -> int:
        self.connection.request(method, path, body, self.headers if body else {})
        response = self.connection.getresponse()
        response.read()
        return response.status


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        token, record = new_token("bench", ["enqueue"])
        client.hset(tokens_key(), record.id, encode_record(record))
        client.close()
        with serving_api(server.url) as process:
            api = Api(process.base, token)
            yield api
            api.connection.close()


@pytest.mark.benchmark(group="api")
def test_post_one_job(benchmark: BenchmarkFixture, api: Api) -> None:
    bare = Calibration("GET /healthz", lambda: api.request("GET", "/healthz"))
    assert api.request("GET", "/healthz") == 200
    with bare.around(benchmark):
        assert benchmark(api.request, "POST", "/jobs", ONE_JOB) == 202
