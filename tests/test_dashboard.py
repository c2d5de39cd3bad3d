"""The dashboard's server side: its files, the shared live feed, and its event stream's endings."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from jobrunner.api import create_app
from jobrunner.api.dashboard import STATIC_DIR, STATIC_FILES
from jobrunner.api.live import LiveFeed
from jobrunner.api.server import ApiServer, api_config
from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer, free_port
from jobrunner.job import make_job
from jobrunner.queue import ReliableQueue
from jobrunner.registry import load_handlers
from tests.api_server import bearer, make_token
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app under ``ApiServer`` (what ``jobrunner api`` runs) in a thread; yields its URL."""
    port = free_port()
    server = ApiServer(api_config(app, "127.0.0.1", port, log_level="warning"), app)
    thread = threading.Thread(target=server.run, name="dashboard-api", daemon=True)
    thread.start()

    def stop() -> list[str]:
        server.should_exit = True
        thread.join(20)
        if not thread.is_alive():
            return []
        cycles = [getattr(c, "cycle", None) for c in list(server.server_state.connections)]
        return [getattr(cycle, "scope", {}).get("path", "?") for cycle in cycles]

    try:
        wait_until(lambda: server.started, 20, what="the API to start")
        yield f"http://127.0.0.1:{port}"
    except BaseException:
        stop()  # the test's own failure is the one to report
        raise
    open_paths = stop()
    assert not thread.is_alive(), f"the server did not shut down; still open: {open_paths}"


def read_events(lines: Iterator[str], count: int) -> list[tuple[str, Any]]:
    """The next ``count`` server-sent events of a stream, as (event, decoded data)."""
    out: list[tuple[str, Any]] = []
    event = "message"
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[len("data: ") :])))
            if len(out) == count:
                return out
    return out


@pytest.fixture
def app(redis_url: str) -> FastAPI:
    return create_app(Settings(redis_url=redis_url), load_handlers(["tests.jobs"]))


@pytest.fixture
def auth(redis_url: str) -> dict[str, str]:
    return bearer(make_token(redis_url))


def test_the_page_and_every_file_it_names_are_served(app: FastAPI, redis_url: str) -> None:
    with serving(app) as base, httpx.Client(base_url=base, follow_redirects=True) as http:
        assert "Sign in" in http.get("/dashboard").text  # the login page, until signed in
        page = http.get("/dashboard", params={"token": make_token(redis_url)})
        assert page.status_code == 200
        assert str(page.url).endswith("/dashboard")  # the token left the URL
        assert page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="(dashboard/static/[^"]+)"', page.text)
        assert "dashboard/static/vendor/uplot/uPlot.iife.min.js" in assets
        for asset in assets:
            response = http.get("/" + asset)
            assert response.status_code == 200, asset
            assert response.content == (STATIC_DIR / asset.split("static/", 1)[1]).read_bytes()
        for wrong in ("nope.js", "../app.py", "..%2Fapp.py", "vendor/../../app.py"):
            response = http.get(f"/dashboard/static/{wrong}")
            assert response.status_code == 404, wrong
            assert response.json()["code"] == "not_found"


def test_the_vendored_chart_library_ships_with_its_licence_and_in_the_wheel() -> None:
    vendored = STATIC_DIR / "vendor" / "uplot"
    assert "MIT License" in (vendored / "LICENSE.txt").read_text()
    assert "uplot@1.6.32" in (vendored / "SOURCE.txt").read_text()
    banner = (vendored / "uPlot.iife.min.js").read_text()[:60]
    assert banner.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    # Every file served must be package data, or an installed wheel serves a page without it.
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["jobrunner"]
    shipped = {path for pattern in package_data for path in (ROOT / "jobrunner").glob(pattern)}
    for path in STATIC_FILES.values():
        assert path in shipped, path


async def test_the_feed_reads_depths_rates_and_live_workers(
    queue: ReliableQueue, aredis: Any
) -> None:
    await queue.enqueue_jobs([make_job("test.record", {"n": i}) for i in range(5)])
    await queue.heartbeat(
        "w-1", {"model": "thread", "concurrency": 16, "pid": 4242, "completed": 7}, ttl=30
    )
    await aredis.zadd("jr:workers", {"w-gone": 1000})  # a heartbeat from 1970: not shown
    await aredis.hset("jr:worker:w-gone", mapping={"model": "asyncio"})
    feed = LiveFeed(queue, ["default"])

    await feed.tick()
    first = feed.latest
    [default] = first["queues"]
    assert (default["ready"], default["in_flight"], default["dead"]) == (5, 0, 0)
    assert default["processed_per_s"] == 0.0  # no earlier sample to compare with
    [worker] = first["workers"]
    assert worker["id"] == "w-1"
    assert (worker["model"], worker["concurrency"], worker["pid"], worker["completed"]) == (
        "thread", 16, 4242, 7,
    )  # fmt: skip
    assert 0 <= worker["heartbeat_age"] < 5

    reserved = await queue.reserve("default", 3, lease=30)
    await queue.ack("default", [(r.id, r.token) for r in reserved])
    await feed.tick()
    second = feed.latest
    [default] = second["queues"]
    assert (default["ready"], default["counters"]["processed"]) == (2, 3)
    assert default["processed_per_s"] == round(3 / (second["t"] - first["t"]), 1)
    assert [p[1] for p in feed.points] == [5, 2]  # the charts' ready column, one point a tick
    assert feed.history()["points"]["ready"] == [5, 2]


async def test_the_feed_says_when_redis_does_not_answer() -> None:
    client = async_redis(f"redis://127.0.0.1:{free_port()}/0")
    feed = LiveFeed(ReliableQueue(client), ["default"])
    try:
        await feed.tick()
    finally:
        await client.aclose()
    assert "Redis does not answer" in feed.latest["error"]
    assert len(feed.points) == 0  # no made-up point on the charts


def test_every_viewer_shares_one_redis_read_per_tick() -> None:
    """Counted in Redis's own command stats, on a Redis of its own: no other test's process can
    add a TIME call to the count."""
    viewers = 5
    with RedisServer() as server:
        sync_redis = redis.Redis.from_url(server.url)
        app = create_app(Settings(redis_url=server.url), load_handlers(["tests.jobs"]))
        auth = bearer(make_token(server.url))
        try:
            one_read_per_tick(app, sync_redis, auth, viewers)
        finally:
            sync_redis.close()


def one_read_per_tick(app: FastAPI, sync_redis: Any, auth: dict[str, str], viewers: int) -> None:
    with serving(app) as base:
        feed: LiveFeed = app.state.live_feed
        calls_before = sync_redis.info("commandstats").get("cmdstat_time", {}).get("calls", 0)
        samples_before = feed.samples
        received: list[list[tuple[str, Any]]] = []
        with httpx.Client(base_url=base, timeout=10, headers=auth) as http:
            streams = [http.stream("GET", "/dashboard/events") for _ in range(viewers)]
            responses = [s.__enter__() for s in streams]
            try:
                assert all(r.headers["content-type"].startswith("text/event-stream")
                           for r in responses)  # fmt: skip
                wait_until(lambda: feed.viewers == viewers, 10, what="every viewer connected")
                received = [read_events(r.iter_lines(), 4) for r in responses]
            finally:
                for s in streams:
                    s.__exit__(None, None, None)
            samples = feed.samples - samples_before
            calls = sync_redis.info("commandstats")["cmdstat_time"]["calls"] - calls_before
            wait_until(lambda: feed.viewers == 0, 10, what="streams to end with their clients")
    assert all(events[0][0] == "history" for events in received)
    assert all([e for e, _ in events[1:]] == ["tick"] * 3 for events in received)
    # Viewers that saw the same tick saw the same bytes: it was read and encoded once.
    by_time: dict[float, set[str]] = {}
    for events in received:
        for _, data in events[1:]:
            by_time.setdefault(data["t"], set()).add(json.dumps(data, sort_keys=True))
    assert all(len(versions) == 1 for versions in by_time.values())
    assert len(by_time) < 3 * viewers
    # One TIME per tick (the feed's own); per-viewer reads would be `viewers` times as many.
    assert samples >= 3
    assert calls <= samples + 1


@pytest.mark.slow
def test_sigterm_ends_open_streams_and_the_api_exits(redis_url: str) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "jobrunner.cli", "api", "--port", str(port),
           "--redis-url", redis_url, "--log-format", "json", "--import", "tests.jobs"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.TransportError:
                return False

        wait_until(healthy, 30, what="the API process to answer")
        url = f"http://127.0.0.1:{port}/dashboard/events"
        headers = bearer(make_token(redis_url))
        with httpx.stream("GET", url, timeout=20, headers=headers) as response:
            lines = response.iter_lines()
            assert [e for e, _ in read_events(lines, 2)] == ["history", "tick"]
            proc.send_signal(signal.SIGTERM)
            rest = list(lines)  # returns only when the server ends the stream
        assert all(not line.startswith("event: history") for line in rest)
        # uvicorn exits cleanly, then re-raises the signal so the status tells why.
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode in (0, -signal.SIGTERM)
        assert b"Waiting for connections to close" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


async def test_new_streams_after_close_end_at_once(queue: ReliableQueue) -> None:
    feed = LiveFeed(queue, ["default"])
    await feed.close()
    chunks = [chunk async for chunk in feed.stream()]
    assert len(chunks) == 1
    assert b"event: history" in chunks[0]
    assert feed.viewers == 0


def test_stopping_the_server_ends_a_stream_still_open(app: FastAPI, auth: dict[str, str]) -> None:
    lines: list[str] = []
    with serving(app) as base:
        feed: LiveFeed = app.state.live_feed
        reader_done = threading.Event()

        def read() -> None:
            url = f"{base}/dashboard/events"
            with httpx.stream("GET", url, timeout=30, headers=auth) as response:
                lines.extend(response.iter_lines())  # until the server ends the stream
            reader_done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        wait_until(lambda: feed.viewers == 1, 10, what="the stream to open")
    # serving() has stopped the server: it asserts the thread ended, here the stream did too.
    assert reader_done.wait(10)
    assert any(line.startswith("event: history") for line in lines)
