"""OpenTelemetry tracing (docs/tracing.md): one trace from POST /jobs to the worker's ack across
real processes, per concurrency model; and, off, no trace field and no OpenTelemetry import."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner.job import encode_job, make_job
from tests.api_server import api_process, bearer, make_token
from tests.conftest import wait_until
from tests.otlp_receiver import Span, otlp_receiver
from tests.workers import WorkerProcess

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP span kinds


def tracing_env(endpoint: str) -> dict[str, str]:
    # spans exported every 50 ms rather than every 5 s: the test waits for them
    return {"JOBRUNNER_TRACING": "otlp", "JOBRUNNER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50"}  # fmt: skip


def post_and_collect(
    redis_url: str,
    tmp_path: Path,
    model: str,
    body: dict[str, Any],
    done: Callable[[list[Span]], bool],
) -> tuple[str, list[Span], WorkerProcess]:
    """An API process and a worker of ``model`` exporting to a receiver; POST ``body`` to
    /jobs and wait until ``done(spans)``: returns the job id, the spans and the (stopped)
    worker."""  # fmt: skip
    with otlp_receiver() as receiver:
        env = tracing_env(receiver.url)
        worker = WorkerProcess(redis_url, tmp_path, "--model", model, "--concurrency", "2",
                               env=env)  # fmt: skip
        try:
            with api_process(redis_url, "--import", "tests.jobs", env=env) as (url, _):
                worker.wait_ready()
                answer = httpx.post(f"{url}/jobs", json=body,
                                    headers=bearer(make_token(redis_url)))  # fmt: skip
                assert answer.status_code == 202, answer.text

                def arrived() -> list[Span]:
                    spans = receiver.snapshot()
                    return spans if done(spans) else []

                spans = wait_until(arrived, 30, what="the API's and the worker's spans")
            worker.stop()
        finally:
            worker.kill()
    assert isinstance(spans, list)
    return answer.json()["ids"][0], spans, worker


def has(spans: list[Span], name: str, count: int = 1) -> bool:
    return sum(s.name == name for s in spans) >= count


@pytest.mark.parametrize("model", ["asyncio", "thread", "process"])
def test_one_trace_from_post_jobs_to_the_workers_ack(
    model: str, redis_url: str, tmp_path: Path
) -> None:
    # fails its first attempt, succeeds on the retry: two runs in the one trace
    body = {"type": "test.fail_times", "data": {"ledger": redis_url, "times": 1}}
    job_id, spans, worker = post_and_collect(
        redis_url, tmp_path, model, body,
        lambda spans: has(spans, "run test.fail_times", 2) and has(spans, "POST /jobs"),
    )  # fmt: skip
    (post,) = [s for s in spans if s.name == "POST /jobs" and s.kind == SERVER]
    (enqueue,) = [s for s in spans if s.name == "enqueue"]
    (wait,) = [s for s in spans if s.name == "queue wait"]
    runs = sorted((s for s in spans if s.name.startswith("run ")),
                  key=lambda s: s.attributes["jobrunner.attempt"])  # fmt: skip
    trace = post.trace_id
    assert {s.trace_id for s in [post, enqueue, wait, *runs]} == {trace}
    # the redis instrumentation's spans sit in the request's trace (the token lookup); Redis
    # polls outside any request or job are not traced at all
    assert {s.trace_id for s in spans} == {trace}
    assert any(s.kind == CLIENT and s.service == "jobrunner-api" for s in spans)
    assert (post.service, enqueue.service) == ("jobrunner-api", "jobrunner-api")
    assert {wait.service, *(r.service for r in runs)} == {"jobrunner-worker"}
    assert enqueue.kind == PRODUCER
    assert enqueue.parent_id == post.span_id  # the enqueue is the request's
    assert enqueue.attributes["jobrunner.job.id"] == job_id
    assert wait.parent_id == enqueue.span_id
    assert wait.start_ns <= wait.end_ns <= runs[0].start_ns + 10_000_000  # clocks: within 10 ms
    for attempt, (run, outcome) in enumerate(zip(runs, ["error", "ok"], strict=True), 1):
        assert run.kind == CONSUMER
        assert run.parent_id == enqueue.span_id  # each attempt, a retry too, in the same trace
        assert run.attributes["jobrunner.attempt"] == attempt
        assert run.attributes["jobrunner.outcome"] == outcome
        assert run.attributes["messaging.destination.name"] == "default"
        assert run.attributes["jobrunner.job.type"] == "test.fail_times"
    # every log line about the job carries the trace id
    lines = [r for r in worker.log_events("job") if r.get("job_id") == job_id]
    assert [r["outcome"] for r in lines] == ["error", "ok"]
    assert {r["trace_id"] for r in lines} == {trace}


def test_tracing_off_writes_no_trace_field_and_imports_no_opentelemetry() -> None:
    assert b'"tp"' not in encode_job(make_job("email", {"to": "x"}))
    # redis-py 8 imports parts of OpenTelemetry itself when they are installed (its own opt-in
    # observability): those are the baseline; jobrunner must add none to them
    code = (
        "import sys, json\n"
        "import redis, redis.asyncio, fastapi\n"
        "before = {m for m in sys.modules if m.startswith('opentelemetry')}\n"
        "from jobrunner.config import Settings\n"
        "from jobrunner import tracing\n"
        "from jobrunner.api import create_app\n"
        "from jobrunner.calls import NewJob\n"
        "from jobrunner.job import make_job\n"
        "import jobrunner.cli, jobrunner.client, jobrunner.sync_client, jobrunner.worker.core\n"
        "settings = Settings.from_env({})\n"
        "assert not tracing.setup(settings, 'x')\n"
        "create_app(settings)\n"
        "batch = [NewJob(make_job('t', 1))]\n"
        "with tracing.enqueue_span(batch) as out:\n"
        "    assert out is batch\n"
        "after = {m for m in sys.modules if m.startswith('opentelemetry')}\n"
        "print(json.dumps(sorted(after - before)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_console_exporter_writes_the_enqueue_span_on_stderr(redis_url: str) -> None:
    code = (
        "import sys\n"
        "from jobrunner.config import Settings\n"
        "from jobrunner import tracing\n"
        "from jobrunner.sync_client import SyncClient\n"
        "assert tracing.setup(Settings(tracing='console'), 'producer')\n"
        f"client = SyncClient.from_url({redis_url!r})\n"
        "job_id = client.enqueue('email', {'to': 'x'})\n"
        "print(client.get(job_id).job.tp)\n"
        "tracing.shutdown()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    tp = done.stdout.strip()
    version, trace_id, span_id, flags = tp.split("-")
    assert (version, len(trace_id), len(span_id)) == ("00", 32, 16)
    assert int(flags, 16) & 1  # sampled (the SDK may set the W3C level-2 "random" bit too)
    spans = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    (enqueue,) = [s for s in spans if s["name"] == "enqueue"]
    assert enqueue["context"]["trace_id"] == "0x" + trace_id
    assert enqueue["context"]["span_id"] == "0x" + span_id
    assert enqueue["kind"] == "SpanKind.PRODUCER"
    assert enqueue["resource"]["attributes"]["service.name"] == "producer"


def test_an_application_provider_is_adopted_and_the_spec_carries_its_span(redis_url: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from jobrunner import tracing
    from jobrunner.sync_client import SyncClient

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.adopt(provider)
    try:
        with (
            SyncClient.from_url(redis_url) as client,
            provider.get_tracer("app").start_as_current_span("checkout"),
        ):
            ids = client.enqueue_many([{"type": "email"}, {"type": "email"}])
            records = [client.get(i) for i in ids]
    finally:
        tracing.shutdown()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    enqueue, checkout = spans["enqueue"], spans["checkout"]
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == checkout.context.span_id
    assert enqueue.attributes is not None
    assert enqueue.attributes["messaging.batch.message_count"] == 2
    tp = f"00-{enqueue.context.trace_id:032x}-{enqueue.context.span_id:016x}-"
    assert all(r is not None and (r.job.tp or "").startswith(tp) for r in records)
    assert tracing.tracer() is None  # shut down: off again, and the provider left to its owner


def test_a_job_sampled_out_at_enqueue_is_not_recorded_by_its_worker() -> None:
    from jobrunner import tracing
    from jobrunner.calls import NewJob
    from jobrunner.config import Settings

    assert tracing.setup(Settings(tracing="console", tracing_sample=0.0), "sampled")
    try:
        with tracing.enqueue_span([NewJob(make_job("email"))]) as (new,):
            tp = new.job.tp
        assert tp is not None
        assert not int(tp.rsplit("-", 1)[1], 16) & 1  # not sampled: the worker follows that
        assert tracing.start_run(tp, "email", "default", new.job.id, 1, 0, 0) is None
    finally:
        tracing.shutdown()


@pytest.mark.parametrize(("model", "job_type"), [("asyncio", "test.traced_async"),
                                                  ("thread", "test.traced")])  # fmt: skip
def test_a_handlers_own_spans_nest_under_its_attempt_on_the_asyncio_and_thread_models(
    model: str, job_type: str, redis_url: str, tmp_path: Path
) -> None:
    _, spans, _ = post_and_collect(
        redis_url, tmp_path, model, {"type": job_type},
        lambda spans: has(spans, "handler work") and has(spans, f"run {job_type}"),
    )  # fmt: skip
    (run,) = [s for s in spans if s.name == f"run {job_type}"]
    (work,) = [s for s in spans if s.name == "handler work"]
    assert (work.trace_id, work.parent_id) == (run.trace_id, run.span_id)


def test_a_job_the_scheduler_fires_is_one_trace_from_its_enqueue_to_the_workers_run(
    redis_url: str, tmp_path: Path
) -> None:
    from tests.schedulers import SchedulerProcess

    schedules = tmp_path / "s.toml"
    schedules.write_text(
        f'[[schedule]]\nname = "tick"\ntype = "test.record"\nevery = "1s"\n'
        f'payload = {{ ledger = "{redis_url}" }}\n'
    )
    with otlp_receiver() as receiver:
        env = tracing_env(receiver.url)
        worker = WorkerProcess(redis_url, tmp_path, "--concurrency", "2", env=env)
        scheduler = SchedulerProcess(redis_url, tmp_path, schedules, "s1", env=env)
        try:
            worker.wait_ready()
            scheduler.wait_started()

            def one_trace() -> tuple[Span, Span] | None:
                """A run span and the enqueue span of its trace: the two processes export
                on their own schedules, so either may arrive first."""
                spans = receiver.snapshot()
                enqueues = {s.trace_id: s for s in spans if s.name == "enqueue"}
                for run in (s for s in spans if s.name == "run test.record"):
                    if run.trace_id in enqueues:
                        return enqueues[run.trace_id], run
                return None

            found = wait_until(one_trace, 30, what="a fired job's enqueue and run spans")
        finally:
            scheduler.kill()
            worker.kill()
    assert found is not None
    enqueue, run = found
    assert enqueue.service == "jobrunner-scheduler"
    assert enqueue.kind == PRODUCER
    assert run.service == "jobrunner-worker"
    assert enqueue.attributes["jobrunner.job.type"] == "test.record"
