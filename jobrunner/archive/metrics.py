"""The archiver's Prometheus metrics (``jobrunner archiver --metrics-port``): what it moved,
what failed, when it last wrote, and how much history still waits in Redis.

Every event series exists at zero from the start, so a rate or an alert on errors reads 0, not
"no data", before the first failure.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

# the Archiver.counts names, each a value of the event label
EVENTS = ("entries", "written", "batches", "claimed", "gone", "expired", "redis_errors",
          "pg_errors")  # fmt: skip


class ArchiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.events = Counter(
            "archiver_events_total",
            "What the archiver did: entries archived (acked and deleted), rows written, batches, "
            "entries claimed from a dead archiver, entries trimmed before they were archived, "
            "expired rows deleted, Redis and PostgreSQL failures.",
            ["event"], registry=r,
        )  # fmt: skip
        for event in EVENTS:
            self.events.labels(event)
        self.last_write = Gauge(
            "archiver_last_write_timestamp_seconds",
            "When a batch was last committed to PostgreSQL (0: never).", registry=r,
        )  # fmt: skip
        self.backlog = Gauge(
            "history_backlog_entries",
            "Entries in a queue's history stream, not yet archived (XLEN).", ["queue"],
            registry=r,
        )  # fmt: skip
