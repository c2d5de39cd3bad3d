"""The scenario loop behind ``jobrunner chaos``: steady load, faults on a schedule, the report.

Kill a random worker every N seconds (a supervisor starts a new one), restart Redis, pause a
worker; then stop the load, let the system go quiet and compare the ledger. Run it on the
reliable queue and on the naive one to see the difference the leases make.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jobrunner.lab.chaos import faults
from jobrunner.lab.chaos.producer import Probe, QueueKind
from jobrunner.lab.chaos.report import ChaosReport, FaultRecord
from jobrunner.lab.chaos.session import ChaosSession


@dataclass
class ChaosConfig:
    name: str = "chaos"
    kind: QueueKind = "reliable"
    workers: int = 2
    model: str = "asyncio"
    concurrency: int | None = 4
    via: Literal["library", "api"] = "library"
    duration: float = 10.0
    rate: float = 100.0
    job_ms: float = 50.0
    kill_every: float | None = 2.0
    restart_redis_every: float | None = None
    redis_down_for: float = 1.0
    pause_every: float | None = None
    pause_for: float = 3.0
    lease: float = 2.0
    appendonly: bool = True
    redis_url: str | None = None
    settle_timeout: float = 60.0
    log_dir: Path | None = None


def _schedule(config: ChaosConfig) -> list[tuple[float, str]]:
    """(seconds from the start, fault) for the whole run, in time order."""
    plan = []
    for every, kind in ((config.kill_every, "kill"), (config.restart_redis_every, "redis"),
                        (config.pause_every, "pause")):  # fmt: skip
        if every:
            plan += [(at, kind) for at in _times(every, config.duration)]
    return sorted(plan)


def _times(every: float, duration: float) -> list[float]:
    out, at = [], every
    while at < duration:
        out.append(at)
        at += every
    return out


def _inject(session: ChaosSession, kind: str, config: ChaosConfig) -> FaultRecord:
    stack = session.stack
    if kind == "kill":
        record = faults.kill_worker(stack)
        faults.replace_dead_workers(stack, config.workers)
        return record
    if kind == "redis":
        return faults.restart_redis(stack, down_for=config.redis_down_for)
    return faults.pause_worker(stack, config.pause_for)


def run_chaos(config: ChaosConfig, echo: Callable[[str], None] = print) -> ChaosReport:
    """Run the scenario on a stack of its own; returns (and prints) the ledger report."""
    with ChaosSession(
        config.name, workers=config.workers, model=config.model,
        concurrency=config.concurrency, kind=config.kind, via=config.via, lease=config.lease,
        redis_appendonly=config.appendonly, redis_url=config.redis_url, log_dir=config.log_dir,
    ) as session:  # fmt: skip
        echo(
            f"{config.kind} queue, {config.workers} {config.model} workers, "
            f"{config.rate:g} jobs/s of {config.job_ms:g} ms for {config.duration:g} s"
        )
        session.producer.start_load(config.rate, batch=max(1, round(config.rate / 20)),
                                    probe=Probe(ms=config.job_ms))  # fmt: skip
        started = time.monotonic()
        for at, kind in _schedule(config):
            wait = started + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the schedule: faults land at fixed times under the load
            record = session.record(_inject(session, kind, config))
            echo(f"  t={at:5.1f}s {record.kind} {record.target} (in flight: {record.in_flight})")
        remaining = started + config.duration - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        session.producer.stop_load()
        faults.replace_dead_workers(session.stack, config.workers)
        session.settle(config.settle_timeout)
        report = session.report()
    session.cleanup()
    echo(report.line())
    for violation in report.invariant_violations[:10]:
        echo(f"  invariant violated: {violation}")
    return report


def write_report(report: ChaosReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
