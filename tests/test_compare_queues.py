"""bench/compare_queues.py end to end, small: jobrunner, RQ and Huey each drain 200 no-op jobs
against a private redis-server, and the report holds what the full run would show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobrunner.lab.loadgen.result import source_commit

ROOT = Path(__file__).resolve().parent.parent
JOBS = 200
LIBRARIES = ("jobrunner", "rq", "huey")

pytestmark = pytest.mark.slow
Report = tuple[dict[str, Any], Path]


def workers_left(url: str) -> list[str]:
    """Processes still holding the harness's private server in their environment."""
    left = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("BENCH_REDIS_URL") == url:
                left.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return left


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    out = tmp_path_factory.mktemp("compare")
    command = [
        sys.executable, "-m", "bench.compare_queues", "--quick", "--jobs", str(JOBS),
        "--repeats", "1", "--only", "rq,huey", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "compare-queues.json").read_text()), out


def test_every_library_drained_exactly_n_jobs(report: Report) -> None:
    data, _ = report
    runs = {run["key"]: run for run in data["runs"]}
    assert set(runs) == set(LIBRARIES), data["skipped"]
    for key, run in runs.items():
        assert run["jobs"] == JOBS, key
        assert run["queued"] == JOBS, key  # what the enqueue left waiting, counted in Redis
        assert run["completed"] == JOBS, (key, run["notes"])  # when the drain ended
        assert run["counted"] == JOBS, (key, run["notes"])  # again, after the worker stopped
        assert run["exit_code"] == 0, (key, run["notes"])
        assert run["held_back"], key
        assert run["ok"], (key, run["notes"])
        assert run["drain_rate"] > 0, key
        assert run["enqueue_rate"] > 0, key
        assert 0 < run["drain_jobs_timed"] <= JOBS, key


def test_ratios_come_from_the_same_repeat(report: Report) -> None:
    data, _ = report
    runs = {run["key"]: run for run in data["runs"]}
    base = runs["jobrunner"]
    for key in LIBRARIES:
        run, summary = runs[key], data["summary"][key]
        assert run["repeat"] == base["repeat"] == 0
        drain_ratio = summary["drain_ratio_per_repeat"]["0"]
        enqueue_ratio = summary["enqueue_ratio_per_repeat"]["0"]
        assert drain_ratio == pytest.approx(run["drain_rate"] / base["drain_rate"])
        assert enqueue_ratio == pytest.approx(run["enqueue_rate"] / base["enqueue_rate"])
        assert summary["drain_ratio"]["median"] == pytest.approx(drain_ratio)
        assert summary["drain_rate"]["median"] == pytest.approx(run["drain_rate"])
    assert data["summary"]["jobrunner"]["drain_ratio"]["median"] == pytest.approx(1.0)


def test_the_report_records_the_machine_and_the_command(report: Report) -> None:
    data, out = report
    machine = data["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["python"]
    assert machine["redis_server"][0].isdigit()
    assert machine["commit"] == source_commit()  # the code the figures came from
    for package in ("jobrunner", "redis", "rq", "huey"):
        assert machine["packages"][package], package
    assert data["command"].startswith("python -m bench.compare_queues --quick --jobs 200")
    assert data["config"]["redis_url"].split(":")[-1] != "6379/0"  # never the shared server
    for key in LIBRARIES:
        lib = data["libraries"][key]
        for field in ("enqueue_path", "completion", "worker_command"):
            assert lib[field], (key, field)
    md = (out / "compare-queues.md").read_text()
    for row in ("| jobrunner (asyncio) |", "| RQ |", "| Huey |"):
        assert row in md
    png = (out / "compare-queues.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) < 300_000
    assert workers_left(data["config"]["redis_url"]) == []


def test_the_io_mode_gives_every_task_one_redis_round_trip(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "bench.compare_queues", "--quick", "--jobs", str(JOBS),
        "--repeats", "1", "--only", "rq", "--handler", "io", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((tmp_path / "compare-queues-io.json").read_text())
    assert data["config"]["handler"] == "io"
    for run in data["runs"]:  # jobrunner's redis_incr_async and RQ's task each INCR once
        assert run["ok"], (run["key"], run["notes"])
        assert run["io_calls"] == JOBS, run["key"]
