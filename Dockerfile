# syntax=docker/dockerfile:1
# One slim image for every role of jobrunner: the command picks api, worker or scheduler.
# Layers go from what changes least to what changes most, so editing the code rebuilds only
# the last two: the dependencies are resolved from pyproject.toml alone.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# 1. Third-party wheels: rebuilt only when pyproject.toml changes. The core's dependencies and
#    those of the extras named in EXTRAS (the API, tracing and the history by default: the
#    image runs every role; tracing stays off unless JOBRUNNER_TRACING says where spans go).
ARG EXTRAS=api,tracing,history
COPY pyproject.toml ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ['EXTRAS'].split(',') if e]; print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e] if not d.startswith('jobrunner')]))" > requirements.txt \
 && pip wheel --wheel-dir /wheels/deps -r requirements.txt
# 2. jobrunner itself (with its Lua scripts and the dashboard's static files as package data).
COPY README.md ./
COPY jobrunner ./jobrunner
RUN pip wheel --no-deps --wheel-dir /wheels/app .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin jobrunner
COPY --from=build /wheels/deps /wheels/deps
RUN pip install --no-index /wheels/deps/*.whl && rm -rf /wheels/deps
COPY --from=build /wheels/app /wheels/app
RUN pip install --no-index --no-deps /wheels/app/*.whl && rm -rf /wheels/app
WORKDIR /app
COPY deploy/schedules.toml /app/schedules.toml
USER 10001:10001
# 8000: the HTTP API and dashboard; 9100: a worker's metrics; 9101: a scheduler's metrics;
# 9102: the archiver's.
EXPOSE 8000 9100 9101 9102
CMD ["jobrunner", "api", "--host", "0.0.0.0", "--port", "8000", "--import", "jobrunner.lab.handlers.demo"]
