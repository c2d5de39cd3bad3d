"""OpenTelemetry tracing, off unless ``JOBRUNNER_TRACING`` says where spans go (docs/tracing.md).

The trace context travels inside the job: the producer's ``enqueue`` span writes its W3C
``traceparent`` into the spec's ``tp`` field, and the worker starts each attempt's ``run <type>``
span (and the ``queue wait`` span before the first) as children of it, so a job's enqueue, wait
and every attempt are one trace, wherever they ran.

Nothing here imports OpenTelemetry until ``setup`` is asked to turn tracing on (the ``tracing``
extra provides it); off, ``enqueue_span`` hands the batch back untouched (no ``tp``: the stored
spec is byte for byte what it was without tracing) and the worker only tests ``tracer() is None``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import msgspec

from jobrunner.calls import NewJob
from jobrunner.config import Settings
from jobrunner.errors import ConfigError

TRACER_NAME = "jobrunner"
_tracer: Any = None  # an opentelemetry Tracer while tracing is on, else None
_provider: Any = None


def tracer() -> Any:
    """The tracer while tracing is on; None when it is off (the cheap check on hot paths)."""
    return _tracer


def setup(settings: Settings, service: str) -> bool:
    """Turn tracing on in this process as the settings say; False (and nothing imported) when
    ``tracing`` is ``none``. ``service`` names the process in the traces (``jobrunner-api``)."""
    global _tracer, _provider
    if settings.tracing == "none":
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"tracing={settings.tracing} needs {exc.name!r}: pip install 'jobrunner[tracing]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service}),
                              sampler=_sampler(settings.tracing_sample))  # fmt: skip
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME)
    return True


def adopt(provider: Any = None) -> None:
    """Trace with a ``TracerProvider`` the application set up itself (default: the global one)
    instead of ``setup``'s: its exporters and sampler, and spans nested in the application's."""
    global _tracer, _provider
    from opentelemetry import trace

    _tracer = (provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)
    _provider = None  # the application's to shut down, not ours


def _sampler(ratio: float = 1.0) -> Any:
    """A ``ratio`` of the traces a request or an enqueue starts (a span with a parent follows
    its parent's decision, so a job's attempts follow its enqueue's), but no Redis command on
    its own: the API's background polls would otherwise each be a trace of one span."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )
    from opentelemetry.trace import SpanKind, get_current_span

    class NoLoneClientSpans(Sampler):
        inner = ParentBased(TraceIdRatioBased(ratio))

        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, *args: Any, **kwargs: Any) -> Any:  # fmt: skip
            parent = get_current_span(parent_context).get_span_context()
            if kind is SpanKind.CLIENT and not parent.is_valid:
                return SamplingResult(Decision.DROP)
            return self.inner.should_sample(parent_context, trace_id, name, kind, *args, **kwargs)

        def get_description(self) -> str:
            return "NoLoneClientSpans"

    return NoLoneClientSpans()


def _exporter(settings: Settings) -> Any:
    if settings.tracing == "console":
        import os
        import sys

        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # one compact JSON document a span, on stderr (stdout may carry a command's output)
        return ConsoleSpanExporter(
            out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + os.linesep
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if settings.otlp_endpoint:  # else the exporter's own: OTEL_EXPORTER_OTLP_* or localhost
        return OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    return OTLPSpanExporter()


def shutdown() -> None:
    """Export the spans still buffered and stop (the provider also does this at exit)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def instrument_redis() -> None:
    """Spans for redis-py's commands (the official instrumentation), where tracing is on."""
    if _tracer is not None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentor = RedisInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=_provider)


# ------------------------------------------------------------------ the producer's side


def enqueue_span(batch: list[NewJob]) -> contextlib.AbstractContextManager[list[NewJob]]:
    """Around writing ``batch``: with tracing on, an ``enqueue`` span (producer kind, a child of
    the current span, e.g. the API's ``POST /jobs``) whose context each job carries in ``tp``;
    yields the jobs to write. Off, it yields ``batch`` itself."""
    if _tracer is None or not batch:
        return contextlib.nullcontext(batch)
    return _traced_enqueue(batch)


@contextlib.contextmanager
def _traced_enqueue(batch: list[NewJob]) -> Iterator[list[NewJob]]:
    from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

    first = batch[0].job
    attributes = {
        "messaging.system": "jobrunner",
        "messaging.operation.type": "publish",
        "messaging.destination.name": first.queue,
        "messaging.batch.message_count": len(batch),
        "jobrunner.job.type": first.type,
        "jobrunner.job.id": first.id,
    }
    with _tracer.start_as_current_span(
        "enqueue", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        context = span.get_span_context()
        flags = f"{int(context.trace_flags):02x}"
        tp = f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-{flags}"
        yield [msgspec.structs.replace(new, job=msgspec.structs.replace(new.job, tp=tp))
               for new in batch]  # fmt: skip


# ------------------------------------------------------------------ the worker's side


# the last hex digit of a traceparent's flags is odd when the trace is sampled
_SAMPLED = tuple("13579bdf")


def trace_id_of(tp: str) -> str:
    """The trace id a W3C traceparent (``00-<trace id>-<span id>-<flags>``) names."""
    return tp[3:35]


def _parent(tp: str) -> Any:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    _, trace_id, span_id, flags = tp.split("-")
    context = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                          trace_flags=TraceFlags(int(flags, 16)))  # fmt: skip
    return set_span_in_context(NonRecordingSpan(context))


def start_run(
    tp: str, job_type: str, queue: str, job_id: str, attempt: int, enqueued_ms: int, waited_ms: int
) -> Any:
    """The span of one attempt (``run <type>``, consumer kind), a child of the job's enqueue
    span; the first attempt also records its ``queue wait`` (enqueue to reservation). The
    caller ends it with ``end_run``. None when ``tp`` is not a traceparent, or its trace was
    not sampled (the producer decided: ``tracing_sample``)."""
    if not tp.endswith(_SAMPLED):  # its producer left it out: no span to make at all
        return None
    from opentelemetry.trace import SpanKind

    try:
        parent = _parent(tp)
    except ValueError:
        return None
    attributes = {
        "messaging.system": "jobrunner",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "jobrunner.job.type": job_type,
        "jobrunner.job.id": job_id,
        "jobrunner.attempt": attempt,
    }
    if attempt <= 1:
        start = enqueued_ms * 1_000_000
        wait = _tracer.start_span("queue wait", context=parent, start_time=start,
                                  attributes=attributes)  # fmt: skip
        wait.end(end_time=start + waited_ms * 1_000_000)
    return _tracer.start_span(f"run {job_type}", context=parent, kind=SpanKind.CONSUMER,
                              attributes=attributes, start_time=time.time_ns())  # fmt: skip


def current_span(span: Any) -> contextlib.AbstractContextManager[Any]:
    """``span`` as the current span for the block (not ended when it closes)."""
    from opentelemetry.trace import use_span

    return use_span(span, end_on_exit=False)


def end_run(span: Any, outcome: str, error: str | None) -> None:
    """End an attempt's span with its outcome (``ok``, ``failed``, ``dead``, ...)."""
    span.set_attribute("jobrunner.outcome", outcome)
    if error:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, error))
    span.end()
