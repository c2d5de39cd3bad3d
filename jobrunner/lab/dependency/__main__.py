"""``python -m jobrunner.lab.dependency --port 8900 --capacity 100``: serve the simulated
dependency."""

from __future__ import annotations

import json

import click

from jobrunner.lab.dependency.model import DependencyConfig
from jobrunner.lab.dependency.server import serve


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8900, show_default=True)
@click.option("--capacity", type=float, help="successful calls per second")
@click.option("--error-rate", type=float, help="failures at any load, 0..1")
@click.option("--base-latency", type=float, help="seconds, unloaded")
@click.option("--config", "config_json", help="the whole config as JSON (options win over it)")
def main(
    host: str,
    port: int,
    capacity: float | None,
    error_rate: float | None,
    base_latency: float | None,
    config_json: str | None,
) -> None:
    """A downstream service with a capacity, load-dependent latency and failures."""
    data = json.loads(config_json) if config_json else {}
    for name, value in (("capacity", capacity), ("error_rate", error_rate),
                        ("base_latency", base_latency)):  # fmt: skip
        if value is not None:
            data[name] = value
    try:
        config = DependencyConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from exc
    serve(host, port, config)


if __name__ == "__main__":
    main()
