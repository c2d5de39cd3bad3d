"""``make demo`` end to end, small: every job ends done or dead and the worker exits 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobrunner.dev import demo


@pytest.mark.slow
def test_demo_drains_every_job_and_stops_the_workers_cleanly(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)  # the session's private server, not an embedded one
    monkeypatch.chdir(tmp_path)  # the default output folder is relative, as `make demo` runs it
    argv = ["--jobs", "400", "--profile-seconds", "1", "--add-worker-at", "0.3"]
    assert demo.main(argv) == 0
    out = tmp_path / "demo-output"
    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["processed"] + summary["dead"] == 400
    assert summary["dead"] > 0  # the flaky type fails half the time with two retries
    assert summary["retried"] > 0
    assert summary["workers_at_end"] == 3  # two, and one added part-way
    assert summary["worker_exit_codes"] == [0, 0, 0]
    completed = sum(s["completed"] for s in summary["worker_summaries"])
    assert completed == summary["processed"]
    assert all(example["type"] == "flaky" for example in summary["dead_examples"])
    assert (out / "demo-drain.png").stat().st_size > 10_000
    assert (out / "demo-worker.svg").read_text().lstrip().startswith("<?xml")
    assert (out / "demo-logs").is_dir()


def test_the_demo_output_folder_is_ignored_by_git() -> None:
    """`make demo` in a clone leaves `git status` clean: everything it writes is ignored."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    for name in ("demo-summary.json", "demo-drain.png", "demo-worker.svg", "demo-logs/x.log"):
        done = subprocess.run(["git", "check-ignore", "-q", f"demo-output/{name}"], cwd=root)
        assert done.returncode == 0, name


def test_the_job_mix_follows_the_configured_shares() -> None:
    import random

    jobs = demo.make_jobs(10_000, random.Random(1))
    share = {t: sum(j["type"] == t for j in jobs) / len(jobs) for t in demo.MIX}
    for job_type, (expected, _, _) in demo.MIX.items():
        assert abs(share[job_type] - expected) < 0.02, job_type
