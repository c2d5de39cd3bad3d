"""Slow and greedy clients: half-sent requests are timed out, connections are capped.

Reproduces the finding that 1,500 half-sent requests were held open forever (the API's file
descriptors grew from 21 to 1,521): against a real ``jobrunner api`` process.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import psutil
import pytest

from tests.api_server import api_process, make_token
from tests.conftest import wait_until

pytestmark = pytest.mark.slow


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sent until it closed the connection (raises on a 10 s wait)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture
def quick_api(redis_url: str) -> Iterator[tuple[str, psutil.Process]]:
    env = {"JOBRUNNER_HEADER_TIMEOUT": "0.5", "JOBRUNNER_BODY_TIMEOUT": "0.5"}
    with api_process(redis_url, env=env) as (url, proc):
        yield url, psutil.Process(proc.pid)


def test_half_sent_headers_are_dropped_and_their_descriptors_freed(
    quick_api: tuple[str, psutil.Process],
) -> None:
    url, api = quick_api
    baseline = api.num_fds()
    with ExitStack() as held:
        socks = [held.enter_context(connect(url)) for _ in range(200)]
        for sock in socks:
            sock.sendall(b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")  # and no more
        started = time.monotonic()
        for sock in socks:
            assert closed_by_server(sock) == b""  # closed, not answered
        assert time.monotonic() - started < 10  # the recv deadline, not a performance figure
    wait_until(lambda: api.num_fds() <= baseline + 2, 10, what="descriptors to be freed")


def test_an_idle_connection_that_never_sends_is_dropped(
    quick_api: tuple[str, psutil.Process],
) -> None:
    url, _ = quick_api
    with connect(url) as sock:
        assert closed_by_server(sock) == b""


def test_a_body_that_stalls_is_a_408(quick_api: tuple[str, psutil.Process], redis_url: str) -> None:
    url, _ = quick_api
    auth = f"Authorization: Bearer {make_token(redis_url)}".encode()
    with connect(url) as sock:
        head = b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        sock.sendall(head + auth + b"\r\nContent-Length: 100\r\n\r\n" + b'{"type": "noop", ')
        answer = closed_by_server(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"code":"request_timeout"' in answer.replace(b" ", b"")


def test_connections_beyond_the_cap_get_a_clear_503(redis_url: str) -> None:
    env = {"JOBRUNNER_MAX_CONNECTIONS": "20", "JOBRUNNER_HEADER_TIMEOUT": "30"}
    with api_process(redis_url, env=env) as (url, _), ExitStack() as held:
        for _ in range(20):
            held.enter_context(connect(url)).sendall(b"GET /healthz HTTP/1.1\r\n")  # held open
        with connect(url) as extra:
            answer = closed_by_server(extra)
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"too_many_connections" in answer
