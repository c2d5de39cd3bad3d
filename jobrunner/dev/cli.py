"""Development commands: ``up``, ``demo``, ``redis`` and ``profile`` (loaded by name from the CLI).

``up``, ``demo`` and ``profile`` need the ``demo`` extra (psutil, py-spy, rich, the API);
``redis`` needs only the core and a ``redis-server`` (or the ``embedded`` extra's binary).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jobrunner.cli import redis_option
from jobrunner.errors import JobrunnerError


@click.command()
@click.option("--pid", type=int, help="attach to this running process")
@click.option("--worker", "start_worker", is_flag=True, help="start a worker under py-spy")
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="e.g. profiles/worker.svg")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["flamegraph", "speedscope", "raw"]),
              default="flamegraph", show_default=True)  # fmt: skip
@click.option("--gil", is_flag=True, help="sample only the thread holding the GIL")
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def profile(
    pid: int | None,
    start_worker: bool,
    seconds: float,
    out: Path,
    fmt: str,
    gil: bool,
    worker_args: tuple[str, ...],
) -> None:
    """Record a flamegraph with py-spy: of --pid PID, or of a worker started with --worker
    (options after -- go to the worker, e.g. `-- --model thread --redis-url URL`)."""
    from jobrunner.dev.profiling import record

    if (pid is None) == (not start_worker):
        raise click.UsageError("give --pid PID or --worker")
    command = None
    if start_worker:
        command = [sys.executable, "-m", "jobrunner.cli", "worker", *worker_args]
    try:
        code = record(out, pid=pid, seconds=seconds if pid else None, fmt=fmt, gil=gil,
                      command=command)  # fmt: skip
    except JobrunnerError as exc:
        raise click.ClickException(str(exc)) from exc
    if code != 0 or not out.exists():
        raise click.ClickException(f"py-spy failed (exit code {code})")
    click.echo(f"wrote {out}")


@click.command("redis")
@click.option("--port", type=int, help="default: a free port")
@click.option("--appendonly", is_flag=True, help="AOF persistence, fsync every second")
@click.option("--cluster", is_flag=True, help="a Redis Cluster on loopback: 3 masters, 3 replicas")
def redis_cmd(port: int | None, appendonly: bool, cluster: bool) -> None:
    """Run a private redis-server (or Redis Cluster) in the foreground (Ctrl+C stops it)."""
    import signal

    from jobrunner.dev.redis_cluster import RedisClusterServer
    from jobrunner.dev.redis_server import RedisServer

    if cluster and (port or appendonly):
        raise click.UsageError("--cluster chooses its own ports and keeps nothing on disk")
    try:
        server = RedisClusterServer() if cluster else RedisServer(port=port, appendonly=appendonly)
        with server:
            click.echo(f"REDIS_URL={server.url}")
            sys.stdout.flush()
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except JobrunnerError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@redis_option
@click.option("--workers", default=2, show_default=True, help="worker processes")
@click.option("--model", type=click.Choice(["asyncio", "thread", "process"]), default="asyncio",
              show_default=True)  # fmt: skip
@click.option("--concurrency", type=int, help="jobs at once per worker (the model's default)")
@click.option("--schedulers", default=0, show_default=True, help="scheduler processes")
@click.option("--api/--no-api", "with_api", default=True, show_default=True)
@click.option("--port", default=8000, show_default=True, help="the API's port (0: any free one)")
@click.option("--import", "imports", multiple=True, default=["jobrunner.lab.handlers.demo"],
              show_default=True, help="module that registers handlers")  # fmt: skip
@click.option("--queues", default="default", show_default=True)
@click.option("--appendonly", is_flag=True, help="embedded Redis with AOF (fsync every second)")
@click.option("--restart/--no-restart", default=True, show_default=True,
              help="start a new worker, after a back-off, in place of one that dies")  # fmt: skip
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="keep each process's JSON log here (default: a temporary directory, removed on exit)",
)
def up(
    redis_url: str | None,
    workers: int,
    model: str,
    concurrency: int | None,
    schedulers: int,
    with_api: bool,
    port: int,
    imports: tuple[str, ...],
    queues: str,
    appendonly: bool,
    restart: bool,
    log_dir: Path | None,
) -> None:
    """Run the whole stack here: Redis (embedded unless REDIS_URL), the API, workers,
    schedulers. Type + / - / kill / scale N / status while it runs; Ctrl+C stops everything."""
    from jobrunner.dev.stack import Stack
    from jobrunner.dev.up import run_up

    stack = Stack(
        workers=workers, model=model, concurrency=concurrency, api=with_api,
        api_port=port or None, schedulers=schedulers, redis_url=redis_url,
        redis_appendonly=appendonly, imports=imports, queues=queues.split(","),
        log_dir=log_dir,
    )  # fmt: skip
    try:
        run_up(stack, sys.stdin, lambda text: click.echo(text), restart=restart)
    except JobrunnerError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def demo(args: tuple[str, ...]) -> None:
    """The demo `make demo` runs: a burst of jobs drained live (`jobrunner demo --help`)."""
    from jobrunner.dev.demo import main as run_demo

    sys.exit(run_demo(list(args)))
