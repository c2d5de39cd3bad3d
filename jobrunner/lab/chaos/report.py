"""Compare the ledger with itself and with Redis once the system is quiet.

* nothing lost: every acknowledged probe completed (a handler run ended ``ok``) or is dead;
* no phantoms: every probe that completed or died was acknowledged, or its enqueue's answer was
  unknown (a 5xx, a dropped connection);
* duplicates (extra ``ok`` runs of a probe) stay within the jobs in flight at the faults;
* recovery: seconds from the end of each fault to the first completion of a run that started
  after it (the worst fault counts).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import redis

from jobrunner.errors import PayloadDecodeError
from jobrunner.job import decode_job
from jobrunner.keys import QueueKeys, naive_key
from jobrunner.lab.chaos.ledger import read_records
from jobrunner.lab.naive import FailedJob

RESULTS_ENV = "JOBRUNNER_CHAOS_RESULTS"  # a JSON file the counts lines are added to, when set


@dataclass
class FaultRecord:
    """One injected fault: what, when, and how many jobs were in flight at that moment."""

    kind: str
    started: float
    ended: float
    in_flight: int = 0
    target: str = ""


@dataclass
class ChaosReport:
    name: str
    sent: int
    acknowledged: int
    rejected: int
    unknown: int
    completed: int
    dead: int
    duplicates: int
    lost: int
    phantoms: int
    in_flight_at_faults: int
    recovery_seconds: float | None
    faults: int
    runs: int  # handler runs started (ledger ``start`` lines)
    unknown_completed: int  # probes whose enqueue answer was unknown, yet that ran
    lost_ids: list[str] = field(default_factory=list)
    phantom_ids: list[str] = field(default_factory=list)
    invariant_violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        recovery = "n/a" if self.recovery_seconds is None else f"{self.recovery_seconds:.2f}"
        return (
            f"chaos[{self.name}]: sent={self.sent} acknowledged={self.acknowledged} "
            f"completed={self.completed} dead={self.dead} duplicates={self.duplicates} "
            f"lost={self.lost} recovery_s={recovery} (rejected={self.rejected} "
            f"unknown={self.unknown} phantoms={self.phantoms} faults={self.faults} "
            f"in_flight_at_faults={self.in_flight_at_faults})"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lost_ids"] = self.lost_ids[:20]
        out["phantom_ids"] = self.phantom_ids[:20]
        return out


def dead_probes(client: redis.Redis, queue: str = "default", naive: bool = False) -> set[str]:
    """Probe ids Redis holds as dead (the naive queue: its ``:failed`` list)."""
    raws: list[bytes] = []
    if naive:
        for row in client.lrange(naive_key(queue) + ":failed", 0, -1):
            raws.append(msgspec.json.decode(row, type=FailedJob).job.encode())
    else:
        keys = QueueKeys(queue)
        with client.pipeline(transaction=False) as pipe:
            for job_id in client.zrange(keys.dead, 0, -1):
                pipe.hget(keys.job(_text(job_id)), "d")
            raws = [r for r in pipe.execute() if r]
    out = set()
    for raw in raws:
        try:
            payload = decode_job(raw if isinstance(raw, bytes) else raw.encode()).payload
        except PayloadDecodeError:
            continue
        if isinstance(payload, dict) and "probe" in payload:
            out.add(str(payload["probe"]))
    return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def compare(
    name: str,
    ledger_dir: Path | str,
    dead: set[str],
    faults: list[FaultRecord] | None = None,
) -> ChaosReport:
    """The report, from the ledger files and the dead probes Redis holds."""
    faults = faults or []
    status: dict[str, str] = {}
    for record in read_records(ledger_dir, "producer"):
        status[record["probe"]] = record["s"]
    acked = {p for p, s in status.items() if s == "ack"}
    unknown = {p for p, s in status.items() if s == "unknown"}
    ok_runs: Counter[str] = Counter()
    ok_ends: list[tuple[float, float]] = []  # (start, end) of successful runs
    starts = 0
    for record in read_records(ledger_dir, "runs"):
        if record.get("e") == "start":
            starts += 1
        elif record.get("outcome") == "ok":
            ok_runs[record["probe"]] += 1
            ok_ends.append((record["start"], record["end"]))
    completed = set(ok_runs)
    finished = completed | dead
    lost = sorted(acked - finished)
    phantoms = sorted(finished - acked - unknown)
    return ChaosReport(
        name=name,
        sent=len(status),
        acknowledged=len(acked),
        rejected=sum(1 for s in status.values() if s == "rejected"),
        unknown=len(unknown),
        completed=len(completed),
        dead=len(dead - completed),
        duplicates=sum(n - 1 for n in ok_runs.values()),
        lost=len(lost),
        phantoms=len(phantoms),
        in_flight_at_faults=sum(f.in_flight for f in faults),
        recovery_seconds=_recovery(faults, ok_ends),
        faults=len(faults),
        runs=starts,
        unknown_completed=len(unknown & finished),
        lost_ids=lost,
        phantom_ids=phantoms,
    )


def _recovery(faults: list[FaultRecord], ok_ends: list[tuple[float, float]]) -> float | None:
    worst: float | None = None
    for fault in faults:
        after = [end for start, end in ok_ends if start >= fault.ended]
        if not after:
            continue
        seconds = min(after) - fault.ended
        worst = seconds if worst is None else max(worst, seconds)
    return worst


def publish(report: ChaosReport) -> None:
    """Print the counts line; add the report to ``$JOBRUNNER_CHAOS_RESULTS`` when it is set."""
    print(report.line())
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    path = Path(target)
    existing: dict[str, Any] = {}
    if path.exists():
        existing = json.loads(path.read_text() or "{}")
    existing[report.name] = report.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
