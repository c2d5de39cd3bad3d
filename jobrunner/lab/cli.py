"""Lab commands: the naive baseline worker and the experiments (the ``lab`` extra).

``jobrunner loadgen`` and ``jobrunner chaos`` live beside their code (``lab/loadgen/cli.py``,
``lab/chaos/cli.py``); the top-level CLI imports each of these by name only when it is used.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

import click

from jobrunner.cli import (
    imports_option,
    log_format_option,
    log_level_option,
    redis_option,
    settings_from,
)
from jobrunner.lab.experiments import EXPERIMENTS
from jobrunner.logs import configure_logging


@click.command("naive-worker")
@redis_option
@click.option("--concurrency", type=int, help="jobs at once (default 1)")
@click.option("--queues", help="comma-separated, highest priority first (default: default)")
@imports_option
@log_level_option
@log_format_option
def naive_worker(**options: Any) -> None:
    """TEACHING BASELINE: the LPUSH/BRPOP worker; a killed worker loses its in-flight jobs."""
    from jobrunner.lab.naive import serve_naive
    from jobrunner.worker.entry import run_event_loop

    settings = settings_from(**options)
    configure_logging(settings.log_level, settings.log_format)
    run_event_loop(serve_naive(settings))


@click.command()
@click.argument("name", type=click.Choice(EXPERIMENTS), metavar="NAME")
@click.option("--full", is_flag=True, help="the full-size run (minutes) instead of the small one")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="directory for <name>.csv, .json and .png")  # fmt: skip
@click.pass_context
def experiment(ctx: click.Context, name: str, full: bool, out: Path) -> None:
    """Run an experiment: backoff_sim, backoff_live, limiter_accuracy or backpressure; write
    OUT/NAME.{csv,json,png} (as python -m jobrunner.lab.experiments.NAME does)."""
    command = import_module(f"jobrunner.lab.experiments.{name}").main
    ctx.invoke(command, full=full, out=out)  # the experiment's other options keep their defaults
