"""Prometheus metrics of one process: the API's enqueues and queue depths, a worker's job
outcomes, latencies and liveness.

Each process exports only what it owns, in a registry of its own (``ApiMetrics().registry``,
``WorkerMetrics().registry``), so an API and a worker in one test process never collide, and the
API never exports a worker gauge it does not set (a heartbeat of 0 reads as 56 years old). A
process-model worker counts every outcome in its parent, where the outcomes arrive anyway, so its
numbers are the sum of its children without prometheus-client's multiprocess mode.

The series a dashboard reads exist from the start, at zero, for every (type, queue) the process
knows (``expect``): a panel then reads 0 rather than "no data", and ``rate()`` sees the first
jobs of a type, which it misses when a series is born already counting them.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jobrunner.queue import QueueStats

LABELS = ("type", "queue")
# Seconds: from a no-op's tens of microseconds to a slow job's minutes.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                    10, 30, 60, 300)  # fmt: skip
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
DEPTH_STATES = ("ready", "scheduled", "in_flight", "dead")


class _ProcessMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


def _expect(
    metrics: Iterable[Counter | Histogram], types: Iterable[str], queues: Iterable[str]
) -> None:
    """Make each (type, queue) child now, at zero."""
    pairs = [(t, q) for t in types for q in queues]
    for metric in metrics:
        for pair in pairs:
            metric.labels(*pair)


class ApiMetrics(_ProcessMetrics):
    """The API's own: jobs it accepted, and the depth of each declared queue when scraped."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.enqueued = Counter("jobs_enqueued", "Jobs accepted for enqueue.", LABELS, registry=r)
        self.queue_depth = Gauge(
            "queue_depth", "Jobs in a queue, by state.", ("queue", "state"), registry=r
        )

    def expect(self, types: Iterable[str], queues: Iterable[str]) -> None:
        """Enqueue counters at zero for the registered types on the declared queues."""
        _expect([self.enqueued], types, queues)

    def set_depths(self, stats: QueueStats) -> None:
        for state, value in zip(DEPTH_STATES, (stats.ready, stats.scheduled, stats.reserved,
                                               stats.dead), strict=True):  # fmt: skip
            self.queue_depth.labels(stats.name, state).set(value)


class WorkerMetrics(_ProcessMetrics):
    """A worker's own: outcomes, run and wait times, jobs held, liveness, execution limits."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.processed = Counter("jobs_processed", "Jobs that succeeded.", LABELS, registry=r)
        self.failed = Counter(
            "jobs_failed", "Failed attempts (retried or dead).", LABELS, registry=r
        )
        self.retried = Counter(
            "jobs_retried", "Failed attempts scheduled again.", LABELS, registry=r
        )
        self.dead = Counter("jobs_dead", "Jobs dead-lettered by this process.", LABELS, registry=r)
        self.cancelled = Counter(
            "jobs_cancelled", "Jobs this worker ended cancelled (stopped, or never started).",
            LABELS, registry=r,
        )  # fmt: skip
        self.stale = Counter(
            "jobs_stale_completions", "Completions rejected: the lease was taken over.", ("queue",),
            registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "job_duration_seconds", "Handler run time.", LABELS, buckets=DURATION_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.wait = Histogram(
            "job_wait_seconds", "From enqueue to start (Redis clock).", LABELS,
            buckets=WAIT_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("jobs_in_flight", "Jobs this worker holds right now.", registry=r)
        self.heartbeat = Gauge(
            "worker_last_heartbeat_timestamp_seconds", "When this worker last beat.", registry=r
        )
        self.deferred = Counter(
            "jobs_deferred", "Jobs put off, not run, because they were over an execution limit.",
            ("type", "queue", "limit"), registry=r,
        )  # fmt: skip
        self.limit_available = Gauge(
            "ratelimit_available", "Tokens, window room or free slots at a limit's last decision.",
            ("limit", "algorithm"), registry=r,
        )  # fmt: skip
        self._ok_children: dict[tuple[str, str], tuple[Counter, Histogram, Histogram]] = {}

    def expect(self, types: Iterable[str], queues: Iterable[str]) -> None:
        """Outcome counters and latency histograms at zero for the registered types on the
        served queues, and stale completions for each served queue."""
        queues = list(queues)
        outcomes = [self.processed, self.failed, self.retried, self.dead, self.cancelled]
        _expect([*outcomes, self.duration, self.wait], types, queues)
        for queue in queues:
            self.stale.labels(queue)

    def succeeded(self, job_type: str, queue: str, wait: float, run: float) -> None:
        """The hot path: label children are looked up once per (type, queue)."""
        key = (job_type, queue)
        children = self._ok_children.get(key)
        if children is None:
            children = self._ok_children[key] = (
                self.processed.labels(*key),
                self.duration.labels(*key),
                self.wait.labels(*key),
            )
        processed, duration, waited = children
        processed.inc()
        duration.observe(run)
        waited.observe(wait)

    def failed_attempt(self, job_type: str, queue: str, result: str, run: float) -> None:
        self.failed.labels(job_type, queue).inc()
        self.duration.labels(job_type, queue).observe(run)
        if result == "scheduled":
            self.retried.labels(job_type, queue).inc()
        elif result == "dead":
            self.dead.labels(job_type, queue).inc()
