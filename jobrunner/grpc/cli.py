"""``jobrunner grpc``: serve the gRPC API (needs the ``grpc`` extra; loaded by name from the CLI).

Authenticated as the HTTP API is: ``--no-auth`` only on loopback unless ``--force``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from jobrunner.api.cli import allow_no_auth
from jobrunner.cli import (
    history_option,
    imports_option,
    log_format_option,
    log_level_option,
    redis_option,
    require_redis_url,
    settings_from,
    wait_replicas_option,
)
from jobrunner.errors import JobrunnerError
from jobrunner.logs import configure_logging


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ModuleNotFoundError:  # not on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@click.command()
@redis_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=50051, show_default=True)
@imports_option
@click.option("--queues", help="declared queues, comma-separated (also those handlers name)")
@click.option("--max-queue-depth", type=int, help="waiting jobs above which Enqueue is refused")
@click.option("--no-auth", "no_auth", is_flag=True, help="no tokens: local development only")
@click.option("--force", is_flag=True, help="allow --no-auth on an address other than loopback")
@click.option("--metrics-port", type=int,
              help="serve Prometheus metrics (calls by method and code, their time, the jobs "
                   "enqueued) on this port (JOBRUNNER_METRICS_PORT)")  # fmt: skip
@history_option
@wait_replicas_option
@log_level_option
@log_format_option
def grpc_cmd(host: str, port: int, no_auth: bool, force: bool, **options: Any) -> None:
    """Serve the gRPC API (jobrunner.v1.Jobs, health, reflection) on uvloop."""
    from jobrunner.grpc.server import serve

    settings = settings_from(**options, auth=False if no_auth else None)
    require_redis_url(settings)
    configure_logging(settings.log_level, settings.log_format)
    if not settings.auth:
        allow_no_auth(host, port, force, "enqueue and cancel", "enqueue, read and cancel")
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(serve(settings, host, port))
    except JobrunnerError as exc:
        raise click.ClickException(str(exc)) from exc
