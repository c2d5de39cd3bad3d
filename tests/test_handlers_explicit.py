"""A process registers only the handler modules it was told to import: no lab type by default."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.api_server import api_process, bearer, make_token


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


def test_the_api_refuses_a_lab_type_unless_its_module_was_imported(redis_url: str) -> None:
    auth = bearer(make_token(redis_url, ["enqueue"]))
    with api_process(redis_url) as (url, _):
        refused = httpx.post(f"{url}/jobs", json={"type": "cpu_burn", "data": {}}, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["code"] == "unknown_type"
    with api_process(redis_url, "--import", "jobrunner.lab.handlers.demo") as (url, _):
        accepted = httpx.post(f"{url}/jobs", json={"type": "cpu_burn", "data": {}}, headers=auth)
    assert accepted.status_code == 202
