"""`pip install jobrunner` with no extra: a worker and the library client, and nothing else.

Builds the wheel, installs it into a fresh virtual environment (its dependencies from the
package index), then runs a worker and a library enqueue with that environment alone.
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

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
NOT_IN_THE_CORE = {"pydantic", "pydantic-settings", "fastapi", "uvicorn", "rich", "psutil",
                   "pandas", "matplotlib", "pillow", "aiohttp", "urllib3", "hdrhistogram",
                   "pyinstrument", "py-spy", "psycopg", "psycopg-binary"}  # fmt: skip

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    """No PYTHONPATH or virtual environment of the test run may leak into the bare one."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "REDIS_URL"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("JOBRUNNER")}


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel of this checkout installed; yields its bin directory."""
    where = tmp_path_factory.mktemp("bare")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(where / "dist"), str(ROOT)],
        check=True, env=clean_env(), timeout=300,
    )  # fmt: skip
    (wheel,) = (where / "dist").glob("jobrunner-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True, timeout=120)
    bin_dir = where / "venv" / "bin"
    subprocess.run([str(bin_dir / "pip"), "install", "--quiet", str(wheel)],
                   check=True, env=clean_env(), timeout=600)  # fmt: skip
    return bin_dir


def installed(bin_dir: Path) -> set[str]:
    done = subprocess.run([str(bin_dir / "pip"), "list", "--format", "json"], env=clean_env(),
                          capture_output=True, text=True, check=True)  # fmt: skip
    return {row["name"].lower() for row in json.loads(done.stdout)}


def test_the_bare_install_brings_the_core_dependencies_and_nothing_for_the_lab(
    bare: Path,
) -> None:
    names = installed(bare) - {"pip", "setuptools", "wheel"}
    assert "jobrunner" in names
    assert not names & NOT_IN_THE_CORE
    assert {"redis", "msgspec", "click", "structlog", "cronsim"} <= names


def test_the_bare_cli_helps_and_names_the_extra_a_lab_command_needs(bare: Path) -> None:
    jobrunner = str(bare / "jobrunner")
    helped = subprocess.run([jobrunner, "--help"], env=clean_env(), capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert helped.returncode == 0, helped.stderr
    assert "worker" in helped.stdout
    assert "loadgen" in helped.stdout
    refused = subprocess.run([jobrunner, "loadgen", "--jobs", "1"], env=clean_env(),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1
    assert "pip install 'jobrunner[lab]'" in refused.stderr
    assert "Traceback" not in refused.stderr
    api = subprocess.run([jobrunner, "api"], env=clean_env(), capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert "pip install 'jobrunner[api]'" in api.stderr
    archiver = subprocess.run([jobrunner, "archiver"], env=clean_env(), capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    assert "pip install 'jobrunner[history]'" in archiver.stderr


def test_a_bare_worker_runs_a_job_enqueued_by_the_bare_library(
    bare: Path, redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "myjobs.py").write_text(
        textwrap.dedent("""
        import redis
        from jobrunner import handler

        @handler("greet")
        def greet(payload):
            redis.Redis.from_url(payload["url"]).set("greeted", payload["name"])
    """)
    )
    env = {**clean_env(), "PYTHONPATH": str(app)}
    worker = subprocess.Popen(
        [str(bare / "jobrunner"), "worker", "--redis-url", redis_url, "--import", "myjobs",
         "--log-format", "json"],
        cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        enqueue = textwrap.dedent(f"""
            import asyncio
            from jobrunner import ReliableQueue
            from jobrunner.connection import async_redis

            async def main():
                redis = async_redis({redis_url!r})
                job_id = await ReliableQueue(redis).enqueue(
                    "greet", {{"url": {redis_url!r}, "name": "ada"}})
                print(job_id)
                await redis.aclose()

            asyncio.run(main())
        """)
        done = subprocess.run([str(bare / "python"), "-c", enqueue], cwd=app, env=env,
                              capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        job_id = done.stdout.strip()
        wait_until(lambda: sync_redis.get("greeted") == b"ada", 30, what="the bare worker")
        state = f"jr:{{default}}:job:{job_id}"
        wait_until(lambda: sync_redis.hget(state, "s") == b"done", 10, what="the ack")
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode()
    assert worker.returncode == 0, output
    assert '"completed": 1' in output.replace('"completed":1', '"completed": 1')
