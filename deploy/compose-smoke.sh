#!/usr/bin/env bash
# Smoke test of the compose stack, for a machine with a Docker engine and Compose v2:
# `docker compose up --build`, wait until the API is ready (Redis answers, a worker beats), run a
# job through the API, check that Prometheus scrapes every service, then tear it all down,
# volumes included. It runs as its own compose project (SMOKE_PROJECT, default jobrunner-smoke),
# but the host ports 8000, 9090 and 3000 must be free.
#
#   deploy/compose-smoke.sh        exit 0: it works; 1: it does not (logs printed); 2: cannot run
#
# The checks after start-up are deploy/compose_smoke.py, run inside the api container.
set -euo pipefail

cd "$(dirname "$0")/.."
project="${SMOKE_PROJECT:-jobrunner-smoke}"
timeout="${SMOKE_TIMEOUT:-180}"

cannot_run() {
    echo "compose-smoke: $1" >&2
    exit 2
}
command -v docker >/dev/null 2>&1 ||
    cannot_run "no docker command: install Docker Engine with the Compose v2 plugin"
docker compose version >/dev/null 2>&1 ||
    cannot_run "'docker compose' (Compose v2) is needed; the old docker-compose v1 is not supported"
docker info >/dev/null 2>&1 ||
    cannot_run "no Docker engine answers ('docker info' failed): run this where an engine runs"

# Compose refuses to start without the scraper's token and the history database's password:
# throwaway ones unless they are set.
if [ -z "${JOBRUNNER_METRICS_TOKEN:-}" ]; then
    JOBRUNNER_METRICS_TOKEN="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    export JOBRUNNER_METRICS_TOKEN
fi
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    POSTGRES_PASSWORD="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    export POSTGRES_PASSWORD
fi

compose() {
    docker compose --project-name "$project" "$@"
}

finish() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo "compose-smoke: FAILED; the services' last log lines follow" >&2
        compose logs --no-color --tail 40 >&2 || true
    fi
    echo "compose-smoke: tearing down" >&2
    compose down --volumes --remove-orphans >/dev/null 2>&1 || true
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

compose up --build --detach

deadline=$((SECONDS + timeout))
until compose exec -T api python -m jobrunner.healthcheck http://127.0.0.1:8000/readyz \
    >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "compose-smoke: the API was not ready within ${timeout}s" >&2
        exit 1
    fi
    sleep 2 # polling the container's health, under the deadline above
done
echo "compose-smoke: the API is ready"
if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null http://localhost:8000/healthz
    echo "compose-smoke: the API answers on the host's port 8000"
fi

token="$(compose exec -T api jobrunner token create --name smoke --scope enqueue --scope read |
    tr -d '\r')"
compose exec -T api python - http://127.0.0.1:8000 "$token" http://prometheus:9090 "$timeout" \
    <deploy/compose_smoke.py
echo "compose-smoke: passed"
