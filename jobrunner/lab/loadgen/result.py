"""What a load run measured: per-request and per-job samples, HDR percentiles, files for pandas."""

from __future__ import annotations

import csv
import json
import math
import platform
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from jobrunner.lab.loadgen.drivers import Samples
from jobrunner.lab.loadgen.spec import LoadSpec

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MAX_US = 3_600_000_000  # one hour: anything slower is clipped, not dropped


def histogram(values_us: list[float]) -> HdrHistogram:
    hist = HdrHistogram(1, MAX_US, 3)
    for value in values_us:
        hist.record_value(min(MAX_US, max(1, round(value))))
    return hist


def percentiles_ms(hist: HdrHistogram) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max in milliseconds (HDR: within 0.1 % of the true value)."""
    if hist.get_total_count() == 0:
        return {}
    out = {f"p{p:g}": hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    out["max"] = hist.get_max_value() / 1000
    out["mean"] = round(hist.get_mean_value() / 1000, 3)
    out["count"] = hist.get_total_count()
    return out


@dataclass
class LoadResult:
    spec: LoadSpec
    samples: Samples
    finished: dict[str, tuple[str, float | None]]  # job id -> (state, finish time)
    t0: float
    sent_done: float
    redis_url: str | None = None
    histograms: dict[str, HdrHistogram] = field(init=False)

    def __post_init__(self) -> None:
        open_loop = self.spec.loop == "open"
        ok = [r for r in self.samples.requests if r[4] == 202]
        self.histograms = {
            # Open loop: from the intended start, so a late request's wait counts.
            "enqueue": histogram(
                [((r[3] - r[1]) if open_loop else (r[3] - r[2])) * 1e6 for r in ok]
            ),
            "service": histogram([(r[3] - r[2]) * 1e6 for r in ok]),
            "end_to_end": histogram(self.end_to_end_us()),
        }

    def end_to_end_us(self) -> list[float]:
        out = []
        for job_id, origin in self.samples.jobs:
            state, finished = self.finished.get(job_id, ("unknown", None))
            if state == "done" and finished is not None:
                out.append(max(0.0, finished - origin) * 1e6)
        return out

    def summary(self) -> dict[str, Any]:
        requests = self.samples.requests
        statuses = Counter(str(r[4]) for r in requests)
        ok = [r for r in requests if r[4] == 202]
        states = Counter(state for state, _ in self.finished.values())
        starts = sorted(r[2] for r in requests)
        send_window = starts[-1] - starts[0] if len(starts) > 1 else math.nan
        last_end = max((r[3] for r in requests), default=self.t0)
        finish_times = [f for _, f in self.finished.values() if f is not None]
        drained_at = max(finish_times, default=math.nan)
        jobs_ok = sum(r[5] for r in ok)
        return {
            "spec": self.spec.as_dict(),
            "machine": machine(),
            "started_at": self.t0,
            "requests": len(requests),
            "requests_ok": len(ok),
            "statuses": dict(statuses),
            "jobs_acknowledged": jobs_ok,
            "jobs_done": states.get("done", 0),
            "jobs_dead": states.get("dead", 0),
            "jobs_unfinished": jobs_ok - states.get("done", 0) - states.get("dead", 0)
            if self.finished else None,
            "send_seconds": round(last_end - self.t0, 4),
            # Requests started per second between the first and the last start.
            "send_rate_rps": round((len(starts) - 1) / send_window, 2) if len(starts) > 1 else None,
            "enqueue_rate_jobs_per_s": round(jobs_ok / (last_end - self.t0), 1)
            if last_end > self.t0 else None,
            "drain_rate_jobs_per_s": round(states.get("done", 0) / (drained_at - self.t0), 1)
            if finish_times else None,
            "latency_ms": {name: percentiles_ms(h) for name, h in self.histograms.items()},
        }  # fmt: skip

    def requests_rows(self) -> list[dict[str, Any]]:
        return [
            {"seq": seq, "intended": intended, "start": start, "end": end, "status": status,
             "jobs": jobs, "latency_ms": ((end - (start if intended != intended else intended))
                                          * 1000)}
            for seq, intended, start, end, status, jobs in self.samples.requests
        ]  # fmt: skip

    def jobs_rows(self) -> list[dict[str, Any]]:
        rows = []
        for job_id, origin in self.samples.jobs:
            state, finished = self.finished.get(job_id, ("unknown", None))
            e2e = (finished - origin) * 1000 if finished is not None else None
            rows.append({"id": job_id, "sent": origin, "state": state, "finished": finished,
                         "e2e_ms": e2e})  # fmt: skip
        return rows

    def frames(self) -> tuple[Any, Any]:
        """(requests, jobs) as pandas DataFrames (needs the ``lab`` extra)."""
        import pandas as pd

        return pd.DataFrame(self.requests_rows()), pd.DataFrame(self.jobs_rows())

    def write(self, out_dir: Path, name: str) -> dict[str, Path]:
        """``<name>-requests.csv``, ``<name>-jobs.csv`` (and .parquet when pyarrow is there),
        ``<name>.json`` (the summary) and ``<name>-<latency>.hgrm`` percentile distributions."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for kind, rows in (("requests", self.requests_rows()), ("jobs", self.jobs_rows())):
            path = out_dir / f"{name}-{kind}.csv"
            _write_csv(path, rows)
            paths[kind] = path
            try:
                import pandas as pd

                parquet = path.with_suffix(".parquet")
                pd.DataFrame(rows).to_parquet(parquet, index=False)
                paths[f"{kind}_parquet"] = parquet
            except ImportError:
                pass
        for kind, hist in self.histograms.items():
            if hist.get_total_count():
                path = out_dir / f"{name}-{kind}.hgrm"
                with path.open("wb") as handle:
                    hist.output_percentile_distribution(handle, 1000.0)  # in milliseconds
                paths[f"{kind}_hgrm"] = path
        summary = out_dir / f"{name}.json"
        summary.write_text(json.dumps(self.summary(), indent=2, default=_json_default) + "\n")
        paths["summary"] = summary
        return paths


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _json_default(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": time.strftime("%Y-%m-%d"),
        "commit": source_commit(),
    }


def git_output(*args: str, cwd: Path | None = None) -> str | None:
    """``git ARGS`` run in ``cwd``, its stripped output; None without git or outside a checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def source_commit(where: Path | None = None) -> str | None:
    """The checkout's commit, so a figure names the code that made it: ``+dirty`` when the code
    (not results/ or notebooks, which runs rewrite) has uncommitted changes; None outside git."""
    here = where or Path(__file__).resolve().parent
    head = git_output("rev-parse", "--short=12", "HEAD", cwd=here)
    if not head:
        return None
    dirty = git_output("status", "--porcelain", "--untracked-files=no", "--",
                       ":/jobrunner", ":/bench", ":/pyproject.toml", cwd=here)  # fmt: skip
    return f"{head}+dirty" if dirty else head
