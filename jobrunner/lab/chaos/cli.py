"""``jobrunner chaos``: the fault scenarios as a command, with the ledger report at the end."""

from __future__ import annotations

from pathlib import Path

import click

from jobrunner.lab.chaos.runner import ChaosConfig, run_chaos, write_report


@click.command()
@click.option(
    "--redis-url",
    envvar=["JOBRUNNER_REDIS_URL", "REDIS_URL"],
    help="an existing Redis (default: an embedded one; restarts need embedded)",
)
@click.option("--queue-kind", "kind", type=click.Choice(["reliable", "naive"]),
              default="reliable", show_default=True)  # fmt: skip
@click.option("--workers", default=2, show_default=True)
@click.option("--model", type=click.Choice(["asyncio", "thread", "process"]), default="asyncio",
              show_default=True)  # fmt: skip
@click.option("--concurrency", default=4, show_default=True)
@click.option("--via", type=click.Choice(["library", "api"]), default="library", show_default=True,
              help="enqueue straight to Redis or through POST /jobs")  # fmt: skip
@click.option("--duration", default=10.0, show_default=True, help="seconds of load")
@click.option("--rate", default=100.0, show_default=True, help="jobs a second")
@click.option("--job-ms", default=50.0, show_default=True, help="how long each job works")
@click.option("--kill-every", type=float, default=2.0, show_default=True,
              help="SIGKILL a random worker every N seconds (0: never)")  # fmt: skip
@click.option("--restart-redis-every", type=float, default=0.0, help="seconds (0: never)")
@click.option("--redis-down-for", default=1.0, show_default=True)
@click.option("--pause-every", type=float, default=0.0, help="SIGSTOP a worker every N seconds")
@click.option("--pause-for", default=3.0, show_default=True)
@click.option("--lease", default=2.0, show_default=True)
@click.option("--appendonly/--no-appendonly", default=True, show_default=True,
              help="the embedded Redis's AOF (fsync every second)")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="write the report as JSON here")  # fmt: skip
def chaos(out: Path | None, **options: object) -> None:
    """Steady load plus faults (kill workers, restart Redis, pause a worker) on a stack of its
    own, then a ledger kept outside Redis says what was lost, duplicated or never sent."""
    for name in ("kill_every", "restart_redis_every", "pause_every"):
        options[name] = options[name] or None
    if options["kind"] == "naive" and options["via"] == "api":
        raise click.UsageError("the naive queue has no API: use --via library")
    try:
        report = run_chaos(ChaosConfig(name=f"cli-{options['kind']}", **options),  # type: ignore[arg-type]
                           echo=click.echo)  # fmt: skip
    except Exception as exc:  # a stack that cannot start: say why, no traceback
        from jobrunner.errors import JobrunnerError

        if isinstance(exc, JobrunnerError):
            raise click.ClickException(str(exc)) from exc
        raise
    if out is not None:
        write_report(report, out)
        click.echo(f"report written to {out}")
