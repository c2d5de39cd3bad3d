"""What running one job produced, in a form that crosses thread and process boundaries."""

from __future__ import annotations

import traceback
from enum import StrEnum

import msgspec

from jobrunner.errors import DeadLetter, JobCancelled, JobTimeout, Retry
from jobrunner.payload import check_json

MAX_ERROR_CHARS = 2000


class Kind(StrEnum):
    OK = "ok"
    ERROR = "error"  # raised; retried with backoff until max_retries
    RETRY = "retry"  # the handler asked for a retry (optionally with its own delay)
    DEAD = "dead"  # the handler said retrying cannot help
    TIMEOUT = "timeout"  # ran past its deadline
    CRASHED = "crashed"  # the process running it died
    NOT_RUN = "not_run"  # never started (its process died first); give it back untouched
    CANCELLED = "cancelled"  # stopped (or never started) because its cancellation was asked for


class Outcome(msgspec.Struct, frozen=True, array_like=True):
    kind: Kind
    error: str = ""
    delay: float | None = None
    result: bytes | None = None  # a success's return value, JSON-encoded (None: returned None)

    @property
    def ok(self) -> bool:
        return self.kind is Kind.OK


OK = Outcome(Kind.OK)
MAX_RESULT_BYTES = 1024 * 1024  # a handler's return value, encoded, at most this


def succeeded(value: object) -> Outcome:
    """The outcome of a handler that returned ``value``: kept as JSON for the job's result.

    A value JSON cannot hold as it is, or one over ``MAX_RESULT_BYTES``, makes the job dead with
    the reason: retrying would return the same value.
    """
    if value is None:
        return OK
    try:
        check_json(value, "result")
    except (TypeError, ValueError) as exc:
        return Outcome(Kind.DEAD, f"the handler's return value cannot be kept: {exc}")
    encoded = _encoder.encode(value)
    if len(encoded) > MAX_RESULT_BYTES:
        return Outcome(Kind.DEAD, f"the handler's return value is {len(encoded)} bytes encoded; "
                                  f"the limit is {MAX_RESULT_BYTES}")  # fmt: skip
    return Outcome(Kind.OK, result=encoded)


_encoder = msgspec.json.Encoder()


def outcome_from_exception(exc: BaseException) -> Outcome:
    """Classify what a handler raised; the error text keeps the type, message and last frame."""
    if isinstance(exc, JobCancelled):
        return Outcome(Kind.CANCELLED, _describe(exc))
    if isinstance(exc, Retry):
        return Outcome(Kind.RETRY, _describe(exc), exc.delay)
    if isinstance(exc, DeadLetter):
        return Outcome(Kind.DEAD, _describe(exc))
    if isinstance(exc, JobTimeout | TimeoutError):
        return Outcome(Kind.TIMEOUT, _describe(exc))
    return Outcome(Kind.ERROR, _describe(exc))


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text[:MAX_ERROR_CHARS]
