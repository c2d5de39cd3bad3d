"""A real Prometheus (Debian's ``prometheus`` binary) for tests, scraping processes on loopback.

Its configuration is deploy/prometheus/prometheus.yml with each job's Docker DNS discovery
replaced by the loopback targets a test gives and the scraper token file by a test's own, so
the job names, paths and authorization a dashboard relies on are the deployed ones.
"""

from __future__ import annotations

import copy
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from jobrunner.dev.redis_server import free_port
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def find_prometheus() -> str | None:
    """The binary on PATH, or Debian's path (``make test`` installs it there)."""
    return shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")


def loopback_config(
    targets: dict[str, list[str]], token_file: Path, interval: float
) -> dict[str, Any]:
    """The deployed config, every job scraping ``targets[job_name]`` every ``interval`` s (a
    job the test runs nothing for, e.g. the archiver, is left out)."""
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(DEPLOYED_CONFIG.read_text()))
    every = f"{round(interval * 1000)}ms"  # Prometheus durations take no decimals
    config["global"] = {"scrape_interval": every, "evaluation_interval": every}
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] in targets]
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token_file)
    return config


class Prometheus:
    """``with Prometheus(binary, targets, token) as prom: prom.query("up")``; the process and
    its data directory are gone after the block."""

    def __init__(
        self, binary: str, targets: dict[str, list[str]], token: str, interval: float = 0.5
    ) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.interval = interval
        self._targets = {**targets, "prometheus": [f"127.0.0.1:{self.port}"]}
        self._token = token
        self._dir = Path(tempfile.mkdtemp(prefix="jobrunner-prometheus-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(base_url=self.url, timeout=5)

    def __enter__(self) -> Prometheus:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start(self) -> None:
        token_file = self._dir / "metrics-token"
        token_file.write_text(self._token)
        config = self._dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(loopback_config(self._targets, token_file,
                                                         self.interval)))  # fmt: skip
        argv = [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]  # fmt: skip
        with (self._dir / "prometheus.log").open("wb") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until(self._ready, 30, 0.05, what=f"Prometheus on {self.url}")

    def _ready(self) -> bool:
        assert self._proc is not None
        assert self._proc.poll() is None, f"prometheus exited:\n{self.log()}"
        try:
            return self._client.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        path = self._dir / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query now: each series' labels and value (``NaN`` and ``Inf`` included)."""
        response = self._client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert body.get("status") == "success", f"{expr}: {body.get('error', body)}"
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def value(self, expr: str) -> float:
        """The single value of ``expr`` now; NaN when it has none."""
        result = self.query(expr)
        return result[0][1] if len(result) == 1 else math.nan

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's ``label_values(match, label)`` lists."""
        response = self._client.get(f"/api/v1/label/{label}/values", params={"match[]": match})
        values: list[str] = response.json()["data"]
        return values

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._client.close()
        shutil.rmtree(self._dir, ignore_errors=True)
