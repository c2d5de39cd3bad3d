"""`jobrunner profile`: a py-spy flamegraph of a running worker, attached by pid."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from jobrunner.cli import main
from jobrunner.dev.profiling import record_command
from tests.workers import WorkerProcess


def test_profile_attaches_to_a_running_worker(redis_url: str, tmp_path: Path) -> None:
    worker = WorkerProcess(redis_url, tmp_path)
    out = tmp_path / "worker.svg"
    try:
        worker.wait_ready()
        result = subprocess.run(
            [sys.executable, "-m", "jobrunner.cli", "profile", "--pid", str(worker.pid),
             "--seconds", "1", "--out", str(out)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    assert result.returncode == 0, result.stderr
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert "jobrunner" in out.read_text()  # the worker's own frames were sampled


def test_profile_needs_a_pid_or_a_worker(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["profile", "--out", str(tmp_path / "x.svg")])
    assert result.exit_code == 2
    assert "give --pid PID or --worker" in result.output


def test_the_worker_mode_runs_the_worker_under_py_spy(tmp_path: Path) -> None:
    command = record_command(
        tmp_path / "w.json", fmt="speedscope", gil=True, command=["python", "-m", "x"]
    )
    assert command[1:3] == ["record", "--output"]
    assert command[command.index("--format") + 1] == "speedscope"
    assert "--gil" in command
    assert command[command.index("--") + 1 :] == ["python", "-m", "x"]
