"""Every Grafana panel reads a sane value from a real Prometheus scraping a real stack.

The API, two workers and a scheduler run as the compose stack runs them (the demo handlers, the
schedules file, the API's metrics token), Debian's Prometheus scrapes them on loopback with the
deployed scrape config, jobs succeed, retry and die through the API, and then every panel's query
is evaluated as Grafana would send it. A check of metric names (test_deploy_metrics.py) cannot see
a query that parses but reads 56 years, or "no data" where the truth is 0.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner.config import Settings
from jobrunner.dev.redis_server import free_port
from jobrunner.dev.stack import Stack
from tests.api_server import make_token
from tests.conftest import wait_until
from tests.prometheus_server import Prometheus, find_prometheus

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "jobrunner.json"
SCHEDULES = ROOT / "deploy" / "schedules.toml"
METRICS_TOKEN = "test-metrics-token-0123456789abcdef"
# $__rate_interval spans the whole run: a rate times WINDOW is what the run counted.
WINDOW = 600
EMAILS, FLAKY_OK, FLAKY_DEAD = 40, 2, 3  # flaky dead: fails, is retried once, fails again
HEARTBEAT_MAX_AGE = 2 * Settings().heartbeat_interval  # a beat missed, and a scrape's lag
Range = tuple[float, float]


@dataclass
class Stacked:
    stack: Stack
    prometheus: Prometheus
    workers: list[str]  # their scrape targets, host:port


@pytest.fixture
def scraped() -> Iterator[Stacked]:
    """The stack and a Prometheus scraping it; both are gone after the test."""
    binary = find_prometheus()
    if binary is None:
        pytest.skip(
            "no prometheus binary: `make test` installs Debian's (apt-get install prometheus)"
        )
    scheduler_port = free_port()
    stack = Stack(
        workers=2, schedulers=1, env={"JOBRUNNER_METRICS_TOKEN": METRICS_TOKEN},
        scheduler_args=["--schedules", str(SCHEDULES), "--metrics-port", str(scheduler_port)],
    )  # fmt: skip
    with stack:
        workers = [f"127.0.0.1:{w.metrics_port}" for w in stack.workers]
        targets = {"api": [f"127.0.0.1:{stack.api_port}"], "worker": workers,
                   "scheduler": [f"127.0.0.1:{scheduler_port}"]}  # fmt: skip
        with Prometheus(binary, targets, METRICS_TOKEN) as prometheus:
            yield Stacked(stack, prometheus, workers)


def grafana_expr(expr: str) -> str:
    """The query as Grafana sends it: the queue variable at its default (All)."""
    for variable, value in (("$__rate_interval", f"{WINDOW}s"), ("$queue", ".*")):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not fill: {expr}"
    return expr


def legend(form: str, labels: dict[str, str]) -> str:
    """A series' name in the panel, as Grafana renders ``legendFormat``."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), form)


def rate_of(n: float) -> Range:
    """A rate over the run's window counting ``n`` events: extrapolation adds some (up to about
    double when a loaded machine let only a few scrapes land inside the run: seen 1.9x); a
    scrape taken as a baseline may hold one event more. Reading 0 or a count of another series
    still fails."""
    return (0.999 * n / WINDOW, (2.5 * n + 1) / WINDOW)


@dataclass
class Run:
    """What the jobs did, as the API reports it."""

    enqueued: int  # through the API
    processed: int  # succeeded, the scheduler's fires included
    fired: float  # the scheduler's fires since Prometheus first scraped it

    @property
    def jobs(self) -> int:
        return self.processed + FLAKY_DEAD


def expectations(run: Run, workers: list[str]) -> dict[tuple[str, str], dict[str, Range]]:
    """(panel, legendFormat) -> legend -> the range its value must be in; ``*``: any other
    legend of the target. Every target of the dashboard has an entry."""
    zero, small, dead = (0.0, 0.0), (0.0, float(run.jobs)), float(FLAKY_DEAD)
    duration = {f"p{q}": (0.0, 10.0) for q in (50, 95, 99)}  # the email handler's timeout
    waited = {f"p{q}": (0.0, 30.0) for q in (50, 95, 99)}
    return {
        ("Queue depth (waiting and in flight)", "{{queue}} {{state}}"): {
            f"default {state}": small for state in ("ready", "scheduled", "in_flight")
        },
        ("Throughput (jobs/s)", "enqueued {{queue}}"): {"enqueued default": rate_of(run.enqueued)},
        ("Throughput (jobs/s)", "processed {{queue}}"): {
            "processed default": rate_of(run.processed)
        },
        **{("Job duration percentiles", q): {q: r} for q, r in duration.items()},
        **{("Wait percentiles (enqueue to start)", q): {q: r} for q, r in waited.items()},
        ("Failures (failed attempts/s)", "{{type}}"): {"flaky": rate_of(2 * dead), "*": zero},
        ("Retries (attempts scheduled again/s)", "{{type}}"): {"flaky": rate_of(dead), "*": zero},
        ("Dead letters", "dead now {{queue}}"): {"dead now default": (dead, dead)},
        ("Dead letters", "died {{type}}"): {
            "died flaky": (rate_of(dead)[0] * WINDOW, rate_of(dead)[1] * WINDOW),
            "*": zero,
        },
        ("Jobs in flight, per worker", "{{instance}}"): dict.fromkeys(workers, small),
        ("Workers up, oldest heartbeat", "workers up"): {"workers up": (2, 2)},
        ("Workers up, oldest heartbeat", "oldest heartbeat (s)"): {
            "oldest heartbeat (s)": (0, HEARTBEAT_MAX_AGE)
        },
        ("Stale completions (lease taken over)/s", "{{queue}}"): {"default": zero},
        ("Scheduler: leader and fires/s", "leaders (should be 1)"): {
            "leaders (should be 1)": (1, 1)
        },
        ("Scheduler: leader and fires/s", "{{schedule}}"): {
            "heartbeat-email": rate_of(run.fired),
            "nightly-cleanup": zero,
        },
    }


def dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target) for panel in dashboard["panels"] for target in panel["targets"]
    ]


def read_target(prom: Prometheus, target: dict[str, Any]) -> dict[str, float]:
    """Each series the target draws, by its legend, evaluated as Grafana would now."""
    result = prom.query(grafana_expr(target["expr"]))
    values = {legend(target["legendFormat"], labels): value for labels, value in result}
    assert len(values) == len(result), f"two series share a legend: {result}"
    return values


def misreadings(
    key: tuple[str, str], values: dict[str, float], ranges: dict[str, Range]
) -> list[str]:
    """What is wrong with one target's reading: no data, a series missing or not expected, a
    value not finite or out of its range."""
    if not values:
        return [f"{key}: no data"]
    out = [f"{key}: missing {name}" for name in sorted(set(ranges) - {"*"} - set(values))]
    for name, value in sorted(values.items()):
        low, high = ranges.get(name) or ranges.get("*") or (math.nan, math.nan)
        if math.isnan(low):
            out.append(f"{key}: a series not expected: {name} = {value}")
        elif not (math.isfinite(value) and low <= value <= high):
            out.append(f"{key} {name}: {value} not in [{low:.4g}, {high:.4g}]")
    return out


def enqueue(stack: Stack) -> int:
    """Emails and flaky jobs that succeed, flaky jobs that fail, retry once and die."""
    jobs = [{"type": "email", "data": {"to": "a@example.com", "latency": 0.001}}] * EMAILS
    jobs += [{"type": "flaky", "data": {"p": 0.0}}] * FLAKY_OK
    jobs += [{"type": "flaky", "data": {"p": 1.0}, "max_retries": 1}] * FLAKY_DEAD
    response = httpx.post(f"{stack.api_url}/jobs", json={"jobs": jobs}, headers=stack.api_headers)
    assert response.status_code == 202, response.text
    return len(jobs)


def default_queue(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{stack.api_url}/queues", headers=stack.api_headers, timeout=5)
    [view] = [q for q in response.json() if q["name"] == "default"]
    return dict(view)


def test_every_dashboard_panel_reads_a_sane_value_from_a_real_prometheus(
    scraped: Stacked,
) -> None:
    """Each target's every series is there, finite, and in the range the jobs run imply."""
    stack, prom = scraped.stack, scraped.prometheus
    # Every target scraped at least once before any job: the counters' first samples are 0.
    wait_until(lambda: prom.value("count(up == 1)") == 5, 30, what="all five targets up")
    fired_before = prom.value('sum(schedules_fired_total{schedule="heartbeat-email"})')
    enqueued = enqueue(stack)

    def settled() -> bool:
        """Drained, and Prometheus has scraped the end state from every process."""
        view = default_queue(stack)
        if view["ready"] + view["scheduled"] + view["in_flight"] or view["dead"] != FLAKY_DEAD:
            return False
        totals = {"jobs_processed_total": view["counters"].get("processed", 0),
                  "jobs_dead_total": FLAKY_DEAD, "jobs_retried_total": FLAKY_DEAD,
                  "jobs_enqueued_total": enqueued}  # fmt: skip
        return all(prom.value(f"sum({name})") == n for name, n in totals.items()) and (
            prom.value('max(queue_depth{state="dead"})') == FLAKY_DEAD
        )

    wait_until(settled, 60, 0.1, what="the jobs to settle and Prometheus to scrape them")
    processed = default_queue(stack)["counters"]["processed"]
    fired = prom.value('sum(schedules_fired_total{schedule="heartbeat-email"})') - fired_before
    run = Run(enqueued=enqueued, processed=processed, fired=fired)
    expected = expectations(run, scraped.workers)
    targets = dashboard_targets()
    assert {(title, t["legendFormat"]) for title, t in targets} == set(expected)
    assert prom.label_values("queue", "queue_depth") == ["default"]  # the $queue variable

    read = {(title, t["legendFormat"]): read_target(prom, t) for title, t in targets}
    problems = []
    for key, values in read.items():
        problems += misreadings(key, values, expected[key])
    for panel in ("Job duration percentiles", "Wait percentiles (enqueue to start)"):
        p50, p95, p99 = (read[(panel, q)].get(q, math.nan) for q in ("p50", "p95", "p99"))
        if not p50 <= p95 <= p99:
            problems.append(f"{panel}: p50 {p50}, p95 {p95}, p99 {p99} out of order")
    assert not problems, "panels that read wrong:\n" + "\n".join(problems)


def test_the_liveness_panels_read_zero_not_no_data_once_workers_and_scheduler_are_gone(
    scraped: Stacked,
) -> None:
    """No worker up and no leader are the readings that matter most: they must not be blank."""
    stack, prom = scraped.stack, scraped.prometheus
    targets = {t["legendFormat"]: t for _, t in dashboard_targets()}
    workers_up, leaders = targets["workers up"], targets["leaders (should be 1)"]
    wait_until(lambda: prom.value("count(up == 1)") == 5, 30, what="all five targets up")
    assert read_target(prom, workers_up) == {"workers up": 2}
    assert read_target(prom, leaders) == {"leaders (should be 1)": 1}
    stack.stop()
    wait_until(lambda: prom.value("count(up == 0)") == 4, 30, what="Prometheus to see them gone")
    assert read_target(prom, workers_up) == {"workers up": 0}
    assert read_target(prom, leaders) == {"leaders (should be 1)": 0}


def test_the_compose_smoke_checks_pass_against_the_services_and_fail_with_a_reason(
    scraped: Stacked,
) -> None:
    """deploy/compose_smoke.py runs inside compose where an engine runs; here, on loopback."""
    stack, prom = scraped.stack, scraped.prometheus
    token = make_token(stack.redis_url, scopes=("enqueue", "read"), name="smoke")

    def smoke(token: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, str(ROOT / "deploy" / "compose_smoke.py"), str(stack.api_url),
                token, prom.url, "30"]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    passed = smoke(token)
    assert passed.returncode == 0, passed.stderr
    assert "a job ran through the API and Prometheus scrapes every service" in passed.stdout
    refused = smoke("jrt_not-a-token")
    assert refused.returncode == 1
    assert f"POST {stack.api_url}/jobs: 401" in refused.stderr
