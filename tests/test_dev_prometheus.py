"""jobrunner.dev.prometheus, the lab's Prometheus server, against Debian's real binary and a
real /metrics endpoint; and the lab's histogram reading checked against Prometheus's own."""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from jobrunner.dev.prometheus import PrometheusServer, find_prometheus, scrape_job
from jobrunner.dev.redis_server import free_port
from jobrunner.lab import histograms
from tests.conftest import wait_until

BUCKETS = (0.01, 0.05, 0.1, 0.5)


@pytest.fixture
def binary() -> str:
    found = find_prometheus()
    if found is None:
        pytest.skip(
            "no prometheus binary: `make test` installs Debian's (apt-get install prometheus)"
        )
    return found


@pytest.fixture
def exporter() -> Iterator[tuple[str, Histogram]]:
    """A /metrics endpoint of our own with one histogram, 100 observations spread over its
    buckets."""
    registry = CollectorRegistry()
    waits = Histogram("lab_wait_seconds", "a wait", buckets=BUCKETS, registry=registry)
    for i in range(100):
        waits.observe(i / 150)  # 0 .. 0.66 s
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", waits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_target_set_while_prometheus_runs_is_scraped_and_its_histogram_reads_as_scraped(
    binary: str, exporter: tuple[str, Histogram]
) -> None:
    """Targets are a file Prometheus watches: one added after the start is scraped, and the
    bucket counts and histogram_quantile Prometheus answers are the lab's own reading of the
    same /metrics text."""
    target, _ = exporter
    with PrometheusServer(binary, [], interval=0.2) as prom:
        assert math.isnan(prom.value("sum(lab_wait_seconds_count)"))  # no target yet
        prom.set_targets([target])
        wait_until(lambda: prom.value("sum(lab_wait_seconds_count)") == 100, 30, 0.1,
                   what="Prometheus to scrape the target added while it ran")  # fmt: skip
        with urllib.request.urlopen(f"http://{target}/metrics") as response:
            direct = histograms.cumulative([response.read().decode()], "lab_wait_seconds")
        stored = histograms.from_prometheus(prom, "lab_wait_seconds")
        assert stored == direct == {0.01: 2.0, 0.05: 8.0, 0.1: 16.0, 0.5: 76.0, math.inf: 100.0}
        for q in (0.5, 0.9, 0.99):
            theirs = prom.value(f"histogram_quantile({q}, sum by (le) (lab_wait_seconds_bucket))")
            assert theirs == pytest.approx(histograms.quantile(q, stored)), q
        assert prom.query("up") == [({"__name__": "up", "instance": target, "job": "worker"}, 1.0)]


def test_a_range_query_returns_the_points_of_each_series_and_a_bad_query_says_why(
    binary: str, exporter: tuple[str, Histogram]
) -> None:
    target, waits = exporter
    with PrometheusServer(binary, [scrape_job("fixed", [target])], interval=0.2) as prom:
        wait_until(lambda: prom.value('sum(lab_wait_seconds_count{job="fixed"})') == 100, 30, 0.1,
                   what="the fixed job's first scrape")  # fmt: skip
        started = time.time()
        for _ in range(50):
            waits.observe(0.02)
        wait_until(lambda: prom.value("sum(lab_wait_seconds_count)") == 150, 30, 0.1,
                   what="the later observations scraped")  # fmt: skip
        # ending a step past now: the last point at or before now may precede the scrape
        # that brought 150 (a scrape is stamped with its start), and would still read 100
        series = prom.range("sum(lab_wait_seconds_count)", started - 1, time.time() + 0.4, 0.2)
        assert len(series) == 1
        values = [v for _, v in series[0][1]]
        assert (values[0], values[-1]) == (100, 150)
        assert values == sorted(values)
        with pytest.raises(ValueError, match="parse error"):
            prom.query("sum(")
