"""Grafana's queries and the autoscaler's rule name only metrics the app really exports.

The API, a worker and a scheduler run here with the very commands docker-compose.yml gives them
(ports swapped for free ones), jobs succeed, retry and die, and each process is scraped. Every
metric a dashboard query, the Prometheus adapter rule or a health check names must be in those
scrapes; and the health check passes against the live processes. What the queries read is
checked by a real Prometheus in test_dashboard_prometheus.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import free_port
from jobrunner.job import make_job
from jobrunner.queue import ReliableQueue
from tests.conftest import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count", "_created"),
}
PROMETHEUS_BUILTIN = {"up"}  # written by Prometheus itself for every target
# Words of PromQL that look like metric names: functions, aggregations, keywords.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, ranges, groupings removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, adapter templates)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if following.startswith("(") or match.group() in PROMQL_WORDS:
            continue  # a function or an aggregation
        names.add(match.group())
    return names


def test_metric_names_are_read_from_promql() -> None:
    expr = ('histogram_quantile(0.95, sum by (le) (rate(job_wait_seconds_bucket{queue=~"$q"}'
            '[$__rate_interval]))) / on(queue) group_left max(up{job="w"} == 1)')  # fmt: skip
    assert metric_names(expr) == {"job_wait_seconds_bucket", "up"}


def exported(text: str) -> set[str]:
    """Every series name an exposition declares, whether or not it has a sample yet."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


METRICS_TOKEN = "test-metrics-token-0123456789abcdef"


def compose_env(service: str) -> dict[str, str]:
    """The service's compose environment, ``${VAR:?...}`` filled as a .env file would."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    raw: dict[str, str] = compose["services"][service].get("environment", {})
    values = {"JOBRUNNER_METRICS_TOKEN": METRICS_TOKEN}
    out = {}
    for key, value in raw.items():
        found = re.fullmatch(r"\$\{(\w+):\?.*\}", str(value))
        out[key] = values[found.group(1)] if found else str(value)
    out.pop("REDIS_URL", None)  # the test's own Redis
    return out


def compose_command(service: str, replacements: dict[str, str]) -> list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command: list[str] = compose["services"][service]["command"]
    assert command[0] == "jobrunner"
    args = [replacements.get(arg, arg) for arg in command[1:]]
    return [sys.executable, "-m", "jobrunner.cli", *args]


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[dict[str, int]]:
    """API, worker and scheduler from the compose commands; yields their scrape ports."""
    ports = {"api": free_port(), "worker": free_port(), "scheduler": free_port()}
    swaps = {"8000": str(ports["api"]), "9100": str(ports["worker"]),
             "9101": str(ports["scheduler"]), "0.0.0.0": "127.0.0.1",
             "/app/schedules.toml": str(DEPLOY / "schedules.toml")}  # fmt: skip
    env = {**os.environ, "REDIS_URL": redis_url, "JOBRUNNER_HEARTBEAT_INTERVAL": "0.2",
           "JOBRUNNER_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)}  # fmt: skip
    procs = []
    try:
        for service in ports:
            log = (tmp_path / f"{service}.log").open("wb")
            procs.append(subprocess.Popen(compose_command(service, swaps), cwd=ROOT,
                                          env={**env, **compose_env(service)},
                                          stdout=log, stderr=log))  # fmt: skip
            log.close()
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


SCRAPER = {"authorization": f"Bearer {METRICS_TOKEN}"}  # as Prometheus sends it


def scrape(port: int, path: str = "/metrics") -> str:
    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5, headers=SCRAPER)
    response.raise_for_status()
    return response.text


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1, headers=SCRAPER).is_success
    except httpx.TransportError:
        return False


def healthcheck(*args: str) -> int:
    cmd = [sys.executable, "-m", "jobrunner.healthcheck", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=30).returncode


def test_dashboards_and_rules_name_only_exported_metrics(
    stack: dict[str, int], redis_url: str
) -> None:
    for service, port in stack.items():
        wait_until(lambda port=port: answers(port), 30, what=f"{service} metrics")

    async def load() -> None:
        client = async_redis(redis_url)
        try:
            jobs = [make_job("email", {"latency": 0.001}) for _ in range(50)]
            jobs += [make_job("flaky", {"p": 1.0}, max_retries=1) for _ in range(5)]
            await ReliableQueue(client).enqueue_jobs(jobs)
        finally:
            await client.aclose()

    asyncio.run(load())

    def worker_saw_everything() -> bool:
        text = scrape(stack["worker"])
        return "jobs_dead_total{" in text and "jobs_retried_total{" in text

    wait_until(worker_saw_everything, 30, what="processed, retried and dead jobs")
    wait_until(lambda: "scheduler_is_leader 1.0" in scrape(stack["scheduler"]), 30,
               what="the scheduler to lead")  # fmt: skip
    api = f"http://127.0.0.1:{stack['api']}"
    assert httpx.get(f"{api}/metrics").status_code == 401  # the scraper's token, or nothing
    assert httpx.get(f"{api}/queues", headers=SCRAPER).status_code == 403  # /metrics only
    names = set().union(*(exported(scrape(port)) for port in stack.values()))
    assert {"queue_depth", "jobs_enqueued_total", "jobs_processed_total",
            "job_duration_seconds_bucket", "scheduler_is_leader"} <= names  # fmt: skip

    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "jobrunner.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    variables = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    for definition in variables:
        match = re.fullmatch(r"label_values\((\w+), *\w+\)", definition)
        assert match, definition
        queries.append(match.group(1))
    hpa_rules = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter-rules.yaml").read_text())
    rules = yaml.safe_load(hpa_rules["data"]["config.yaml"])["externalRules"]
    queries += [q for rule in rules for q in (rule["seriesQuery"], rule["metricsQuery"])]
    used = set().union(*(metric_names(q) for q in queries))
    assert used - names - PROMETHEUS_BUILTIN == set()
    # And the dashboard covers every outcome the workers count.
    for metric in ("jobs_processed_total", "jobs_failed_total", "jobs_retried_total",
                   "jobs_dead_total", "job_duration_seconds_bucket", "job_wait_seconds_bucket",
                   "queue_depth", "jobs_in_flight"):  # fmt: skip
        assert metric in used, metric

    # The compose health checks pass against the live processes, and fail when they should.
    fresh = "worker_last_heartbeat_timestamp_seconds"
    worker_metrics = f"http://127.0.0.1:{stack['worker']}/metrics"
    assert healthcheck(worker_metrics, "--fresh", f"{fresh}=30") == 0
    assert healthcheck(worker_metrics, "--fresh", f"{fresh}=-1") == 1  # "older than -1 s"
    assert healthcheck(worker_metrics, "--fresh", "no_such_metric=30") == 1
    assert healthcheck(f"http://127.0.0.1:{stack['api']}/readyz") == 0
    assert healthcheck(f"http://127.0.0.1:{stack['api']}/no-such-route") == 1
    assert healthcheck(f"http://127.0.0.1:{stack['scheduler']}/metrics") == 0
    assert healthcheck(f"http://127.0.0.1:{free_port()}/healthz") == 1


def test_api_readiness_check_fails_without_a_worker(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    cmd = compose_command("api", {"8000": str(port), "0.0.0.0": "127.0.0.1"})
    log = (tmp_path / "api.log").open("wb")
    env = {**os.environ, **compose_env("api"), "REDIS_URL": redis_url}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    log.close()
    try:
        wait_until(lambda: answers(port), 30, what="the API")
        assert healthcheck(f"http://127.0.0.1:{port}/healthz") == 0
        assert healthcheck(f"http://127.0.0.1:{port}/readyz") == 1  # no worker: not ready
    finally:
        proc.terminate()
        proc.wait(20)
