"""A real Prometheus server on loopback, for the lab and the tests: Debian's ``prometheus``
binary (``apt-get install prometheus``; ``make test`` installs it) started with a config of the
caller's, its data in a temporary directory, gone when the block ends.

    with PrometheusServer(binary, [scrape_job("worker", ["127.0.0.1:9101"])]) as prom:
        prom.value('sum(job_duration_seconds_count)')

Targets may change while it runs (``set_targets``): they are a file Prometheus watches, so a
worker started later is scraped from then on. The config is written as JSON, which is YAML.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from jobrunner.dev.processes import end_process
from jobrunner.dev.redis_server import free_port
from jobrunner.dev.stack import wait_for


def find_prometheus() -> str | None:
    """The binary on PATH, or Debian's path (``make test`` installs it there)."""
    return shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")


def duration(seconds: float) -> str:
    """Prometheus durations take no decimals: 0.5 s is ``500ms``."""
    return f"{round(seconds * 1000)}ms"


def scrape_job(name: str, targets: list[str], token_file: Path | None = None) -> dict[str, Any]:
    """One scrape job over fixed targets (with a bearer token read from ``token_file``)."""
    job: dict[str, Any] = {"job_name": name, "static_configs": [{"targets": targets}]}
    if token_file is not None:
        job["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    return job


class PrometheusServer:
    """Prometheus scraping ``jobs`` (scrape configs) every ``interval`` seconds, plus a job named
    ``files`` over ``targets``, which ``set_targets`` rewrites while it runs."""

    def __init__(
        self,
        binary: str,
        jobs: list[dict[str, Any]],
        interval: float = 0.5,
        targets: list[str] | None = None,
    ) -> None:
        self.binary = binary
        self.targets = list(targets or [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.interval = interval
        self.jobs = jobs
        self.dir = Path(tempfile.mkdtemp(prefix="jobrunner-prometheus-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def config(self) -> dict[str, Any]:
        every = duration(self.interval)
        files = {"job_name": "files", "file_sd_configs": [
            {"files": [str(self.dir / "targets.json")], "refresh_interval": every}]}  # fmt: skip
        return {
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "scrape_configs": [*self.jobs, files],
        }

    def start(self) -> None:
        self.set_targets(self.targets)  # scraped once started; later changes take up to 5 s
        config = self.dir / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=1))
        argv = [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]  # fmt: skip
        with (self.dir / "prometheus.log").open("wb") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_for(self._ready, 30, f"Prometheus on {self.url}", interval=0.05)
        if self.targets:  # its first scrapes come about 5 s after it is ready
            wait_for(lambda: self.value('count(up{job="worker"} == 1)') == len(self.targets),
                     30, f"Prometheus's first scrape of {self.targets}", interval=0.1)  # fmt: skip

    def set_targets(self, targets: list[str], job: str = "worker") -> None:
        """The ``files`` job's targets from now on, labelled ``job`` (written whole, then
        renamed, so Prometheus never reads half a file). Prometheus applies a change within
        about 5 s (its discovery manager sends updates at most that often)."""
        self.targets = list(targets)
        path = self.dir / "targets.json"
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps([{"targets": targets, "labels": {"job": job}}]))
        staged.replace(path)

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"prometheus exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def log(self) -> str:
        path = self.dir / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a GET on the HTTP API; its error, raised, when it refused."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, with its reason
            body = json.loads(exc.read())
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query now: each series' labels and value (``NaN`` and ``Inf`` included)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise ValueError(f"{expr}: a {data['resultType']}, not an instant vector")
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query: each series' labels and its (unix time, value) points."""
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                        step=f"{step:g}")  # fmt: skip
        return [(item["metric"], [(float(t), float(v)) for t, v in item["values"]])
                for item in data["result"]]  # fmt: skip

    def value(self, expr: str) -> float:
        """The single value of ``expr`` now; NaN when it has none."""
        result = self.query(expr)
        return result[0][1] if len(result) == 1 else math.nan

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's ``label_values(match, label)`` lists."""
        values: list[str] = self.api(f"label/{label}/values", **{"match[]": match})
        return values

    def close(self) -> None:
        if self._proc is not None:
            end_process(self._proc, timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)
