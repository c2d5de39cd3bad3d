"""One settings object, read from arguments and ``JOBRUNNER_*`` environment variables.

Nothing is read at import time: build ``Settings()`` (environment) or ``Settings(field=...)``
(arguments win over the environment). ``REDIS_URL`` is accepted as an alias of
``JOBRUNNER_REDIS_URL`` because it is the name platforms set.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Model = Literal["asyncio", "thread", "process"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBRUNNER_", extra="ignore")

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("JOBRUNNER_REDIS_URL", "REDIS_URL", "redis_url")
    )
    prefix: str = "jr"

    # worker
    queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    model: Model = "asyncio"
    concurrency: int = Field(default=0, ge=0, description="0 = the model's default")
    prefetch: int = Field(
        default=-1, ge=-1, description="jobs reserved beyond concurrency; -1 = as many"
    )
    batch_size: int = Field(default=100, ge=1, le=10_000)
    lease: float = Field(default=30.0, gt=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    maintenance_interval: float = Field(default=0.2, gt=0)
    idle_poll_max: float = Field(default=0.05, gt=0)
    grace: float = Field(default=10.0, ge=0)
    result_ttl: float = Field(default=600.0, ge=0)
    imports: Annotated[list[str], NoDecode] = Field(default_factory=list)
    per_child_prefetch: int = Field(default=16, ge=1)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0: no metrics server")
    limits: str = Field(
        default="", description="execution limits by job type: 'email=50/s;resize=concurrency:4'"
    )

    # api
    max_payload_bytes: int = Field(default=1024 * 1024, ge=1, description="request body bound")
    debug_routes: bool = Field(default=False, description="serve /debug/profile and /debug/heap")
    ingress_rate: str = Field(
        default="", description="per-client request limit on the API, e.g. '100/s'; '' = off"
    )
    ingress_client_header: str = Field(
        default="X-Client-Id", description="header naming the client; else its IP address"
    )
    max_queue_depth: int = Field(
        default=0, ge=0, description="ready + scheduled jobs above which POST /jobs answers 429"
    )

    # logs
    log_level: str = "info"
    log_format: Literal["json", "console", "auto"] = "auto"

    @field_validator("queues", "imports", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("limits")
    @classmethod
    def _check_limits(cls, value: str) -> str:
        from jobrunner.ratelimit.spec import parse_limits

        parse_limits(value)  # raises with the reason
        return value

    @field_validator("ingress_rate")
    @classmethod
    def _check_ingress_rate(cls, value: str) -> str:
        from jobrunner.ratelimit.spec import parse_limit

        if value.strip():
            parse_limit(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.queues:
            raise ValueError("at least one queue is needed")
        return self

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
