"""Every lab notebook runs top to bottom, headless, with small parameters, and leaves no process.

Papermill injects the small parameters after each notebook's ``parameters`` cell; figures go to
a temporary directory (the committed ``results/`` keep the full run's). Every process the
kernel starts inherits a marker in its environment, so a survivor is found even if the
notebook's own check never ran.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest

from jobrunner.lab.build import NOTEBOOKS, execute, notebook_for, sources
from tests.conftest import wait_until

pytestmark = pytest.mark.slow

MARKER = "JOBRUNNER_LAB_TEST_RUN"

SMALL: dict[str, dict[str, object]] = {
    "01-start-the-stack": {"burst": 100, "email_latency": 0.05},
    "02-concurrency-models": {
        "levels": [1, 4],
        "window": 0.3,
        "repeats": 1,
        "max_processes": 4,
        "workloads": ["email", "cpu_burn"],
        "quiet": False,
    },
    "03-where-the-time-goes": {
        "seconds": 1.0,
        "clients": 4,
        "worker_jobs": 20_000,
        "drain_jobs": 3_000,
        "repeats": 1,
        "quiet": False,
    },
    "04-latency-under-load": {
        "duration": 1.0,
        "clients": [1, 16],
        "shares": [0.3, 1.2],
        "repeats": 1,
        "stall_seconds": 0.3,
        "open_clients": 32,
        "quiet": False,
    },
    "05-backoff-shoot-out": {
        "clients": 300,
        "capacity": 60.0,
        "seeds": [0, 1],
        "spreads": [0.1, 2.0],
        "live_jobs": 40,
        "live_capacity": 200.0,
        "live_outage": 1.0,
        "live_workers": 2,
        "live_repeats": 1,
    },
    "06-rate-limiting-and-backpressure": {
        "limit_seconds": 1.0,
        "worker_counts": [1, 2],
        "limit_repeats": 1,
        "seconds": 2.0,
        "bp_repeats": 1,
    },
    "07-failure-injection": {
        "duration": 3.0,
        "kill_every": 1.0,
        "restart_redis_every": 2.0,
        "redis_down_for": 0.3,
        "repeats": 1,
    },
    "08-live-queue-draining": {"jobs": 1500, "refresh": 1.0, "quiet": False},
    "09-outgrowing-one-redis": {"jobs": 4000, "rounds": 1, "reshard_jobs": 3000},
    "10-job-history": {"jobs": 5000},
}
FIGURES = {
    "01-start-the-stack": ["01-job-lives.png"],
    "02-concurrency-models": ["02-throughput.png", "02-cores-busy.png", "02-run-time.png"],
    "03-where-the-time-goes": [
        "03-before-after.png",
        "03-flamegraph-pair.png",
        "03-flamegraph-crop.png",
    ],
    "04-latency-under-load": ["04-knee.png", "04-coordinated-omission.png"],
    "05-backoff-shoot-out": [
        "05-simulation.png",
        "05-live-vs-simulation.png",
        "05-arrival-spread.png",
    ],
    "06-rate-limiting-and-backpressure": [
        "06-limiter-rates.png",
        "06-limiter-bounds.png",
        "06-backpressure.png",
    ],
    "07-failure-injection": ["07-ledger.png"],
    "08-live-queue-draining": [
        "08-live-drain.png",
        "08-live-drain.gif",
        "08-prometheus-histograms.png",
    ],
    "09-outgrowing-one-redis": ["09-redis-cpu-per-master.png", "09-slot-move.png"],
    "10-job-history": ["10-history-latency.png"],
}


def marked(value: str) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARKER) == value:
                out.append(proc)
        except (psutil.Error, OSError):
            continue
    return out


def test_every_notebook_source_has_small_parameters() -> None:
    assert sorted(s.stem for s in sources()) == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs_headless_with_small_parameters(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = uuid.uuid4().hex
    monkeypatch.setenv(MARKER, run_id)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = NOTEBOOKS / "src" / f"{name}.py"
    results, profiles = tmp_path / "results", tmp_path / "profiles"
    parameters = {**SMALL[name], "results_dir": str(results)}
    if name.startswith("03"):
        parameters["profiles_dir"] = str(profiles)
    output = tmp_path / f"{name}.ipynb"
    try:
        execute(notebook_for(source), output, parameters, cwd=NOTEBOOKS)
    finally:
        wait_until(lambda: not marked(run_id), timeout=30, what="the notebook's processes to exit")
    ran = nbformat.read(output, as_version=4)
    errors = [o for c in ran.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]  # fmt: skip
    assert errors == []
    for figure in FIGURES[name]:
        assert (results / figure).stat().st_size > 10_000, figure
    if name.startswith("03"):
        for flamegraph in ["03-api-py-spy.svg", "03-worker-py-spy.svg"]:
            assert (profiles / flamegraph).stat().st_size > 1_000, flamegraph
        # pyinstrument's window is a second at these sizes: a few frames, but a real profile
        scope = json.loads((profiles / "03-api-pyinstrument.speedscope.json").read_text())
        assert scope["shared"]["frames"]
        assert any(p.get("events") or p.get("samples") for p in scope["profiles"])
