"""What running one job produced, in a form that crosses thread and process boundaries."""

from __future__ import annotations

import traceback
from enum import StrEnum

import msgspec

from jobrunner.errors import DeadLetter, JobTimeout, Retry

MAX_ERROR_CHARS = 2000


class Kind(StrEnum):
    OK = "ok"
    ERROR = "error"  # raised; retried with backoff until max_retries
    RETRY = "retry"  # the handler asked for a retry (optionally with its own delay)
    DEAD = "dead"  # the handler said retrying cannot help
    TIMEOUT = "timeout"  # ran past its deadline
    CRASHED = "crashed"  # the process running it died
    NOT_RUN = "not_run"  # never started (its process died first); give it back untouched


class Outcome(msgspec.Struct, frozen=True, array_like=True):
    kind: Kind
    error: str = ""
    delay: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind is Kind.OK


OK = Outcome(Kind.OK)


def outcome_from_exception(exc: BaseException) -> Outcome:
    """Classify what a handler raised; the error text keeps the type, message and last frame."""
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
