"""The operator's commands (job, result, cancel, pause, resume), the checks ``enqueue`` makes,
and the promise that a mistake a user can fix ends as one line, never a traceback.

The error tests run the real ``jobrunner`` executable from a scratch folder, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from jobrunner.cli import main
from jobrunner.dev.redis_server import free_port
from jobrunner.sync_client import SyncClient

# The console script, as a user runs it: unlike ``python -m``, it does not put the current
# directory on sys.path, so finding ``myapp`` there is jobrunner's doing.
JOBRUNNER = [str(Path(sys.executable).with_name("jobrunner"))]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("JOBRUNNER_") or name.upper() == "REDIS_URL":
            monkeypatch.delenv(name)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def shell(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``jobrunner ARGS`` in a child process, from ``cwd``, with only the environment given."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("JOBRUNNER_")}
    base.pop("REDIS_URL", None)
    base.pop("PYTHONPATH", None)  # what --import finds must come from cwd, not from the tests
    return subprocess.run([*JOBRUNNER, *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A user's project: ``myapp/jobs.py`` with one handler, nothing installed."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "jobs.py").write_text(
        textwrap.dedent("""
        from jobrunner import handler

        @handler("add")
        def add(payload):
            return payload["a"] + payload["b"]
    """)
    )
    return tmp_path


def assert_one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]


def test_an_import_that_is_missing_is_one_line(app_dir: Path, redis_url: str) -> None:
    done = shell("worker", "--import", "myapp.nosuch", cwd=app_dir, env={"REDIS_URL": redis_url})
    assert_one_line_error(done, "cannot import 'myapp.nosuch'", str(app_dir))


def test_an_import_that_raises_names_the_file_and_line(app_dir: Path, redis_url: str) -> None:
    (app_dir / "myapp" / "broken.py").write_text("x = 1\nraise RuntimeError('no config')\n")
    done = shell("worker", "--import", "myapp.broken", cwd=app_dir, env={"REDIS_URL": redis_url})
    assert_one_line_error(done, "broken.py:2", "RuntimeError: no config")


def test_a_redis_url_that_is_not_one_is_one_line_without_its_password(app_dir: Path) -> None:
    done = shell("worker", cwd=app_dir, env={"REDIS_URL": "http://user:secret@example:6379"})
    assert_one_line_error(done, "invalid setting redis_url", "not a Redis URL")
    assert "secret" not in done.stderr


def test_an_invalid_setting_is_one_line(app_dir: Path, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "JOBRUNNER_CONCURRENCY": "lots"}
    assert_one_line_error(shell("worker", cwd=app_dir, env=env), "JOBRUNNER_CONCURRENCY='lots'")


def test_an_unreachable_redis_is_one_line(app_dir: Path) -> None:
    unused_port = free_port()
    url = f"redis://127.0.0.1:{unused_port}/0"
    done = shell("enqueue", "add", "{}", cwd=app_dir, env={"REDIS_URL": url})
    assert_one_line_error(done, f"127.0.0.1:{unused_port}")


def test_enqueue_with_import_refuses_an_unknown_type_as_the_api_does(
    app_dir: Path, redis_url: str, sync_redis: redis.Redis
) -> None:
    done = shell("enqueue", "--import", "myapp.jobs", "typo", "{}", cwd=app_dir,
                 env={"REDIS_URL": redis_url})  # fmt: skip
    assert_one_line_error(done, "no handler for 'typo'", "known: add")
    assert sync_redis.dbsize() == 0  # nothing was written


def test_enqueue_without_import_warns_that_it_cannot_check_the_type(
    app_dir: Path, redis_url: str
) -> None:
    done = shell("enqueue", "typo", "{}", cwd=app_dir, env={"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert "without --import, 'typo' is not checked" in done.stderr
    assert len(done.stdout.split()) == 1


def test_a_worker_imports_a_module_of_the_current_directory_and_its_result_is_printed(
    app_dir: Path, redis_url: str
) -> None:
    env = {"REDIS_URL": redis_url}
    job_id = shell("enqueue", "--import", "myapp.jobs", "add", '{"a": 2, "b": 40}', cwd=app_dir,
                   env=env).stdout.strip()  # fmt: skip
    command = [*JOBRUNNER, "worker", "--import", "myapp.jobs", "--prefetch", "0"]
    environment = {**os.environ, **env, "PYTHONPATH": ""}
    worker = subprocess.Popen(command, cwd=app_dir, env=environment, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        done = shell("result", job_id, "--wait", "30", cwd=app_dir, env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == 42
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err


def test_job_prints_the_record_and_result_refuses_a_job_that_has_not_ended(
    redis_url: str,
) -> None:
    with SyncClient.from_url(redis_url) as client:
        job_id = client.enqueue("noop", {"n": 1})
    shown = run("job", job_id, "--redis-url", redis_url)
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert (record["state"], record["job"]["payload"]) == ("ready", {"n": 1})
    pending = run("result", job_id, "--redis-url", redis_url)
    assert pending.exit_code == 1
    assert f"job {job_id} is ready: no result yet" in pending.output
    missing = run("job", "nope", "--redis-url", redis_url)
    assert missing.exit_code == 1
    assert "no job 'nope'" in missing.output


def test_cancel_ends_a_waiting_job_and_names_an_unknown_one(redis_url: str) -> None:
    with SyncClient.from_url(redis_url) as client:
        job_id = client.enqueue("noop", {})
        done = run("cancel", job_id, "nope", "--redis-url", redis_url)
        assert done.exit_code == 1
        assert f"{job_id}\tcancelled" in done.stdout
        assert "nope\tunknown" in done.stdout
        record = client.get(job_id)
        assert record is not None
        assert record.state == "cancelled"
    again = run("result", job_id, "--redis-url", redis_url)
    assert again.exit_code == 1
    assert "was cancelled" in again.output


def test_pause_and_resume_change_the_queue_and_say_when_nothing_changed(redis_url: str) -> None:
    assert run("pause", "default", "--redis-url", redis_url).stdout == "default: paused\n"
    assert run("pause", "default", "--redis-url", redis_url).stdout == "default: already paused\n"
    with SyncClient.from_url(redis_url) as client:
        assert client.stats("default").paused
        assert run("resume", "default", "--redis-url", redis_url).stdout == "default: resumed\n"
        assert not client.stats("default").paused
    bad = run("pause", "no way", "--redis-url", redis_url)
    assert bad.exit_code == 2
