"""The dashboard in a real headless browser (Debian's chromium driven by Playwright).

A real API, a real worker process and a load of thousands of jobs a second: the page loads, its
depth chart moves while the load runs, and requeueing dead jobs from the page puts them back on
their queue. The screenshot under load is kept in the test's folder, and written to
``results/dashboard.png`` when ``JOBRUNNER_UPDATE_SCREENSHOT=1``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from playwright.sync_api import Page, sync_playwright

from jobrunner.api import create_app
from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.job import make_job, queue_of
from jobrunner.queue import ReliableQueue
from jobrunner.registry import load_handlers
from jobrunner.sync_client import SyncClient
from tests.api_server import make_token
from tests.conftest import wait_until
from tests.test_dashboard import serving
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow
T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
LOAD_ROUNDS, JOBS_PER_ROUND, ROUND_SECONDS = 12, 1500, 0.5  # about 3,000 jobs/s for 6 s


@pytest.fixture
def page() -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1250})
        finally:
            browser.close()


def run_load(redis_url: str) -> threading.Thread:
    """Enqueue ``LOAD_ROUNDS`` bursts of simulated e-mails (and a few failing jobs), paced."""

    async def load() -> None:
        client = async_redis(redis_url)
        queue = ReliableQueue(client)
        try:
            for _ in range(LOAD_ROUNDS):
                jobs = [make_job("email", {"latency": 0.05}) for _ in range(JOBS_PER_ROUND)]
                jobs += [make_job("flaky", {"p": 0.5}, max_retries=1) for _ in range(20)]
                await queue.enqueue_jobs(jobs)
                await asyncio.sleep(ROUND_SECONDS)  # pacing the load, not waiting on a result
        finally:
            await client.aclose()

    thread = threading.Thread(target=lambda: asyncio.run(load()), name="load", daemon=True)
    thread.start()
    return thread


def make_dead(redis_url: str, queue_name: str, count: int) -> list[str]:
    """Dead jobs in a queue no worker serves, made through the library's own transitions."""

    async def scenario() -> list[str]:
        client = async_redis(redis_url)
        queue = ReliableQueue(client)
        try:
            jobs = [make_job("test.record", {"n": i}, queue=queue_name) for i in range(count)]
            await queue.enqueue_jobs(jobs)
            for r in await queue.reserve(queue_name, count, lease=30):
                await queue.fail(queue_name, r.id, r.token, "ValueError: bad input", dead=True)
            return [job.id for job in jobs]
        finally:
            await client.aclose()

    return run_in_thread(scenario)


def run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a loop of its own (Playwright's sync API holds this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result(timeout=60)


def chart_ready_series(page: Page) -> list[float]:
    series: list[float] = page.evaluate("window.jobrunnerDashboard.charts.depth.data[1]")
    return series


def test_the_dashboard_lives_under_load_and_requeues_dead_jobs(
    page: Page, redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    app = create_app(
        Settings(redis_url=redis_url, queues=["default", "parked"]),
        load_handlers(["tests.jobs", "jobrunner.lab.handlers.demo"]),
    )
    worker = WorkerProcess(redis_url, tmp_path, "--import", "jobrunner.lab.handlers.demo",
                           "--log-level", "warning")  # fmt: skip
    try:
        worker.wait_ready()
        with serving(app) as base:
            # The page loads, goes live, and lists the worker with its model and pid.
            page.goto(f"{base}/dashboard?token={make_token(redis_url)}")  # signs in, then on
            page.wait_for_selector("#status.live", timeout=15_000)
            page.wait_for_selector(f"#workers td:text-is('{worker.pid}')", timeout=15_000)
            assert page.inner_text("#no-scheduler") == "no scheduler"

            # The depth chart moves while thousands of jobs a second go through.
            before = page.locator("#chart-depth").screenshot()
            loader = run_load(redis_url)

            def chart_moved() -> bool:
                ready = chart_ready_series(page)
                return len({v for v in ready if v > 0}) >= 3

            wait_until(chart_moved, 20, interval=0.2, what="the depth chart to move under load")
            assert page.locator("#chart-depth").screenshot() != before
            loader.join(30)
            assert not loader.is_alive()
            shot = tmp_path / "dashboard.png"  # the backlog is still draining: under load
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes().startswith(b"\x89PNG")
            if os.environ.get("JOBRUNNER_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(shot, ROOT / "results" / "dashboard.png")
            throughput = page.evaluate("window.jobrunnerDashboard.state.points.processed_per_s")
            assert max(throughput) > 0
            draw_ms = page.evaluate("window.jobrunnerDashboard.state.drawMs")
            print(f"dashboard: {len(draw_ms)} ticks drawn, slowest {max(draw_ms):.1f} ms")

            # Requeue one dead job from its row, then the rest with "Requeue all".
            ids = make_dead(redis_url, "parked", 3)
            page.wait_for_selector("#dead-queue option[value='parked']", state="attached")
            page.select_option("#dead-queue", "parked")
            rows = page.locator("#dead tbody tr")
            wait_until(lambda: rows.count() == 3, 15, what="three dead rows")
            assert page.inner_text("#dead tbody tr >> nth=0 >> td.error") == "ValueError: bad input"
            button = page.locator("#dead button.requeue").first
            chosen = button.get_attribute("data-job")
            assert chosen in ids
            button.click()

            def back_on_queue(job_id: str) -> bool:
                state = sync_redis.hget(f"jr:{{parked}}:job:{job_id}", "s")
                ready = sync_redis.lrange("jr:{parked}:ready", 0, -1)
                return state == b"ready" and job_id.encode() in ready

            wait_until(lambda: back_on_queue(str(chosen)), 10, what="the job back on its queue")
            assert sync_redis.zcard("jr:{parked}:dead") == 2
            wait_until(lambda: rows.count() == 2, 10, what="the row to leave the table")

            page.click("#requeue-all")
            wait_until(lambda: all(back_on_queue(i) for i in ids), 10, what="all back on queue")
            assert sync_redis.zcard("jr:{parked}:dead") == 0
            page.wait_for_selector("#dead-message:text('no dead jobs in parked')")
            # Leave the page before the server stops (its shutdown with streams still open is
            # test_dashboard.py's business, against a real process).
            page.goto("about:blank")
    finally:
        worker.kill()
    assert errors == []


def test_the_schedules_table_follows_the_schedules_route(
    page: Page, redis_url: str, tmp_path: Path
) -> None:
    """The page against the agreed ``GET /schedules`` shape (answered here by the browser)."""
    schedules: dict[str, Any] = {
        "leader": {"id": "sched-1", "token": 7, "ttl_seconds": 9.5},
        "schedules": [
            {"name": "nightly-report", "type": "email", "queue": "default", "every_seconds": None,
             "cron": "0 3 * * *", "timezone": "Europe/Paris", "misfire": "skip",
             "next_fire": 1_900_000_000, "last_fire": None},
            {"name": "ping", "type": "noop", "queue": "high", "every_seconds": 30, "cron": None,
             "timezone": "UTC", "misfire": "run_once", "next_fire": 1_900_000_030,
             "last_fire": 1_900_000_000},
        ],
    }  # fmt: skip
    app = create_app(Settings(redis_url=redis_url), load_handlers(["tests.jobs"]))
    with serving(app) as base:
        page.route("**/schedules", lambda route: route.fulfill(json=schedules))
        page.goto(f"{base}/dashboard?token={make_token(redis_url)}")
        page.wait_for_selector("#schedules tbody tr >> nth=1")
        assert page.is_hidden("#no-scheduler")
        first = page.locator("#schedules tbody tr").first.inner_text()
        for shown in ("nightly-report", "email", "0 3 * * *", "Europe/Paris", "skip"):
            assert shown in first
        assert "30s" in page.locator("#schedules tbody tr").nth(1).inner_text()
        assert "leader sched-1 (token 7" in page.inner_text("#leader")

        page.unroute("**/schedules")
        nothing = {"leader": None, "schedules": []}
        page.route("**/schedules", lambda route: route.fulfill(json=nothing))
        page.reload()
        page.wait_for_selector("#no-scheduler:visible")
        assert page.is_hidden("#schedules")


def test_an_operator_finds_a_job_cancels_pauses_deletes_and_reads_per_queue_latency(
    page: Page, redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    """The operator's table stakes (Flower, rq-dashboard, Sidekiq Web, asynqmon), each by a
    click in the page, each checked in Redis."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    app = create_app(Settings(redis_url=redis_url, queues=["default", "parked"]),
                     load_handlers(["tests.jobs"]))  # fmt: skip
    worker = WorkerProcess(redis_url, tmp_path, "--model", "thread", "--concurrency", "4",
                           "--log-level", "warning")  # fmt: skip
    client = SyncClient.from_url(redis_url)
    try:
        worker.wait_ready()
        echoed = client.enqueue("test.echo", {"to": "ada"})
        assert client.result(echoed, timeout=20) == {"echo": {"to": "ada"}, "attempt": 1}
        with serving(app) as base:
            page.goto(f"{base}/dashboard?token={make_token(redis_url)}")
            page.wait_for_selector("#status.live", timeout=15_000)

            # Find a job by id: its payload, result and timeline.
            page.fill("#find-id", echoed)
            page.click("#find button")
            page.wait_for_selector("#job-state:text-is('done')")
            assert '"to": "ada"' in page.inner_text("#job-payload")
            assert '"attempt": 1' in page.inner_text("#job-result")
            assert "enqueued" in page.inner_text("#job-timeline")
            assert page.is_hidden("#job-cancel")

            # Cancel a running job from its detail: the worker stops it.
            running = client.enqueue("test.stoppable", {"ledger": redis_url})
            wait_until(lambda: state_of(sync_redis, running) == "reserved", what="it to run")
            page.fill("#find-id", running)
            page.click("#find button")
            page.wait_for_selector("#job-cancel:visible")
            page.click("#job-cancel")
            wait_until(lambda: state_of(sync_redis, running) == "cancelled", what="it to stop")
            page.wait_for_selector("#job-state:text-is('cancelled')")  # the panel follows it
            assert "JobCancelled" in page.inner_text("#job-error")

            # A delayed job, listed as scheduled, cancelled from the list.
            delayed = client.enqueue("noop", {}, queue="parked", delay=600)
            page.select_option("#list-queue", "parked")
            row = page.locator(f"#list button.cancel[data-job='{delayed}']")
            row.wait_for(timeout=10_000)
            assert "delayed" in page.inner_text("#list tbody tr >> nth=0")
            row.click()
            wait_until(lambda: state_of(sync_redis, delayed) == "cancelled", what="the cancel")

            # Delete a dead job for good.
            [dead] = make_dead(redis_url, "parked", 1)
            page.select_option("#dead-queue", "parked")
            page.locator(f"#dead button.delete[data-job='{dead}']").click()
            wait_until(lambda: not sync_redis.exists(f"jr:{{parked}}:job:{dead}"), what="delete")
            assert sync_redis.zcard("jr:{parked}:dead") == 0

            # Pause the queue the worker serves: jobs wait; resume: they run.
            page.locator("#queues button.pause[data-queue='default']").click()
            wait_until(lambda: sync_redis.exists("jr:{default}:paused"), what="the pause")
            page.wait_for_selector("#queues button.resume[data-queue='default']")
            held = client.enqueue("test.echo", {"held": True})
            assert client.stats("default").paused
            assert state_of(sync_redis, held) == "ready"
            page.locator("#queues button.resume[data-queue='default']").click()
            assert client.result(held, timeout=20)["echo"] == {"held": True}

            # The per-queue charts show the default queue's throughput and latency.
            for _ in range(20):
                client.enqueue("test.echo", {})

            def latency_drawn() -> bool:
                points = page.evaluate("window.jobrunnerDashboard.state.queuePoints.default")
                return any(v is not None for v in points["run_ms_avg"])

            page.select_option("#chart-queue", "default")
            wait_until(latency_drawn, 20, interval=0.2, what="a latency point for default")
            assert "Latency of default" in page.inner_text("#caption-queue-latency")
            shot = tmp_path / "dashboard-operator.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("JOBRUNNER_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(shot, ROOT / "results" / "dashboard-operator.png")
            page.goto("about:blank")
    finally:
        client.close()
        worker.kill()
    assert errors == []


def state_of(sync_redis: redis.Redis, job_id: str) -> str | None:
    state = sync_redis.hget(f"jr:{{{queue_of(job_id)}}}:job:{job_id}", "s")
    return state.decode() if state is not None else None
