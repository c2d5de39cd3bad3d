"""A process registers only the handler modules it was told to import: no lab type by default."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from jobrunner.dev.redis_server import free_port
from tests.api_server import bearer, make_token
from tests.conftest import wait_until


def test_a_fresh_process_registers_nothing_it_was_not_told_to_import() -> None:
    code = (
        "from jobrunner.registry import load_handlers\n"
        "print(','.join(load_handlers([]).names()) or '-')\n"
        "print(','.join(load_handlers(['jobrunner.lab.handlers.demo']).names()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    bare, demo = done.stdout.split()
    assert bare == "-"
    assert {"noop", "cpu_burn", "sleep", "email"} <= set(demo.split(","))


@contextmanager
def api_process(redis_url: str, *imports: str) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "jobrunner.cli", "api", "--redis-url", redis_url,
            "--port", str(port), "--log-format", "json"]  # fmt: skip
    for module in imports:
        argv += ["--import", module]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, 30, what="the API to answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_the_api_refuses_a_lab_type_unless_its_module_was_imported(redis_url: str) -> None:
    auth = bearer(make_token(redis_url, ["enqueue"]))
    with api_process(redis_url) as url:
        refused = httpx.post(f"{url}/jobs", json={"type": "cpu_burn", "data": {}}, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["code"] == "unknown_type"
    with api_process(redis_url, "jobrunner.lab.handlers.demo") as url:
        accepted = httpx.post(f"{url}/jobs", json={"type": "cpu_burn", "data": {}}, headers=auth)
    assert accepted.status_code == 202
