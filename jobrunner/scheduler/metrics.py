"""Prometheus metrics of one scheduler process (``jobrunner scheduler --metrics-port``).

A schedule known at start has its series from the start, at zero (``expect``), so the
dashboard's fires panel reads 0 for it, not "no data", until it fires.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from jobrunner.scheduler.schedule import Schedule


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.fired = Counter(
            "schedules_fired", "Jobs this scheduler enqueued for schedule slots.",
            ("schedule", "queue"), registry=r,
        )  # fmt: skip
        self.late = Counter(
            "schedules_late", "Catch-up fires of missed slots (misfire=fire_once).", ("schedule",),
            registry=r,
        )  # fmt: skip
        self.skipped = Counter(
            "schedules_skipped", "Missed slots dropped by the misfire policy.", ("schedule",),
            registry=r,
        )  # fmt: skip
        self.leader_changes = Counter(
            "scheduler_leader_changes",
            "New leader terms (fencing tokens) this scheduler saw, its own or another's.",
            registry=r,
        )
        self.is_leader = Gauge(
            "scheduler_is_leader", "1 while this scheduler holds the leader lock.", registry=r
        )
        self.fenced = Counter(
            "scheduler_fenced_writes",
            "Fire attempts refused because this scheduler's token was no longer the lock's.",
            registry=r,
        )

    def expect(self, schedules: Iterable[Schedule]) -> None:
        """Each schedule's counters at zero."""
        for schedule in schedules:
            self.fired.labels(schedule.name, schedule.queue)
            self.late.labels(schedule.name)
            self.skipped.labels(schedule.name)
