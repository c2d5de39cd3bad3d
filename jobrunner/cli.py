"""The ``jobrunner`` command: worker, enqueue, stats, requeue, an embedded Redis, the demo."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jobrunner.config import Settings
from jobrunner.errors import RedisUnavailable
from jobrunner.lab.experiments import EXPERIMENTS
from jobrunner.logs import configure_logging

if TYPE_CHECKING:
    from jobrunner.queue import ReliableQueue

T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    """Environment first, then every option the user actually gave."""
    given = {k: v for k, v in overrides.items() if v is not None and v != ()}
    try:
        return Settings(**given)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


redis_option = click.option(
    "--redis-url", envvar=["JOBRUNNER_REDIS_URL", "REDIS_URL"], help="redis://host:port/db"
)


@click.group()
@click.version_option(package_name="jobrunner")
def main() -> None:
    """A Redis-backed background job system, and a lab to measure it."""


@main.command()
@redis_option
@click.option(
    "--model", type=click.Choice(["asyncio", "thread", "process"]), help="where handlers run"
)
@click.option("--concurrency", type=int, help="jobs at once (asyncio 100, thread 16, process 2)")
@click.option("--queues", help="comma-separated, highest priority first (default: default)")
@click.option("--import", "imports", multiple=True, help="module that registers handlers")
@click.option("--batch-size", type=int, help="jobs per reserve round trip")
@click.option("--lease", type=float, help="seconds a reservation lasts unless renewed")
@click.option("--grace", type=float, help="seconds to finish in-flight jobs on shutdown")
@click.option("--metrics-port", type=int, help="serve Prometheus metrics on this port")
@click.option("--log-level")
@click.option("--log-format", type=click.Choice(["json", "console", "auto"]))
def worker(**options: Any) -> None:
    """Process jobs until SIGINT/SIGTERM; a second signal forces a fast, lossless exit."""
    from jobrunner.worker.entry import run_event_loop, serve

    if options.get("imports"):
        options["imports"] = list(options["imports"])
    settings = _settings(**options)
    configure_logging(settings.log_level, settings.log_format, buffered=True)
    run_event_loop(serve(settings))


@main.command()
@redis_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--import", "imports", multiple=True, help="module that registers handlers")
@click.option("--max-queue-depth", type=int, help="waiting jobs above which POST /jobs is a 429")
@click.option(
    "--debug-routes", is_flag=True, default=None, help="serve /debug/profile, /debug/heap"
)
@click.option("--log-level")
@click.option("--log-format", type=click.Choice(["json", "console", "auto"]))
def api(host: str, port: int, **options: Any) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) on uvloop."""
    from jobrunner.api import create_app
    from jobrunner.api.server import run_api

    if options.get("imports"):
        options["imports"] = list(options["imports"])
    settings = _settings(**options)
    if not settings.redis_url:
        raise click.UsageError("no Redis URL: pass --redis-url or set REDIS_URL")
    configure_logging(settings.log_level, settings.log_format)
    run_api(create_app(settings), host=host, port=port)


@main.command("naive-worker")
@redis_option
@click.option("--concurrency", type=int, help="jobs at once (default 1)")
@click.option("--queues", help="comma-separated, highest priority first (default: default)")
@click.option("--import", "imports", multiple=True, help="module that registers handlers")
@click.option("--log-level")
@click.option("--log-format", type=click.Choice(["json", "console", "auto"]))
def naive_worker(**options: Any) -> None:
    """TEACHING BASELINE: the LPUSH/BRPOP worker; a killed worker loses its in-flight jobs."""
    from jobrunner.lab.naive import serve_naive
    from jobrunner.worker.entry import run_event_loop

    if options.get("imports"):
        options["imports"] = list(options["imports"])
    settings = _settings(**options)
    configure_logging(settings.log_level, settings.log_format)
    run_event_loop(serve_naive(settings))


def _run_with_queue(
    redis_url: str | None,
    work: Callable[[ReliableQueue], Awaitable[T]],
    imports: Sequence[str] = (),
) -> T:
    """Run ``work`` with a queue on the configured Redis; clear errors instead of tracebacks."""
    from redis.exceptions import RedisError

    from jobrunner.connection import async_redis
    from jobrunner.queue import ReliableQueue
    from jobrunner.registry import load_handlers

    settings = _settings(redis_url=redis_url)
    if not settings.redis_url:
        raise click.UsageError("no Redis URL: pass --redis-url or set REDIS_URL")
    registry = load_handlers(imports)

    async def go() -> T:
        redis = async_redis(settings.redis_url)
        try:
            return await work(ReliableQueue(redis, prefix=settings.prefix, registry=registry))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(go())
    except (RedisError, RedisUnavailable) as exc:
        raise click.ClickException(f"Redis at {settings.redis_url}: {exc}") from exc


@main.command()
@redis_option
@click.argument("job_type")
@click.argument("payload", required=False, default="null")
@click.option("--queue", default="default", show_default=True)
@click.option("--count", default=1, show_default=True, help="enqueue this many copies")
@click.option("--delay", default=0.0, show_default=True, help="seconds before it is ready")
@click.option("--max-retries", type=int, help="default: the handler's option, else 3")
@click.option("--timeout", type=float, help="seconds; default: the handler's option, else 30")
@click.option("--import", "imports", multiple=True, help="module whose handlers' options apply")
def enqueue(
    redis_url: str | None,
    job_type: str,
    payload: str,
    queue: str,
    count: int,
    delay: float,
    max_retries: int | None,
    timeout: float | None,
    imports: tuple[str, ...],
) -> None:
    """Enqueue JOB_TYPE with a JSON PAYLOAD; prints the job ids."""
    from jobrunner.job import Job, check_job, new_job_id

    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PAYLOAD") from exc
    jobs = [
        Job(id=new_job_id(), type=job_type, payload=data, queue=queue,
            max_retries=max_retries, timeout=timeout)
        for _ in range(count)
    ]  # fmt: skip
    try:
        for job in jobs[:1]:
            check_job(job)
        if delay < 0:
            raise ValueError("delay must not be negative")
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    _run_with_queue(redis_url, lambda q: q.enqueue_jobs(jobs, delay=delay), imports)
    for job in jobs:
        click.echo(job.id)


@main.command()
@redis_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def stats(redis_url: str | None, as_json: bool) -> None:
    """Depths now, and lifetime counters, of every queue."""

    async def collect(q: ReliableQueue) -> list[dict[str, Any]]:
        out = []
        for name in await q.queue_names():
            s = await q.stats(name)
            depths = {"ready": s.ready, "scheduled": s.scheduled, "reserved": s.reserved}
            out.append({"queue": name, **depths, "dead": s.dead, "counters": s.counters})
        return out

    rows = _run_with_queue(redis_url, collect)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    depths = ("ready", "scheduled", "reserved", "dead")
    lifetime = ("processed", "retried")
    table = Table("queue", *depths, *lifetime, caption="processed, retried: totals since creation")
    for row in rows:
        table.add_row(
            row["queue"],
            *(str(row[c]) for c in depths),
            *(str(row["counters"].get(c, 0)) for c in lifetime),
        )
    Console().print(table)


@main.command()
@redis_option
@click.argument("ids", nargs=-1)
@click.option("--queue", default="default", show_default=True)
@click.option("--all", "everything", is_flag=True, help="requeue every dead job of the queue")
def requeue(redis_url: str | None, ids: tuple[str, ...], queue: str, everything: bool) -> None:
    """Send dead jobs back to ready (by id, or --all)."""
    if not ids and not everything:
        raise click.UsageError("give job ids or --all")
    count = _run_with_queue(
        redis_url, lambda q: q.requeue(queue, None if everything else list(ids))
    )
    click.echo(f"requeued {count}")


@main.command()
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
    from jobrunner.errors import JobrunnerError

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


@main.command("redis")
@click.option("--port", type=int, help="default: a free port")
@click.option("--appendonly", is_flag=True, help="AOF persistence, fsync every second")
def redis_cmd(port: int | None, appendonly: bool) -> None:
    """Run a private redis-server in the foreground (Ctrl+C stops it)."""
    import signal

    from jobrunner.dev.redis_server import RedisServer

    with RedisServer(port=port, appendonly=appendonly) as server:
        click.echo(f"REDIS_URL={server.url}")
        sys.stdout.flush()
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


@main.command()
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
    log_dir: Path | None,
) -> None:
    """Run the whole stack here: Redis (embedded unless REDIS_URL), the API, workers,
    schedulers. Type + / - / kill / scale N / status while it runs; Ctrl+C stops everything."""
    from jobrunner.dev.stack import Stack
    from jobrunner.dev.up import run_up
    from jobrunner.errors import JobrunnerError

    stack = Stack(
        workers=workers, model=model, concurrency=concurrency, api=with_api,
        api_port=port or None, schedulers=schedulers, redis_url=redis_url,
        redis_appendonly=appendonly, imports=imports, queues=queues.split(","),
        log_dir=log_dir,
    )  # fmt: skip
    try:
        run_up(stack, sys.stdin, lambda text: click.echo(text))
    except JobrunnerError as exc:
        raise click.ClickException(str(exc)) from exc


def _add_loadgen() -> None:
    from jobrunner.lab.loadgen.cli import loadgen

    main.add_command(loadgen)


_add_loadgen()


def _add_chaos() -> None:
    from jobrunner.lab.chaos.cli import chaos

    main.add_command(chaos)


_add_chaos()


@main.command()
@click.argument("name", type=click.Choice(EXPERIMENTS), metavar="NAME")
@click.option("--full", is_flag=True, help="the full-size run (minutes) instead of the small one")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="directory for <name>.csv, .json and .png")  # fmt: skip
@click.pass_context
def experiment(ctx: click.Context, name: str, full: bool, out: Path) -> None:
    """Run an experiment: backoff_sim, backoff_live, limiter_accuracy or backpressure; write
    OUT/NAME.{csv,json,png} (as python -m jobrunner.lab.experiments.NAME does)."""
    from importlib import import_module

    command = import_module(f"jobrunner.lab.experiments.{name}").main
    ctx.invoke(command, full=full, out=out)  # the experiment's other options keep their defaults


@main.command()
@redis_option
@click.option("--import", "imports", multiple=True,
              help="module declaring schedules (@periodic, SCHEDULES) and handlers")  # fmt: skip
@click.option("--schedules", "schedules_file", help="TOML file of [[schedule]] entries",
              type=click.Path(dir_okay=False, path_type=Path))  # fmt: skip
@click.option("--ttl", type=float, default=10.0, show_default=True,
              envvar="JOBRUNNER_SCHEDULER_TTL",
              help="seconds the leader lock lasts unless renewed")  # fmt: skip
@click.option("--poll-interval", type=float, default=1.0, show_default=True,
              envvar="JOBRUNNER_SCHEDULER_POLL_INTERVAL",
              help="longest sleep between checks; followers retry the lock this often")  # fmt: skip
@click.option("--id", "scheduler_id", help="this scheduler's name (default: host-pid-random)")
@click.option("--metrics-port", type=int, help="serve Prometheus metrics on this port")
@click.option("--log-level")
@click.option("--log-format", type=click.Choice(["json", "console", "auto"]))
def scheduler(
    redis_url: str | None,
    imports: tuple[str, ...],
    schedules_file: Path | None,
    ttl: float,
    poll_interval: float,
    scheduler_id: str | None,
    metrics_port: int | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Fire periodic jobs; run several for failover: one leads, each slot is enqueued once."""
    from jobrunner.registry import load_handlers
    from jobrunner.scheduler.config import load_schedules
    from jobrunner.scheduler.entry import serve_scheduler
    from jobrunner.scheduler.schedule import ScheduleError
    from jobrunner.worker.entry import run_event_loop

    settings = _settings(redis_url=redis_url, imports=list(imports), log_level=log_level,
                         log_format=log_format, metrics_port=metrics_port)  # fmt: skip
    if not settings.redis_url:
        raise click.UsageError("no Redis URL: pass --redis-url or set REDIS_URL")
    if not ttl > 0 or not poll_interval > 0:
        raise click.UsageError("--ttl and --poll-interval must be positive")
    configure_logging(settings.log_level, settings.log_format)
    try:
        registry = load_handlers(settings.imports)
        schedules = load_schedules(settings.imports, schedules_file)
    except ScheduleError as exc:
        raise click.UsageError(str(exc)) from exc
    if not schedules:
        click.echo("warning: no schedules declared (--import, --schedules)", err=True)
    run_event_loop(
        serve_scheduler(
            settings.redis_url, schedules, prefix=settings.prefix, ttl=ttl,
            poll_interval=poll_interval, registry=registry, scheduler_id=scheduler_id,
            metrics_port=settings.metrics_port,
        )
    )  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    main()
