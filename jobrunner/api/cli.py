"""``jobrunner api``: serve the HTTP API (needs the ``api`` extra; loaded by name from the CLI)."""

from __future__ import annotations

from typing import Any

import click

from jobrunner.cli import (
    imports_option,
    log_format_option,
    log_level_option,
    redis_option,
    require_redis_url,
    settings_from,
)
from jobrunner.errors import JobrunnerError
from jobrunner.logs import configure_logging


@click.command()
@redis_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@imports_option
@click.option("--max-queue-depth", type=int, help="waiting jobs above which POST /jobs is a 429")
@click.option(
    "--debug-routes", is_flag=True, default=None, help="serve /debug/profile, /debug/heap"
)
@log_level_option
@log_format_option
def api(host: str, port: int, **options: Any) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) on uvloop."""
    from jobrunner.api import create_app
    from jobrunner.api.server import run_api

    settings = settings_from(**options)
    require_redis_url(settings)
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except JobrunnerError as exc:
        raise click.ClickException(str(exc)) from exc
    run_api(app, host=host, port=port)
