"""A real Prometheus (Debian's ``prometheus`` binary) for tests, scraping processes on loopback.

Its scrape jobs are deploy/prometheus/prometheus.yml's with each job's Docker DNS discovery
replaced by the loopback targets a test gives and the scraper token file by a test's own, so
the job names, paths and authorization a dashboard relies on are the deployed ones. The server
itself is the lab's (jobrunner.dev.prometheus).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from jobrunner.dev.prometheus import PrometheusServer, find_prometheus

__all__ = ["Prometheus", "find_prometheus", "loopback_jobs"]

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def loopback_jobs(targets: dict[str, list[str]], token_file: Path) -> list[dict[str, Any]]:
    """The deployed scrape jobs, each scraping ``targets[job_name]`` (a job the test runs
    nothing for, e.g. the archiver, is left out)."""
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(DEPLOYED_CONFIG.read_text()))
    jobs = [j for j in config["scrape_configs"] if j["job_name"] in targets]
    for job in jobs:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token_file)
    return jobs


class Prometheus(PrometheusServer):
    """``with Prometheus(binary, targets, token) as prom: prom.query("up")``; the process and
    its data directory are gone after the block."""

    def __init__(
        self, binary: str, targets: dict[str, list[str]], token: str, interval: float = 0.5
    ) -> None:
        super().__init__(binary, [], interval)
        token_file = self.dir / "metrics-token"
        token_file.write_text(token)
        self.jobs = loopback_jobs({**targets, "prometheus": [f"127.0.0.1:{self.port}"]},
                                  token_file)  # fmt: skip
