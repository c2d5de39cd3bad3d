"""The deployment files, checked without a Docker engine or a cluster.

docker-compose.yml against the Compose specification's JSON schema (vendored in deploy/schemas),
every command, port and path it names against the project itself, the Dockerfile's layer order
and user, the Prometheus and Grafana provisioning, and the Kubernetes manifests against the
Kubernetes schemas that kubernetes-validate ships. Metric names are checked against a real scrape
in test_deploy_metrics.py, the dashboard's values by a real Prometheus in
test_dashboard_prometheus.py, and the compose smoke script here by shellcheck.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml

from jobrunner.api import create_app
from jobrunner.cli import main as cli
from jobrunner.config import Settings
from jobrunner.registry import load_handlers
from jobrunner.scheduler.config import load_schedules

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
K8S_VERSION = "1.30.0"
APP_SERVICES = ("api", "worker", "scheduler", "archiver")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(ROOT / "docker-compose.yml")
    return loaded


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]  # fmt: skip


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def command_option(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


# ------------------------------------------------------------------ compose: the schema


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_path = DEPLOY / "schemas" / "compose-spec.json"
    assert hashlib.sha256(schema_path.read_bytes()).hexdigest() == COMPOSE_SCHEMA_SHA256
    schema = json.loads(schema_path.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(compose)]  # fmt: skip
    assert errors == []
    # The validator is live: a misspelt key or a wrong type is refused.
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["helthcheck"] = {}
    broken["services"]["api"]["ports"] = "8000:8000"
    assert len(list(validator.iter_errors(broken))) >= 2


# ------------------------------------------------------------------ compose: what it names


def app_commands(compose: dict[str, Any]) -> dict[str, list[str]]:
    return {name: compose["services"][name]["command"] for name in APP_SERVICES}


def k8s_commands() -> dict[str, list[str]]:
    out = {}
    for _, doc in k8s_documents():
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                out[doc["metadata"]["name"]] = container["command"]
    return out


def test_every_jobrunner_command_parses_with_the_real_cli(compose: dict[str, Any]) -> None:
    dockerfile_cmd = json.loads(dict(dockerfile_instructions())["CMD"])
    commands = {**app_commands(compose), **k8s_commands(), "Dockerfile CMD": dockerfile_cmd}
    assert len(commands) >= 7
    for where, command in commands.items():
        assert command[0] == "jobrunner", where
        sub = cli.get_command(click.Context(cli), command[1])
        assert sub is not None, f"{where}: no `jobrunner {command[1]}`"
        sub.make_context(command[1], list(command[2:]))  # unknown options raise here
        for i, arg in enumerate(command):
            if arg == "--import":
                importlib.import_module(command[i + 1])
    # The validator is live: an option the CLI does not have is refused.
    worker = cli.get_command(click.Context(cli), "worker")
    assert worker is not None
    with pytest.raises(click.NoSuchOption):
        worker.make_context("worker", ["--metrics-prot", "9100"])


def test_ports_agree_between_commands_compose_prometheus_kubernetes_and_the_image(
    compose: dict[str, Any],
) -> None:
    commands = app_commands(compose)
    api_port = command_option(commands["api"], "--port")
    worker_port = command_option(commands["worker"], "--metrics-port")
    scheduler_port = command_option(commands["scheduler"], "--metrics-port")
    services = compose["services"]
    assert [p.split(":")[-1] for p in services["api"]["ports"]] == [api_port]
    assert services["worker"]["expose"] == [worker_port]
    assert services["scheduler"]["expose"] == [scheduler_port]
    assert "ports" not in services["worker"]  # a fixed host port would stop --scale worker=N
    assert "container_name" not in services["worker"]
    archiver_port = command_option(commands["archiver"], "--metrics-port")
    assert services["archiver"]["expose"] == [archiver_port]
    ports = [("api", api_port), ("worker", worker_port), ("scheduler", scheduler_port),
             ("archiver", archiver_port)]  # fmt: skip
    for name, port in ports:
        check = services[name]["healthcheck"]["test"]
        url = next(arg for arg in check if arg.startswith("http://"))
        assert urlsplit(url).port == int(port), name
    exposed = dict(dockerfile_instructions())["EXPOSE"].split()
    assert {api_port, worker_port, scheduler_port, archiver_port} <= set(exposed)

    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for name, port in ports:
        [sd] = jobs[name]["dns_sd_configs"]
        assert sd["names"] == [name]  # the compose service name: Docker's DNS lists replicas
        assert (sd["type"], str(sd["port"])) == ("A", port)
        assert jobs[name]["metrics_path"] == "/metrics"

    k8s = {
        doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == "Deployment"
    }
    for name, port in ports:
        pod = k8s[f"jobrunner-{name}"]["spec"]["template"]
        [container] = pod["spec"]["containers"]
        assert [str(p["containerPort"]) for p in container["ports"]] == [port]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == port


def test_health_checks_name_routes_and_metrics_that_exist(compose: dict[str, Any]) -> None:
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"), load_handlers([]))
    routes = set(app.openapi()["paths"])  # included routers do not list their paths here
    assert {"/healthz", "/readyz", "/metrics"} <= routes
    from jobrunner.metrics import WorkerMetrics

    exported = {family.name for family in WorkerMetrics().registry.collect()}
    checks = [compose["services"][name]["healthcheck"]["test"] for name in APP_SERVICES
              if "healthcheck" in compose["services"][name]]  # fmt: skip
    for _, doc in k8s_documents():
        if doc["kind"] == "Deployment":
            [container] = doc["spec"]["template"]["spec"]["containers"]
            for probe in ("livenessProbe", "readinessProbe"):
                if "exec" in container.get(probe, {}):
                    checks.append(["CMD", *container[probe]["exec"]["command"]])
                elif "httpGet" in container.get(probe, {}):
                    assert container[probe]["httpGet"]["path"] in routes
    for check in checks:
        assert check[:4] == ["CMD", "python", "-m", "jobrunner.healthcheck"], check
        importlib.import_module("jobrunner.healthcheck")
        path = urlsplit(check[4]).path
        assert path in routes or path == "/metrics", check  # workers serve only /metrics
        for i, arg in enumerate(check):
            if arg == "--fresh":
                assert check[i + 1].split("=")[0] in exported
    assert "/readyz" in compose["services"]["api"]["healthcheck"]["test"][4]
    for name in ("redis", "prometheus", "grafana", "postgres"):
        assert compose["services"][name]["healthcheck"]["test"][0] == "CMD"


def test_every_process_that_ends_jobs_writes_history_and_the_archiver_fills_what_the_api_reads(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("api", "worker", "scheduler", "archiver"):
        history = int(services[name]["environment"].get("JOBRUNNER_HISTORY", 0))
        assert history > 0 or name == "archiver", f"{name} ends jobs without writing history"
    api, archiver = services["api"]["environment"], services["archiver"]["environment"]
    assert api["JOBRUNNER_PG_URL"] == archiver["JOBRUNNER_PG_URL"]
    url = urlsplit(re.sub(r"\$\{POSTGRES_PASSWORD:\?[^}]*\}", "secret", api["JOBRUNNER_PG_URL"]))
    postgres = services["postgres"]["environment"]
    assert (url.hostname, url.username) == ("postgres", postgres["POSTGRES_USER"])
    assert "POSTGRES_PASSWORD" in postgres["POSTGRES_PASSWORD"]  # from .env, never a default
    assert archiver.get("REDIS_URL") == services["worker"]["environment"]["REDIS_URL"]


def test_paths_named_by_compose_and_the_dockerfile_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        if service.get("build"):
            assert (ROOT / service["build"] / "Dockerfile").is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), volume
            else:
                assert source in compose["volumes"], volume
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]  # fmt: skip
    copies = {}
    for word, rest in dockerfile_instructions():
        if word == "COPY" and "--from" not in rest:
            *sources, dest = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.split("/")[0] not in ignored, f"{source} is in .dockerignore"
                copies[dest] = source
    # The scheduler's schedules file is copied into the image and parses.
    schedules_path = command_option(compose["services"]["scheduler"]["command"], "--schedules")
    assert schedules_path in copies
    imports = [command_option(compose["services"]["scheduler"]["command"], "--import")]
    assert len(load_schedules(imports, ROOT / copies[schedules_path])) >= 1


# ------------------------------------------------------------------ compose: the smoke script

SMOKE = DEPLOY / "compose-smoke.sh"


def test_the_compose_smoke_script_passes_shellcheck() -> None:
    """It cannot run here (no engine): the linter is what checks it."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("no shellcheck: `make test` installs Debian's (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(SMOKE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_the_compose_smoke_script_says_why_it_cannot_run_without_docker(tmp_path: Path) -> None:
    """Exit 2 and the reason, not a half-started stack, where there is no docker at all."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "dirname", "od", "tr"):
        (tools / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    result = subprocess.run([str(tools / "bash"), str(SMOKE)], env={"PATH": str(tools)},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "no docker command" in result.stderr
    assert "Compose v2" in result.stderr


def test_the_dockerfile_is_slim_non_root_and_cache_friendly() -> None:
    steps = dockerfile_instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert all("-slim" in image for image in froms)
    user = [rest for word, rest in steps if word == "USER"]
    assert user
    assert user[-1].split(":")[0] not in ("0", "root")
    text = [f"{word} {rest}" for word, rest in steps]

    def first(pattern: str) -> int:
        return next(i for i, line in enumerate(text) if re.search(pattern, line))

    # Dependencies are resolved from pyproject.toml before the code is copied in.
    assert (
        first(r"^COPY pyproject\.toml")
        < first(r"pip wheel .*-r requirements")
        < first(r"^COPY jobrunner")
    )
    assert first(r"pip install --no-index /wheels/deps") < first(r"^COPY --from=build /wheels/app")
    assert first(r"^USER") > first(r"pip install --no-index --no-deps")


# ------------------------------------------------------------------ Prometheus and Grafana


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus(
    compose: dict[str, Any],
) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    [source] = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert urlsplit(source["url"]).hostname in compose["services"]
    [provider] = load_yaml(provisioning / "dashboards" / "jobrunner.yml")["providers"]
    mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["grafana"]["volumes"])
    assert (ROOT / mounts[provider["options"]["path"]] / "jobrunner.json").is_file()

    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "jobrunner.json").read_text())
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("queue depth", "throughput", "duration", "wait", "failures", "retries", "dead"):
        assert topic in titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        assert panel["targets"]
        assert all(target["expr"].strip() for target in panel["targets"])


# ------------------------------------------------------------------ Kubernetes


def test_kubernetes_manifests_are_valid_against_the_kubernetes_schemas() -> None:
    documents = k8s_documents()
    kinds = sorted(doc["kind"] for _, doc in documents)
    assert kinds.count("Deployment") == 4
    assert "HorizontalPodAutoscaler" in kinds
    for name, doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises with the reason
        assert name
    # The validator is live: a misspelt field is refused in strict mode.
    _, deployment = next((n, d) for n, d in documents if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_autoscaler_targets_the_worker_deployment_on_queue_depth() -> None:
    docs = {doc["kind"]: doc for _, doc in k8s_documents() if doc["kind"] != "Deployment"}
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "jobrunner-worker"
    [metric] = hpa["spec"]["metrics"]
    adapter = yaml.safe_load(docs["ConfigMap"]["data"]["config.yaml"])
    [rule] = adapter["externalRules"]
    assert rule["name"]["as"] == metric["external"]["metric"]["name"]
    assert "queue_depth" in rule["seriesQuery"]
    assert "queue" in metric["external"]["metric"]["selector"]["matchLabels"]


def test_the_image_installs_the_core_and_the_api_extra_from_pyproject() -> None:
    """Run the Dockerfile's own requirements step here: the image gets FastAPI, not the lab."""
    steps = dockerfile_instructions()
    extras = next(rest for word, rest in steps if word == "ARG" and rest.startswith("EXTRAS="))
    run = next(rest for word, rest in steps if word == "RUN" and "requirements.txt" in rest)
    script = run.split('python -c "', 1)[1].split('" > requirements.txt', 1)[0]
    env = {**os.environ, "EXTRAS": extras.split("=", 1)[1]}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    names = {re.split(r"[<>=\[; ]", line)[0].lower() for line in done.stdout.split()}
    assert {"redis", "msgspec", "click", "fastapi", "uvicorn"} <= names
    assert not names & {"pandas", "matplotlib", "jupyterlab", "aiohttp", "pydantic-settings"}
