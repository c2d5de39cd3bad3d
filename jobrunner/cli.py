"""The ``jobrunner`` command: the production commands here, the rest loaded only when called.

``worker``, ``scheduler``, ``enqueue``, ``job``, ``result``, ``cancel``, ``pause``, ``resume``,
``stats``, ``requeue`` and ``token`` need nothing beyond the core install. ``api`` and the lab
and development commands live beside the code they drive (``jobrunner/api/cli.py``,
``jobrunner/dev/cli.py``, ``jobrunner/lab/cli.py``, and ``archiver`` in
``jobrunner/archive/cli.py``) and are imported by name when invoked, so
``jobrunner --help`` works on a bare install and a command whose extra is missing says which
one to install instead of failing with a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jobrunner.config import Settings
from jobrunner.errors import ConfigError, RedisUnavailable, UnknownJobType
from jobrunner.logs import configure_logging
from jobrunner.tokens import SCOPES, TokenStore

if TYPE_CHECKING:
    from jobrunner.queue import ReliableQueue

T = TypeVar("T")


def settings_from(**overrides: Any) -> Settings:
    """Environment first, then every option the user actually gave; a usage error if invalid."""
    given = {k: v for k, v in overrides.items() if v is not None and v != ()}
    if isinstance(given.get("imports"), tuple):
        given["imports"] = list(given["imports"])
    try:
        return Settings.from_env(**given)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def require_redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise click.UsageError("no Redis URL: pass --redis-url or set REDIS_URL")
    return settings.redis_url


redis_option = click.option(
    "--redis-url", envvar=["JOBRUNNER_REDIS_URL", "REDIS_URL"], help="redis://host:port/db"
)
imports_option = click.option(
    "--import", "imports", multiple=True, help="module that registers handlers (repeatable)"
)
wait_replicas_option = click.option(
    "--wait-replicas", type=int,
    help="WAIT for this many replicas after each enqueue and ack (default 0: do not wait)",
)  # fmt: skip

pg_url_option = click.option(
    "--pg-url",
    help="the job history's PostgreSQL: postgresql://user@host:5432/db (JOBRUNNER_PG_URL)",
)
history_option = click.option(
    "--history", type=int,
    help="write ended jobs to each queue's history stream, bounded to about this many entries, "
         "for `jobrunner archiver` (default 0: off)",
)  # fmt: skip

log_level_option = click.option("--log-level")
log_format_option = click.option("--log-format", type=click.Choice(["json", "console", "auto"]))


@dataclass(frozen=True)
class LazyCommand:
    """A command defined in another module, imported when it is invoked (or its help asked)."""

    target: str  # "module:attribute"
    extra: str | None  # the install extra its module needs beyond the core
    summary: str  # the one line `jobrunner --help` shows without importing anything
    needs: tuple[str, ...] = ()  # modules of that extra it uses, checked before it runs

    def missing(self) -> str | None:
        """The first module it needs that is not installed (found without importing it)."""
        return next((name for name in self.needs if importlib.util.find_spec(name) is None), None)


API = ("fastapi", "uvicorn")
DEMO = (*API, "psutil", "rich", "matplotlib")
LAB = (*DEMO, "aiohttp", "urllib3", "hdrh", "pandas")
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "api": LazyCommand(
        "jobrunner.api.cli:api", "api", "Serve the HTTP API and the dashboard.", API
    ),
    "grpc": LazyCommand(
        "jobrunner.grpc.cli:grpc_cmd", "grpc", "Serve the gRPC API.", ("grpc", *API)
    ),
    "up": LazyCommand("jobrunner.dev.cli:up", "demo", "Run Redis, the API and workers here.", DEMO),
    "demo": LazyCommand("jobrunner.dev.cli:demo", "demo", "Post a burst, watch it drain.", DEMO),
    "archiver": LazyCommand(
        "jobrunner.archive.cli:archiver", "history", "Ended jobs into PostgreSQL.", ("psycopg",)
    ),
    "redis": LazyCommand("jobrunner.dev.cli:redis_cmd", None, "Run a private redis-server."),
    "profile": LazyCommand(
        "jobrunner.dev.cli:profile", "demo", "Record a py-spy flamegraph.", ("psutil",)
    ),
    "naive-worker": LazyCommand(
        "jobrunner.lab.cli:naive_worker", "lab", "The LPUSH/BRPOP teaching baseline.", LAB
    ),
    "loadgen": LazyCommand("jobrunner.lab.loadgen.cli:loadgen", "lab", "Drive load, measure.", LAB),
    "chaos": LazyCommand(
        "jobrunner.lab.chaos.cli:chaos", "lab", "Inject faults, keep a ledger.", LAB
    ),
    "experiment": LazyCommand("jobrunner.lab.cli:experiment", "lab", "Run an experiment.", LAB),
}


def _missing_extra(name: str, lazy: LazyCommand, missing: str) -> click.Command:
    """A stand-in for a command whose extra is not installed: it says what to install."""
    hint = f"pip install 'jobrunner[{lazy.extra}]'" if lazy.extra else "reinstall jobrunner"

    def explain() -> None:
        raise click.ClickException(
            f"`jobrunner {name}` needs the module {missing!r}, which is not installed: {hint}"
        )

    return click.Command(
        name,
        callback=explain,
        help=f"{lazy.summary} (needs: {hint})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        lazy = LAZY_COMMANDS.get(cmd_name)
        if lazy is None:
            return None
        missing = lazy.missing()
        if missing is not None:
            return _missing_extra(cmd_name, lazy, missing)
        module_name, attribute = lazy.target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or "?"
            if missing.split(".")[0] == "jobrunner":
                raise  # our own bug, not a missing extra: let it show
            return _missing_extra(cmd_name, lazy, missing)
        command: click.Command = getattr(module, attribute)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Errors a user can fix (a setting, a URL, an ``--import``, an unknown job type, an
        unreachable Redis) end as one line and exit status 1, not a traceback."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        try:
            return super().invoke(ctx)
        except (ConfigError, UnknownJobType, RedisUnavailable) as exc:
            raise click.ClickException(str(exc)) from None
        except RedisConnectionError as exc:
            raise click.ClickException(f"Redis is unreachable: {exc}") from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Two sections, without importing any lazy command's module."""
        core = [(name, cmd.get_short_help_str(60)) for name, cmd in sorted(self.commands.items())]
        with formatter.section("Commands"):
            formatter.write_dl(core)
        extras = [
            (name, f"{lazy.summary} [{lazy.extra}]" if lazy.extra else lazy.summary)
            for name, lazy in sorted(LAZY_COMMANDS.items())
        ]
        with formatter.section(
            "API, lab and dev commands ([EXTRA]: pip install 'jobrunner[EXTRA]')"
        ):
            formatter.write_dl(extras)


@click.group(cls=LazyGroup)
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
@imports_option
@click.option("--batch-size", type=int, help="jobs per reserve round trip")
@click.option("--prefetch", type=int, help="jobs reserved beyond concurrency (0: none; -1: auto)")
@click.option("--charge-on", type=click.Choice(["start", "reserve"]),
              help="when a delivery is charged (default: start)")  # fmt: skip
@click.option("--lease", type=float, help="seconds a reservation lasts unless renewed")
@click.option("--grace", type=float, help="seconds to finish in-flight jobs on shutdown")
@click.option("--metrics-port", type=int, help="serve Prometheus metrics on this port")
@history_option
@wait_replicas_option
@log_level_option
@log_format_option
def worker(**options: Any) -> None:
    """Process jobs until SIGINT/SIGTERM; a second signal forces a fast, lossless exit."""
    from jobrunner.registry import load_handlers
    from jobrunner.worker.entry import run_event_loop, serve

    settings = settings_from(**options)
    load_handlers(settings.imports)  # an --import that fails is one line, before anything starts
    configure_logging(settings.log_level, settings.log_format, buffered=True)
    from jobrunner import tracing

    try:
        tracing.setup(settings, "jobrunner-worker")
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        run_event_loop(serve(settings))
    finally:
        tracing.shutdown()  # the spans still buffered are exported before the process ends


def run_with_queue(
    redis_url: str | None,
    work: Callable[[ReliableQueue], Awaitable[T]],
    imports: Sequence[str] = (),
) -> T:
    """Run ``work`` with a queue on the configured Redis; clear errors instead of tracebacks."""
    from redis.exceptions import RedisError

    from jobrunner.connection import async_redis
    from jobrunner.queue import ReliableQueue
    from jobrunner.registry import load_handlers

    settings = settings_from(redis_url=redis_url)
    url = require_redis_url(settings)
    registry = load_handlers(imports)

    async def go() -> T:
        redis = async_redis(url)
        queue = ReliableQueue(redis, prefix=settings.prefix, registry=registry)
        try:
            return await work(queue)
        finally:
            await queue.aclose()
            await redis.aclose()

    try:
        return asyncio.run(go())
    except (RedisError, RedisUnavailable) as exc:
        raise click.ClickException(f"Redis at {url}: {exc}") from exc


@main.command()
@redis_option
@click.argument("job_type")
@click.argument("payload", required=False, default="null")
@click.option("--queue", help="default: the handler's queue (with --import), else 'default'")
@click.option("--count", default=1, show_default=True, help="enqueue this many copies")
@click.option("--delay", default=0.0, show_default=True, help="seconds before it is ready")
@click.option("--max-retries", type=int, help="default: the handler's option, else 3")
@click.option("--timeout", type=float, help="seconds; default: the handler's option, else 30")
@click.option("--import", "imports", multiple=True, help="module whose handlers' options apply")
def enqueue(
    redis_url: str | None,
    job_type: str,
    payload: str,
    queue: str | None,
    count: int,
    delay: float,
    max_retries: int | None,
    timeout: float | None,
    imports: tuple[str, ...],
) -> None:
    """Enqueue JOB_TYPE with a JSON PAYLOAD; prints the job ids.

    With ``--import`` an unknown JOB_TYPE is refused here, as the API refuses it; without, the
    command cannot tell and says so (a worker would dead-letter a job no handler serves)."""
    from jobrunner.job import check_job

    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PAYLOAD") from exc
    if delay < 0:
        raise click.UsageError("delay must not be negative")
    if count < 1:
        raise click.UsageError("count must be at least 1")

    async def send(q: ReliableQueue) -> list[str]:
        if not imports:
            click.echo(f"warning: without --import, {job_type!r} is not checked against the "
                       "handlers; a job no handler serves ends dead", err=True)  # fmt: skip
        jobs = [
            q.registry.new_job(job_type, data, queue=queue, max_retries=max_retries,
                               timeout=timeout)
            for _ in range(count)
        ]  # fmt: skip
        try:
            check_job(jobs[0])
        except (TypeError, ValueError) as exc:
            raise click.UsageError(str(exc)) from exc
        await q.enqueue_jobs(jobs, delay=delay, checked=True)
        return [job.id for job in jobs]

    for job_id in run_with_queue(redis_url, send, imports):
        click.echo(job_id)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain, right-aligned text table (the core has no table library)."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    first = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in
                      enumerate(zip(headers, widths, strict=True)))  # fmt: skip
    lines = [first, "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                               enumerate(zip(row, widths, strict=True))))  # fmt: skip
    return "\n".join(lines)


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

    rows = run_with_queue(redis_url, collect)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    depths = ("ready", "scheduled", "reserved", "dead")
    lifetime = ("processed", "retried")
    body = [
        [row["queue"], *(str(row[c]) for c in depths),
         *(str(row["counters"].get(c, 0)) for c in lifetime)]
        for row in rows
    ]  # fmt: skip
    click.echo(text_table(["queue", *depths, *lifetime], body))
    click.echo("(processed, retried: totals since the queue was created)")


@main.command()
@redis_option
@click.argument("ids", nargs=-1)
@click.option("--queue", default="default", show_default=True)
@click.option("--all", "everything", is_flag=True, help="requeue every dead job of the queue")
def requeue(redis_url: str | None, ids: tuple[str, ...], queue: str, everything: bool) -> None:
    """Send dead jobs back to ready (by id, or --all)."""
    if not ids and not everything:
        raise click.UsageError("give job ids or --all")
    count = run_with_queue(redis_url, lambda q: q.requeue(queue, None if everything else list(ids)))
    click.echo(f"requeued {count}")


@main.command()
@redis_option
@click.argument("queue")
@click.argument("count", type=int)
def shard(redis_url: str | None, queue: str, count: int) -> None:
    """Spread QUEUE over COUNT shards (on Redis Cluster: over the masters); grows only."""
    try:
        before = run_with_queue(redis_url, lambda q: q.declare_shards(queue, count))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{queue}: {before} -> {count} shards (producers and workers follow within "
               "5 s)")  # fmt: skip


@main.command()
@redis_option
@click.argument("ids", nargs=-1, required=True)
def cancel(redis_url: str | None, ids: tuple[str, ...]) -> None:
    """Cancel jobs: a waiting one never runs, a running one is stopped by its worker."""

    async def go(q: ReliableQueue) -> list[str]:
        return [await q.cancel(job_id) for job_id in ids]

    unknown = []
    for job_id, state in zip(ids, run_with_queue(redis_url, go), strict=True):
        click.echo(f"{job_id}\t{state or 'unknown'}")
        unknown += [job_id] if not state else []
    if unknown:
        raise click.ClickException(f"no such job: {', '.join(unknown)}")


@main.command()
@redis_option
@click.argument("queues", nargs=-1, required=True)
def pause(redis_url: str | None, queues: tuple[str, ...]) -> None:
    """Workers stop taking these queues' jobs (those running finish); enqueues still work."""
    set_paused(redis_url, queues, True)


@main.command()
@redis_option
@click.argument("queues", nargs=-1, required=True)
def resume(redis_url: str | None, queues: tuple[str, ...]) -> None:
    """Workers take these queues' jobs again."""
    set_paused(redis_url, queues, False)


def set_paused(redis_url: str | None, queues: tuple[str, ...], paused: bool) -> None:
    from jobrunner.job import check_queue_name

    for name in queues:
        try:
            check_queue_name(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="QUEUES") from None

    async def go(q: ReliableQueue) -> list[bool]:
        return [await q.pause(name, paused) for name in queues]

    word = "paused" if paused else "resumed"
    for name, changed in zip(queues, run_with_queue(redis_url, go), strict=True):
        click.echo(
            f"{name}: {word}"
            if changed
            else f"{name}: already {word.replace('resumed', 'running')}"
        )


@main.command()
@redis_option
@click.argument("job_id")
@click.option("--wait", "timeout", type=float, default=None,
              help="seconds to wait for the job to end (default: do not wait)")  # fmt: skip
def result(redis_url: str | None, job_id: str, timeout: float | None) -> None:
    """Print a job's result as JSON (its state and last error if it has none)."""
    from jobrunner.calls import FINAL_STATES
    from jobrunner.client import Client, outcome_of
    from jobrunner.errors import JobCancelled, JobFailed, UnknownJob

    async def go(q: ReliableQueue) -> Any:
        client = Client(q.redis, prefix=q.prefix, registry=q.registry)
        if timeout is None:
            record = await client.get(job_id)
            if record is not None and record.state not in FINAL_STATES:
                raise click.ClickException(f"job {job_id} is {record.state}: no result yet")
            return outcome_of(job_id, record)
        return await client.result(job_id, timeout=timeout)

    try:
        value = run_with_queue(redis_url, go)
    except (JobFailed, JobCancelled, UnknownJob, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(value))


@main.command("job")
@redis_option
@click.argument("job_id")
def show_job(redis_url: str | None, job_id: str) -> None:
    """Print a job's record as JSON: state, attempts, last error, timestamps, payload, result."""
    import msgspec

    record = run_with_queue(redis_url, lambda q: q.get_job(job_id))
    if record is None:
        raise click.ClickException(f"no job {job_id!r} (or its record expired)")
    click.echo(msgspec.json.format(msgspec.json.encode(record)).decode())


@main.group()
def token() -> None:
    """API tokens: create (shown once, stored hashed), list, revoke."""


def run_with_tokens(redis_url: str | None, work: Callable[[TokenStore], Awaitable[T]]) -> T:
    return run_with_queue(redis_url, lambda q: work(TokenStore(q.redis, q.prefix)))


@token.command("create")
@redis_option
@click.option("--name", required=True, help="who or what uses it, e.g. ci-producer")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), required=True,
              help="repeatable: enqueue, read, admin, metrics")  # fmt: skip
@click.option("--queue", "queues", multiple=True, help="bind it to these queues (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def token_create(
    redis_url: str | None, name: str, scopes: tuple[str, ...], queues: tuple[str, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """Create a token; it is printed once and only its hash is kept."""
    try:
        made, record = run_with_tokens(redis_url, lambda s: s.create(name, scopes, queues))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"token": made, **record.public()}))
        return
    click.echo(made)
    where = ", ".join(record.queues) or "every queue"
    click.echo(f"(id {record.id}, scopes {', '.join(record.scopes)}, {where}: "
               "keep it now, it cannot be shown again)", err=True)  # fmt: skip


@token.command("list")
@redis_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def token_list(redis_url: str | None, as_json: bool) -> None:
    """Every token's id, name, scopes and queues (never the token)."""
    records = run_with_tokens(redis_url, lambda s: s.list())
    if as_json:
        click.echo(json.dumps([r.public() for r in records], indent=2))
        return
    rows = [[r.id, r.name, ",".join(r.scopes), ",".join(r.queues) or "*"] for r in records]
    click.echo(text_table(["id", "name", "scopes", "queues"], rows))


@token.command("revoke")
@redis_option
@click.argument("token_id")
def token_revoke(redis_url: str | None, token_id: str) -> None:
    """Revoke a token by id (API processes stop accepting it within token_cache_seconds)."""
    if not run_with_tokens(redis_url, lambda s: s.revoke(token_id)):
        raise click.ClickException(f"no token with id {token_id!r}")
    click.echo(f"revoked {token_id}")


@main.command("redis-acl")
@click.option("--user", default="jobrunner", show_default=True)
@click.option("--prefix", default="jr", show_default=True, help="the key prefix (JOBRUNNER_PREFIX)")
def redis_acl(user: str, prefix: str) -> None:
    """Print the ACL SETUSER command for a Redis user that can run jobrunner and nothing else."""
    from jobrunner.acl import acl_rule

    click.echo("ACL SETUSER " + " ".join(acl_rule(user, "<password>", prefix)))


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
@log_level_option
@log_format_option
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

    settings = settings_from(redis_url=redis_url, imports=imports, log_level=log_level,
                             log_format=log_format, metrics_port=metrics_port)  # fmt: skip
    url = require_redis_url(settings)
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
    from jobrunner import tracing

    try:  # a fired job carries its enqueue span's context, as one a client enqueued does
        tracing.setup(settings, "jobrunner-scheduler")
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        run_event_loop(
            serve_scheduler(
                url, schedules, prefix=settings.prefix, ttl=ttl,
                poll_interval=poll_interval, registry=registry, scheduler_id=scheduler_id,
                metrics_port=settings.metrics_port,
            )
        )  # fmt: skip
    finally:
        tracing.shutdown()


if __name__ == "__main__":  # pragma: no cover
    main()
