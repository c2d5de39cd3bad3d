"""The checks of deploy/compose-smoke.sh, run inside the api container (the standard library
only: the slim image has no curl): a job's round trip through the API, then Prometheus scraping
the API, a worker, the scheduler and itself.

    python compose_smoke.py API_URL TOKEN PROMETHEUS_URL [TIMEOUT_SECONDS]

Exits 0 when both hold, 1 with the reason otherwise. tests/test_dashboard_prometheus.py runs it
against the same services on loopback, where no Docker engine runs.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

SCRAPE_JOBS = {"api", "worker", "scheduler", "prometheus"}  # deploy/prometheus/prometheus.yml


class SmokeFailed(Exception):
    pass


def call(url: str, token: str = "", body: object = None) -> Any:
    """GET, or POST ``body`` as JSON; the decoded answer, or SmokeFailed with the status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SmokeFailed(f"{request.method} {url}: {exc.code} {exc.read()[:300]!r}") from None


def until(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` every half second until it holds, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SmokeFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def smoke(api: str, token: str, prometheus: str, timeout: float) -> None:
    payload = {"to": "smoke@example.com", "latency": 0.01}
    [job_id] = call(f"{api}/jobs", token, {"type": "email", "data": payload})["ids"]
    until(f"job {job_id} to be done",
          lambda: call(f"{api}/jobs/{job_id}", token)["state"] == "done", timeout)  # fmt: skip

    def scraped() -> bool:
        query = urllib.parse.quote("up == 1")
        result = call(f"{prometheus}/api/v1/query?query={query}")["data"]["result"]
        return {series["metric"]["job"] for series in result} >= SCRAPE_JOBS

    until(f"Prometheus to scrape {', '.join(sorted(SCRAPE_JOBS))}", scraped, timeout)


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    api, token, prometheus = argv[1:4]
    try:
        smoke(api.rstrip("/"), token, prometheus.rstrip("/"), float(argv[4]) if argv[4:] else 120)
    except (SmokeFailed, OSError) as exc:
        print(f"compose-smoke: {exc}", file=sys.stderr)
        return 1
    print("compose-smoke: a job ran through the API and Prometheus scrapes every service")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
