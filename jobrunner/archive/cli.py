"""``jobrunner archiver``: loaded by name from ``jobrunner/cli.py`` (it needs psycopg)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from jobrunner.cli import (
    log_format_option,
    log_level_option,
    pg_url_option,
    redis_option,
    settings_from,
)


@click.command()
@redis_option
@pg_url_option
@click.option("--consumer", help="this archiver's name in the consumer group (default: host name)")
@click.option("--batch", type=int, default=5000, show_default=True,
              help="entries read per stream and round")  # fmt: skip
@click.option("--retention-days", "history_retention_days", type=float,
              help="delete rows that ended longer ago (default 30; 0: keep them)")  # fmt: skip
@click.option("--metrics-port", type=int,
              help="serve Prometheus metrics on this port (JOBRUNNER_METRICS_PORT)")  # fmt: skip
@log_level_option
@log_format_option
def archiver(consumer: str | None, batch: int, **options: Any) -> None:
    """Copy jobs that ended from Redis's history streams into PostgreSQL until SIGINT/SIGTERM.

    Workers write the streams when started with --history N (JOBRUNNER_HISTORY).
    """
    from prometheus_client import start_http_server

    from jobrunner.archive.archiver import archive_forever
    from jobrunner.archive.metrics import ArchiverMetrics
    from jobrunner.connection import async_redis
    from jobrunner.logs import configure_logging

    settings = settings_from(**options)
    if not settings.redis_url:
        raise click.UsageError("no Redis URL: pass --redis-url or set REDIS_URL")
    if not settings.pg_url:
        raise click.UsageError("no PostgreSQL URL: pass --pg-url or set JOBRUNNER_PG_URL")
    configure_logging(settings.log_level, settings.log_format)

    metrics = ArchiverMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)

    async def go() -> None:
        redis = async_redis(settings.redis_url)
        try:
            counts = await archive_forever(
                redis, settings.pg_url, prefix=settings.prefix, consumer=consumer, batch=batch,
                retention_days=settings.history_retention_days, metrics=metrics,
            )  # fmt: skip
            click.echo(dict(counts))
        finally:
            await redis.aclose()

    asyncio.run(go())
