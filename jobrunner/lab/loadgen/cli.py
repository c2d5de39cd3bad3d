"""``jobrunner loadgen``: options to a LoadSpec, a run, a printed summary, files in results/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from jobrunner.lab.loadgen.spec import LoadSpec, parse_mix

if TYPE_CHECKING:
    from jobrunner.lab.loadgen.result import LoadResult


@click.command("loadgen")
@click.option("--target", type=click.Choice(["http", "queue"]), default="http", show_default=True)
@click.option("--url", help="the API (http) or Redis (queue) URL; default: 127.0.0.1:8000 / "
              "REDIS_URL")  # fmt: skip
@click.option("--redis-url", envvar=["JOBRUNNER_REDIS_URL", "REDIS_URL"],
              help="where to read finish times for end-to-end latency (http target)")  # fmt: skip
@click.option("--token", envvar="JOBRUNNER_TOKEN", default="",
              help="the API token (enqueue scope); JOBRUNNER_TOKEN")  # fmt: skip
@click.option("--model", type=click.Choice(["asyncio", "thread", "process"]), default="asyncio",
              show_default=True)  # fmt: skip
@click.option("--concurrency", "-c", default=16, show_default=True, help="clients in all")
@click.option("--processes", default=2, show_default=True, help="for --model process")
@click.option("--rate", type=float, help="jobs per second: an open loop (else closed)")
@click.option("--jobs", "total", type=int, help="jobs to send (default 10,000 without --duration)")
@click.option("--duration", type=float, help="seconds to send for")
@click.option("--batch", default=1, show_default=True, help="jobs per request")
@click.option("--mix", default="noop", show_default=True, help='e.g. "noop=0.8,email=0.2"')
@click.option("--payload-bytes", default=0, show_default=True)
@click.option("--queue", default="default", show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--wait", "wait_for_completion", default=60.0, show_default=True,
              help="seconds to wait for the jobs to finish")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True)  # fmt: skip
@click.option("--name", help="file name stem (default: loadgen-<target>-<model>-<loop>-<time>)")
@click.option("--no-progress", is_flag=True)
def loadgen(
    url: str | None, redis_url: str | None, total: int | None, duration: float | None,
    rate: float | None, mix: str, out: Path, name: str | None, no_progress: bool, **options: Any,
) -> None:  # fmt: skip
    """Drive load at the API or the queue and report HDR latency percentiles."""
    try:
        spec = LoadSpec(
            url=url or (redis_url if options["target"] == "queue" else None)
            or ("http://127.0.0.1:8000" if options["target"] == "http" else ""),
            loop="open" if rate else "closed", rate=rate or 0.0,
            total=total if total or duration else 10_000, duration=duration,
            mix=parse_mix(mix), **options,
        ).check()  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not spec.url:
        raise click.UsageError("the queue target needs --url redis://... or REDIS_URL")
    from jobrunner.lab.loadgen.run import run_load  # heavy imports only when load is sent

    result = run_load(spec, redis_url=redis_url, progress=not no_progress)
    stem = name or f"loadgen-{spec.target}-{spec.model}-{spec.loop}-{time.strftime('%H%M%S')}"
    paths = result.write(out, stem)
    print_summary(result)
    click.echo(f"summary: {paths['summary']}   samples: {paths['requests']}, {paths['jobs']}")


def print_summary(result: LoadResult) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary()
    console = Console()
    counts = Table(title="load", show_header=False)
    for key in ("requests", "requests_ok", "statuses", "jobs_acknowledged", "jobs_done",
                "jobs_dead", "jobs_unfinished", "send_seconds", "send_rate_rps",
                "enqueue_rate_jobs_per_s", "drain_rate_jobs_per_s"):  # fmt: skip
        counts.add_row(key, str(s[key]))
    console.print(counts)
    latency = Table(title="latency (ms)")
    latency.add_column("")
    columns = ("p50", "p90", "p99", "p99.9", "max", "mean", "count")
    for column in columns:
        latency.add_column(column, justify="right")
    for kind, figures in s["latency_ms"].items():
        if figures:
            latency.add_row(kind, *(f"{figures[c]:,}" for c in columns))
    console.print(latency)
