"""The profiling routes: off by default; on, a pyinstrument profile and a tracemalloc top list."""

from __future__ import annotations

import json
import threading

import httpx

from jobrunner.config import Settings
from tests.api_server import running_api


def test_debug_routes_are_off_unless_enabled(redis_url: str) -> None:
    with running_api(Settings(redis_url=redis_url)) as base:
        assert httpx.get(f"{base}/debug/heap", headers=base.headers).status_code == 404
        assert (
            httpx.get(
                f"{base}/debug/profile", params={"seconds": 0.1}, headers=base.headers
            ).status_code
            == 404
        )


def test_profile_records_the_traffic_served_meanwhile(redis_url: str) -> None:
    with running_api(Settings(redis_url=redis_url, debug_routes=True)) as base:
        stop = threading.Event()

        def load() -> None:  # bounded: ends with the profile, at most a few hundred requests
            with httpx.Client(
                base_url=base, headers=base.headers, timeout=60
            ) as client:  # a loaded CI machine
                for _ in range(500):
                    if stop.is_set():
                        return
                    client.post("/jobs", json={"type": "noop"})

        traffic = threading.Thread(target=load)
        traffic.start()
        try:
            html = httpx.get(
                f"{base}/debug/profile", params={"seconds": 1}, timeout=30, headers=base.headers
            )
            speedscope = httpx.get(
                f"{base}/debug/profile", params={"seconds": 0.3, "format": "speedscope"},
                timeout=30, headers=base.headers,
            )  # fmt: skip
        finally:
            stop.set()
            traffic.join(30)
        assert html.status_code == 200
        assert "pyinstrument" in html.text
        assert "enqueue" in html.text  # the POST /jobs handler was sampled
        profile = json.loads(speedscope.text)
        assert profile["$schema"].startswith("https://www.speedscope.app")
        heap = httpx.get(f"{base}/debug/heap", params={"top": 5}, headers=base.headers).json()
        assert heap["traced_bytes"] > 0
        assert len(heap["top"]) == 5
        assert all(entry["bytes"] > 0 for entry in heap["top"])
