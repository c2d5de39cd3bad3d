"""Backpressure: a producer faster than the workers, with and without the API's queue bound.

One worker drains ``email`` jobs (50 ms each, ``concurrency`` at once) more slowly than an
open-loop producer posts them to ``POST /jobs``. Without a bound the backlog, Redis's memory and
every later job's end-to-end latency grow for as long as the producer keeps going; with
``JOBRUNNER_MAX_QUEUE_DEPTH`` the API answers 429 + ``Retry-After`` above the bound, the backlog
stays at the bound and the accepted jobs' latency stays near ``bound / drain rate``.

Queue depth and ``INFO memory`` ``used_memory`` are sampled every ``sample_every`` seconds while
the load runs. The workers keep no record of a finished job (``JOBRUNNER_RESULT_TTL=0``), so the
memory is the queue's own; finish times come from the workers' one log line per job.

``python -m jobrunner.lab.experiments.backpressure [--full] [--out results]``
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import redis

from jobrunner.dev.stack import Stack, wait_for
from jobrunner.keys import QueueKeys
from jobrunner.lab.experiments.output import RESULTS, figure, save_figure, write_csv, write_json
from jobrunner.lab.loadgen import LoadResult, LoadSpec, run_load

RUNS = ("unbounded", "bounded")
MIB = 2**20


@dataclass(frozen=True)
class Setup:
    """The producer offers ``rate`` jobs/s for ``seconds``; one asyncio worker runs ``email``
    jobs (50 ms of simulated I/O) ``concurrency`` at once, so it drains about
    ``concurrency / 0.05`` jobs/s, less its own overhead."""

    rate: float = 160.0
    seconds: float = 8.0
    concurrency: int = 4
    bound: int = 100  # JOBRUNNER_MAX_QUEUE_DEPTH in the bounded run
    payload_bytes: int = 2048  # per job, so the backlog's memory stands out from Redis's own
    clients: int = 32  # open-loop HTTP clients (enough that none waits for another)
    sample_every: float = 0.25
    repeats: int = 1
    drain_timeout: float = 300.0

    @property
    def nominal_drain_rate(self) -> float:
        return self.concurrency / 0.05


SMALL = Setup()
FULL = Setup(seconds=20.0, repeats=3)


@dataclass
class Sample:
    t: float  # seconds since the load's first request
    ready: int
    scheduled: int
    reserved: int
    used_memory: int  # bytes, INFO memory


@dataclass
class Run:
    kind: str  # "unbounded" or "bounded"
    repeat: int
    samples: list[Sample]
    accepted: list[tuple[float, float | None]]  # per accepted job: (sent at, e2e seconds)
    requests: list[tuple[float, int]]  # per request: (intended start, HTTP status)
    load: dict[str, Any]  # LoadResult.summary()
    finished_at: float  # seconds after the first request, when the queue was empty again
    summary: dict[str, Any] = field(default_factory=dict)


class Sampler:
    """Reads queue depth and Redis memory every ``interval`` seconds in a thread of its own."""

    def __init__(self, redis_url: str, queue: str, interval: float) -> None:
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._keys = QueueKeys(queue)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self.rows: list[tuple[float, int, int, int, int]] = []  # wall time, then counts
        self.error: BaseException | None = None

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()

    def _loop(self) -> None:
        try:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self.rows.append(self.read())
                next_at += self._interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by the caller, not lost in the thread
            self.error = exc

    def has_sampled_since(self, moment: float) -> bool:
        """Whether a sample was taken after ``moment``; re-raises what stopped the sampling."""
        if self.error is not None:
            raise self.error
        return bool(self.rows) and self.rows[-1][0] > moment

    def read(self) -> tuple[float, int, int, int, int]:
        with self._client.pipeline(transaction=False) as pipe:
            pipe.llen(self._keys.ready)
            pipe.zcard(self._keys.scheduled)
            pipe.zcard(self._keys.reserved)
            pipe.info("memory")
            ready, scheduled, reserved, memory = pipe.execute()
        return time.time(), ready, scheduled, reserved, int(memory["used_memory"])


def finish_times(log_dir: Path) -> dict[str, float]:
    """Job id -> when its handler finished, from the workers' JSON log lines (epoch seconds)."""
    out: dict[str, float] = {}
    for path in sorted(log_dir.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("event") == "job" and record.get("result") == "done":
                out[record["job_id"]] = float(record["timestamp"])
    return out


def run_one(setup: Setup, kind: str, repeat: int, log_dir: Path) -> Run:
    """One stack (Redis, API, one worker), one open-loop load, sampled until the queue is empty."""
    bounded = kind == "bounded"
    api_args = ["--max-queue-depth", str(setup.bound)] if bounded else []
    env = {"JOBRUNNER_PREFETCH": "0", "JOBRUNNER_RESULT_TTL": "0",
           "JOBRUNNER_IDLE_POLL_MAX": "0.01"}  # fmt: skip
    logs = log_dir / f"{kind}-{repeat}"
    with Stack(workers=1, model="asyncio", concurrency=setup.concurrency, api_args=api_args,
               env=env, log_dir=logs, worker_metrics=False) as stack:  # fmt: skip
        assert stack.api_url is not None
        spec = LoadSpec(target="http", url=stack.api_url, token=stack.api_token,
                        model="asyncio", loop="open",
                        rate=setup.rate, duration=setup.seconds, total=None,
                        concurrency=setup.clients, mix={"email": 1.0},
                        payload_bytes=setup.payload_bytes, seed=repeat)  # fmt: skip
        with Sampler(stack.redis_url, spec.queue, setup.sample_every) as sampler:
            # No Redis URL: run_load does not wait for the jobs (their records are not kept);
            # the queue's emptying is waited for here, while the sampler keeps reading.
            result = run_load(spec, redis_url=None, progress=False)
            stack.wait_idle(spec.queue, timeout=setup.drain_timeout)
            emptied = time.time()
            wait_for(lambda: sampler.has_sampled_since(emptied), 5, "a sample of the empty queue")
    # After the stack stopped: every worker flushed its log.
    done = finish_times(logs)
    finished: dict[str, tuple[str, float | None]] = {
        job_id: ("done", done[job_id]) for job_id, _ in result.samples.jobs if job_id in done
    }
    load = LoadResult(spec, result.samples, finished, t0=result.t0, sent_done=result.sent_done)
    t0 = result.t0
    samples = [Sample(round(t - t0, 3), ready, scheduled, reserved, memory)
               for t, ready, scheduled, reserved, memory in sampler.rows]  # fmt: skip
    accepted = [(origin - t0, done[job_id] - origin if job_id in done else None)
                for job_id, origin in result.samples.jobs]  # fmt: skip
    requests = [(intended - t0, status) for _, intended, _, _, status, _ in result.samples.requests]
    run = Run(kind, repeat, samples, accepted, requests, load.summary(),
              finished_at=round(emptied - t0, 3))  # fmt: skip
    run.summary = summarise(run, setup)
    return run


def summarise(run: Run, setup: Setup) -> dict[str, Any]:
    """The figures one run is judged by."""
    during = [s for s in run.samples if 0 <= s.t <= setup.seconds]
    # The baseline is the last sample, taken with the queue empty again: the API's Redis
    # connections (and their buffers) are open by then, as they were during the load.
    baseline = run.samples[-1].used_memory if run.samples else 0
    peak = max((s.used_memory for s in run.samples), default=0) - baseline
    max_waiting = max((s.ready + s.scheduled for s in during), default=0)
    e2e = sorted(e for _, e in run.accepted if e is not None)
    last_second = sorted(e for t, e in run.accepted if e is not None and t >= setup.seconds - 1)
    first_seconds = sorted(e for t, e in run.accepted if e is not None and t < 2)
    statuses = run.load["statuses"]
    done = len(e2e)
    return {
        "requests": len(run.requests),
        "accepted": int(statuses.get("202", 0)),
        "rejected_429": int(statuses.get("429", 0)),
        "other_statuses": {k: v for k, v in statuses.items() if k not in ("202", "429")},
        "jobs_done": done,
        "jobs_unfinished": len(run.accepted) - done,
        "drain_rate_jobs_per_s": round(done / run.finished_at, 1) if run.finished_at else None,
        "max_waiting": max_waiting,
        "waiting_at_end_of_load": _at(run.samples, setup.seconds, lambda s: s.ready + s.scheduled),
        "redis_used_memory_empty_queue_mib": round(baseline / MIB, 2),
        "redis_used_memory_peak_above_empty_mib": round(peak / MIB, 2),
        "redis_bytes_per_waiting_job": round(peak / max_waiting) if max_waiting else None,
        "e2e_ms": _percentiles(e2e),
        "e2e_ms_first_2s_of_load": _percentiles(first_seconds),
        "e2e_ms_last_1s_of_load": _percentiles(last_second),
        "e2e_growth_s_per_s_second_half": latency_growth(run, setup),
        "queue_empty_after_s": run.finished_at,
    }


def latency_growth(run: Run, setup: Setup) -> float | None:
    """Seconds of end-to-end latency added per second of sending, over the load's second half
    (a least-squares slope): about (offered - drained) / drained without a bound, 0 with one."""
    points = [(t, e) for t, e in run.accepted if e is not None and t >= setup.seconds / 2]
    if len(points) < 2 or len({t for t, _ in points}) < 2:
        return None
    fit = statistics.linear_regression([t for t, _ in points], [e for _, e in points])
    return round(fit.slope, 3)


def _at(samples: list[Sample], t: float, value: Any) -> int | None:
    before = [s for s in samples if s.t <= t]
    return int(value(before[-1])) if before else None


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": pick(0.5), "p99": pick(0.99), "max": round(ordered[-1] * 1000, 1),
            "count": len(ordered)}  # fmt: skip


def per_second(run: Run, horizon: float) -> list[dict[str, Any]]:
    """Requests accepted and refused, and the accepted jobs' latency, per second of sending."""
    rows = []
    for second in range(int(horizon + 0.999)):
        statuses = [s for t, s in run.requests if second <= t < second + 1]
        e2e = [e for t, e in run.accepted if e is not None and second <= t < second + 1]
        stats = _percentiles(e2e)
        rows.append({"t": second, "accepted": sum(1 for s in statuses if s == 202),
                     "rejected_429": sum(1 for s in statuses if s == 429),
                     "e2e_p50_ms": stats.get("p50"), "e2e_max_ms": stats.get("max")})  # fmt: skip
    return rows


def run_all(setup: Setup, log_dir: Path | None = None) -> list[Run]:
    """Unbounded and bounded, alternating, ``repeats`` times each (a noisy machine drifts)."""
    base = log_dir or Path(tempfile.mkdtemp(prefix="jobrunner-backpressure-"))
    return [run_one(setup, kind, repeat, base) for repeat in range(setup.repeats) for kind in RUNS]


def spread(runs: list[Run], key: str, sub: str | None = None) -> dict[str, Any]:
    """min / median / max of one summary figure over the repeats of each kind."""
    out: dict[str, Any] = {}
    for kind in RUNS:
        values = [r.summary[key] if sub is None else r.summary[key].get(sub) for r in runs
                  if r.kind == kind]  # fmt: skip
        values = [v for v in values if v is not None]
        if values:
            out[kind] = {"min": min(values), "median": statistics.median(values),
                         "max": max(values)}  # fmt: skip
    return out


def write(runs: list[Run], setup: Setup, out: Path, elapsed: float) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for r in runs:
        for s in r.samples:
            for metric, value in (
                ("waiting_jobs", s.ready + s.scheduled),
                ("in_flight_jobs", s.reserved),
                ("redis_used_memory_mib", round(s.used_memory / MIB, 4)),
            ):
                rows.append({"run": r.kind, "repeat": r.repeat, "t_s": s.t, "metric": metric,
                             "value": value})  # fmt: skip
        for row in per_second(r, setup.seconds):
            for metric in ("accepted", "rejected_429", "e2e_p50_ms", "e2e_max_ms"):
                rows.append({"run": r.kind, "repeat": r.repeat, "t_s": row["t"],
                             "metric": f"{metric}_per_second_of_sending"
                             if metric in ("accepted", "rejected_429") else metric,
                             "value": row[metric]})  # fmt: skip
    write_csv(out / "backpressure.csv", rows)
    summary = {
        "experiment": "backpressure: an open-loop producer faster than one worker, "
        "with and without the API's queue bound (JOBRUNNER_MAX_QUEUE_DEPTH)",
        "setup": {**asdict(setup), "nominal_drain_rate_jobs_per_s": setup.nominal_drain_rate},
        "note": "Redis, the API, the worker and the load generator share the machine's 2 cores. "
        "Workers ran with JOBRUNNER_RESULT_TTL=0 (no finished-job records), so used_memory is "
        "the queue's; with the default 600 s every finished job's record also stays that long.",
        "runs": [{"run": r.kind, "repeat": r.repeat, **r.summary} for r in runs],
        "spread_over_repeats": {
            "max_waiting": spread(runs, "max_waiting"),
            "rejected_429": spread(runs, "rejected_429"),
            "drain_rate_jobs_per_s": spread(runs, "drain_rate_jobs_per_s"),
            "redis_used_memory_peak_above_empty_mib": spread(
                runs, "redis_used_memory_peak_above_empty_mib"
            ),
            "redis_bytes_per_waiting_job": spread(runs, "redis_bytes_per_waiting_job"),
            "e2e_growth_s_per_s_second_half": spread(runs, "e2e_growth_s_per_s_second_half"),
            "e2e_p99_ms": spread(runs, "e2e_ms", "p99"),
            "e2e_max_ms": spread(runs, "e2e_ms", "max"),
        },
        "elapsed_seconds": elapsed,
    }
    write_json(out / "backpressure.json", summary)
    plot(runs, setup, out / "backpressure.png")
    return summary


COLOURS = {"unbounded": "tab:red", "bounded": "tab:blue"}


def plot(runs: list[Run], setup: Setup, path: Path) -> Path:
    fig, axes = figure(2, 2, (13, 8))
    depth, memory = axes[0]
    latency, rates = axes[1]
    for r in runs:
        label = f"{r.kind} (repeat {r.repeat + 1})" if setup.repeats > 1 else r.kind
        style = {"color": COLOURS[r.kind], "lw": 1.2, "alpha": 1.0 if r.repeat == 0 else 0.5}
        ts = [s.t for s in r.samples]
        depth.plot(ts, [s.ready + s.scheduled for s in r.samples], label=label, **style)
        memory.plot(ts, [s.used_memory / MIB for s in r.samples], label=label, **style)
        sent = [(t, e) for t, e in r.accepted if e is not None]
        latency.scatter([t for t, _ in sent], [e for _, e in sent], s=2, color=COLOURS[r.kind],
                        alpha=0.3 if r.repeat == 0 else 0.15, label=label)  # fmt: skip
        if r.kind == "bounded":
            bins = per_second(r, setup.seconds)
            edges = [b["t"] for b in bins] + [len(bins)]  # the last second drawn to its end
            for key, colour, what in (
                ("accepted", "tab:blue", "accepted (202)"),
                ("rejected_429", "tab:orange", "refused (429)"),
            ):
                counts = [b[key] for b in bins]
                rates.step(edges, [*counts, counts[-1]], where="post", color=colour,
                           alpha=style["alpha"],
                           label=f"bounded: {what}" if r.repeat == 0 else None)  # fmt: skip
    for ax in (depth, memory, latency, rates):
        ax.axvspan(0, setup.seconds, color="grey", alpha=0.08)
        ax.set_xlabel("seconds since the first request (shaded: producer sending)")
    depth.axhline(setup.bound, color="black", ls=":", lw=1, label=f"bound ({setup.bound})")
    depth.set(ylabel="waiting jobs (ready + scheduled)", title="queue depth")
    memory.set(ylabel="Redis used_memory (MiB)", title="Redis memory (INFO memory)")
    latency.set(ylabel="end-to-end latency (s)",
                title="accepted jobs: due time of the request to the job's finish")  # fmt: skip
    rates.axhline(setup.rate, color="black", ls=":", lw=1, label=f"offered ({setup.rate:g}/s)")
    rates.axhline(setup.nominal_drain_rate, color="grey", ls="--", lw=1,
                  label=f"nominal drain ({setup.nominal_drain_rate:g}/s)")  # fmt: skip
    rates.set(ylabel="requests per second", title="bounded run: what the API answered",
              ylim=(0, setup.rate * 1.25))  # fmt: skip
    for ax in (depth, memory, latency, rates):
        ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)


@click.command()
@click.option("--full", is_flag=True,
              help=f"{FULL.seconds:g} s of load, {FULL.repeats} repeats, instead of "
              f"{SMALL.seconds:g} s once")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=RESULTS,
              show_default=True)  # fmt: skip
def main(full: bool, out: Path) -> None:
    """A producer faster than the worker, with and without the queue bound; write
    results/backpressure.{csv,json,png}."""
    setup = FULL if full else SMALL
    started = time.perf_counter()
    runs = run_all(setup)
    summary = write(runs, setup, out, round(time.perf_counter() - started, 1))
    click.echo(f"offered {setup.rate:g} jobs/s for {setup.seconds:g} s to one worker draining "
               f"~{setup.nominal_drain_rate:g}/s; bound {setup.bound}; "
               f"{summary['elapsed_seconds']} s")  # fmt: skip
    click.echo(f"{'run':<11}{'rep':>4}{'accepted':>9}{'429':>6}{'drain/s':>9}{'max wait':>9}"
               f"{'mem MiB':>8}{'e2e p50 ms':>11}{'p99 ms':>9}{'max ms':>9}"
               f"{'growth s/s':>11}")  # fmt: skip
    for r in runs:
        s = r.summary
        click.echo(f"{r.kind:<11}{r.repeat + 1:>4}{s['accepted']:>9}{s['rejected_429']:>6}"
                   f"{s['drain_rate_jobs_per_s']!s:>9}{s['max_waiting']:>9}"
                   f"{s['redis_used_memory_peak_above_empty_mib']:>8}"
                   f"{s['e2e_ms'].get('p50')!s:>11}{s['e2e_ms'].get('p99')!s:>9}"
                   f"{s['e2e_ms'].get('max')!s:>9}"
                   f"{s['e2e_growth_s_per_s_second_half']!s:>11}")  # fmt: skip


if __name__ == "__main__":
    main()
