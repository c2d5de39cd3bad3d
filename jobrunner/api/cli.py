"""``jobrunner api``: serve the HTTP API (needs the ``api`` extra; loaded by name from the CLI).

Authenticated by default. ``--no-auth`` is for a laptop: it is refused on an address other
than loopback unless ``--force`` says the network in front of it is trusted.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import click
import msgspec

from jobrunner.cli import (
    history_option,
    imports_option,
    log_format_option,
    log_level_option,
    pg_url_option,
    redis_option,
    require_redis_url,
    settings_from,
    wait_replicas_option,
)
from jobrunner.errors import JobrunnerError
from jobrunner.logs import configure_logging, get_logger


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allow_no_auth(host: str, port: int, force: bool, risk: str, open_to: str) -> None:
    """Refuse --no-auth off loopback without --force; else warn that it is open."""
    if not is_loopback(host) and not force:
        raise click.UsageError(
            f"--no-auth on {host} would let anyone who reaches it {risk} jobs; "
            "bind to 127.0.0.1, or add --force if a trusted proxy guards it"
        )
    warning = (f"WARNING: authentication is OFF (--no-auth): anyone who reaches "
               f"{host}:{port} can {open_to} jobs.")  # fmt: skip
    click.secho(warning, fg="red", err=True)


@click.command()
@redis_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@imports_option
@click.option("--queues", help="declared queues, comma-separated (also those handlers name)")
@click.option("--max-queue-depth", type=int, help="waiting jobs above which POST /jobs is a 429")
@click.option(
    "--debug-routes", is_flag=True, default=None, help="serve /debug/profile, /debug/heap"
)
@click.option("--allowed-hosts", help="Host names it answers to (default: loopback, --host)")
@click.option("--no-auth", "no_auth", is_flag=True, help="no tokens: local development only")
@click.option("--force", is_flag=True, help="allow --no-auth on an address other than loopback")
@pg_url_option
@history_option
@wait_replicas_option
@log_level_option
@log_format_option
def api(host: str, port: int, no_auth: bool, force: bool, **options: Any) -> None:
    """Serve the HTTP API and the dashboard (OpenAPI docs at /docs) on uvloop."""
    from jobrunner.api import create_app
    from jobrunner.api.auth import default_hosts
    from jobrunner.api.server import run_api
    from jobrunner.tracing import setup as setup_tracing

    settings = settings_from(**options, auth=False if no_auth else None)
    require_redis_url(settings)
    if not settings.allowed_hosts:
        settings = msgspec.structs.replace(settings, allowed_hosts=default_hosts(host))
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger(component="api")
    if not settings.auth:
        allow_no_auth(host, port, force, "run and requeue", "enqueue, read and requeue")
    try:
        setup_tracing(settings, "jobrunner-api")  # before the app: it instruments itself
        app = create_app(settings)
    except JobrunnerError as exc:
        raise click.ClickException(str(exc)) from exc
    shown = f"[{host}]" if ":" in host else host
    log.info("api listening", url=f"http://{shown}:{port}", docs=f"http://{shown}:{port}/docs",
             dashboard=f"http://{shown}:{port}/dashboard", auth=settings.auth)  # fmt: skip
    run_api(app, host=host, port=port, settings=settings)
