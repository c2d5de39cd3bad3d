"""One settings object, from arguments and ``JOBRUNNER_*`` environment variables.

``Settings(field=...)`` takes values as given (and checks them); ``Settings.from_env(**given)``
reads the environment, then lets the given values win. Nothing is read at import time, and the
environment is a mapping you can pass in (tests do). ``REDIS_URL`` is accepted as an alias of
``JOBRUNNER_REDIS_URL`` because it is the name platforms set.

The settings are a msgspec ``Struct``: its type annotations carry the bounds, and msgspec checks
them and converts environment strings, so a bare install needs no pydantic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal, get_type_hints

import msgspec

from jobrunner.errors import ConfigError

Model = Literal["asyncio", "thread", "process"]
ENV_PREFIX = "JOBRUNNER_"
# the +cluster schemes name a Redis Cluster by any node (see connection.py)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNeg = Annotated[float, msgspec.Meta(ge=0)]


class SettingsError(ConfigError, ValueError):
    """An invalid setting; ``field`` names it (the CLI turns it into a usage error)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"invalid setting {field}: {detail}")
        self.field = field


class Settings(msgspec.Struct, kw_only=True):
    redis_url: str | None = None
    prefix: str = "jr"

    # worker
    queues: list[str] = msgspec.field(default_factory=lambda: ["default"])  # served, or declared
    max_queues: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100  # declared queues at most
    model: Model = "asyncio"
    concurrency: NonNegInt = 0  # 0 = the model's default
    prefetch: Annotated[int, msgspec.Meta(ge=-1)] = -1  # jobs reserved beyond concurrency; -1 auto
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    # when a delivery is charged: "start" (a prefetched job a worker's death strands keeps its
    # attempt; a start mark costs a round trip per turnover of the runner's slots) or "reserve"
    # (every job reserved is charged at once: no start round trip)
    charge_on: Literal["start", "reserve"] = "start"
    lease: Positive = 30.0
    heartbeat_interval: Positive = 5.0
    maintenance_interval: Positive = 0.2
    idle_poll_max: Positive = 0.05
    grace: NonNeg = 10.0
    result_ttl: NonNeg = 600.0
    idempotency_ttl: Positive = 86_400.0  # seconds an idempotency key keeps naming its job
    # durability: WAIT for this many replicas after each enqueue and ack (0: do not wait), at
    # most wait_timeout seconds; an enqueue not confirmed in time is refused (503)
    wait_replicas: Annotated[int, msgspec.Meta(ge=0, le=16)] = 0
    wait_timeout: Positive = 1.0
    imports: list[str] = msgspec.field(default_factory=list)
    per_child_prefetch: Annotated[int, msgspec.Meta(ge=1)] = 16
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # 0: no metrics server
    limits: str = ""  # execution limits by job type: 'email=50/s;resize=concurrency:4'
    # job history (docs/history.md): above 0, jobs that end are written to their queue's
    # history stream, at most about this many entries a queue until the archiver takes them
    history: NonNegInt = 0

    # the history archive (jobrunner archiver, GET /history): PostgreSQL, psycopg's URL form
    pg_url: str = ""
    history_retention_days: NonNeg = 30.0  # rows older are deleted by the archiver; 0: kept

    # api
    auth: bool = True  # tokens required (jobrunner token create); off only for local development
    allowed_hosts: list[str] = msgspec.field(default_factory=list)  # Host names; [] = loopback
    metrics_token: str = ""  # a bearer value good for GET /metrics only (a Prometheus scraper)
    token_cache_seconds: NonNeg = 5.0  # how long a checked token is trusted without Redis
    session_ttl: Positive = 43_200.0  # seconds a dashboard login lasts
    max_payload_bytes: Annotated[int, msgspec.Meta(ge=1)] = 1024 * 1024  # request body bound
    header_timeout: Positive = 10.0  # seconds a client has to send a request's headers
    body_timeout: Positive = 30.0  # seconds it may wait between two pieces of a request's body
    keep_alive_timeout: Positive = 5.0  # seconds an idle kept-alive connection stays open
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1000  # beyond: 503 and closed
    debug_routes: bool = False  # serve /debug/profile and /debug/heap
    ingress_rate: str = ""  # per-client request limit on the API, e.g. '100/s'; '' = off
    ingress_client_header: str = "X-Client-Id"  # header naming the client; else its IP address
    max_queue_depth: NonNegInt = 0  # ready + scheduled jobs above which POST /jobs is a 429

    # tracing (docs/tracing.md): where spans go; "none" imports no OpenTelemetry at all
    tracing: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str = ""  # OTLP/HTTP base URL (http://jaeger:4318); "" = OTEL_EXPORTER_OTLP_*
    # the share of new traces kept (decided where a trace starts; a job follows its producer's
    # decision): a job left out costs its worker almost nothing
    tracing_sample: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0

    # logs
    log_level: str = "info"
    log_format: Literal["json", "console", "auto"] = "auto"

    def __post_init__(self) -> None:
        self.queues = _split(self.queues)
        self.imports = _split(self.imports)
        self.allowed_hosts = _split(self.allowed_hosts)
        for name, kind in _field_types().items():
            try:
                msgspec.convert(getattr(self, name), kind)
            except msgspec.ValidationError as exc:
                raise SettingsError(name, f"{getattr(self, name)!r}: {exc}") from None
        if not self.queues:
            raise SettingsError("queues", "at least one queue is needed")
        if self.redis_url is not None and not self.redis_url.startswith(REDIS_SCHEMES):
            shown = self.redis_url.split("@")[-1]  # never echo a password
            raise SettingsError(
                "redis_url",
                f"{shown!r} is not a Redis URL (redis://host:port/db, rediss://, unix://, "
                "redis+cluster://host:port)",
            )
        from jobrunner.job import check_queue_name

        try:
            for name in self.queues:
                check_queue_name(name)
        except ValueError as exc:
            raise SettingsError("queues", str(exc)) from None
        from jobrunner.ratelimit.spec import parse_limit, parse_limits

        try:
            parse_limits(self.limits)
        except ValueError as exc:
            raise SettingsError("limits", str(exc)) from None
        try:
            if self.ingress_rate.strip():
                parse_limit(self.ingress_rate)
        except ValueError as exc:
            raise SettingsError("ingress_rate", str(exc)) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> Settings:
        """Settings from ``JOBRUNNER_*`` variables (names in any case), then ``given``."""
        environ = os.environ if env is None else env
        upper = {key.upper(): value for key, value in environ.items()}
        values: dict[str, Any] = {}
        if "REDIS_URL" in upper:
            values["redis_url"] = upper["REDIS_URL"]
        types = _field_types()
        for name, kind in types.items():
            raw = upper.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            if name in ("queues", "imports", "allowed_hosts"):
                values[name] = _split(raw)
                continue
            try:
                values[name] = msgspec.convert(raw, kind, strict=False)
            except msgspec.ValidationError as exc:
                raise SettingsError(name, f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from None
        values.update(given)
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise SettingsError(unknown[0], "no such setting")
        return cls(**values)

    @property
    def effective_concurrency(self) -> int:
        if self.concurrency:
            return self.concurrency
        return {"asyncio": 100, "thread": 16, "process": 2}[self.model]

    @property
    def effective_prefetch(self) -> int:
        """Jobs reserved beyond those running, so one round trip serves a whole batch.

        The trade-off is fairness: prefetched jobs wait in this worker while another may be
        idle. Use ``prefetch=0`` for long jobs spread over many workers.
        """
        if self.prefetch >= 0:
            return self.prefetch
        if self.model == "process":
            return max(100, self.effective_concurrency * self.per_child_prefetch)
        return max(100, self.effective_concurrency)


def _split(value: str | list[str]) -> list[str]:
    """A comma-separated string or a list, as a list of non-empty, stripped names."""
    parts = value.split(",") if isinstance(value, str) else value
    # a non-string item is kept for the type check to refuse with a clear message
    return [
        p.strip() if isinstance(p, str) else p for p in parts if not isinstance(p, str) or p.strip()
    ]


@cache
def _field_types() -> dict[str, Any]:
    """Each field's annotation with its bounds (``Annotated[...]``), for msgspec to check."""
    return get_type_hints(Settings, include_extras=True)
