"""The job record and its codec.

A job has two halves. The *spec* (id, type, payload, queue, limits) is written once at enqueue and
stored as one encoded blob, so reserving a job costs one field read and one decode. The *state*
(attempts, lease token, timestamps, last error) changes on every transition and lives in separate
Redis hash fields that the Lua scripts update in place.

The codec is msgspec's JSON: ``bench/test_codec.py`` measures it against the standard library's
json and orjson; it is the fastest of the three at both ends and it validates the shape on decode.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import msgspec

from jobrunner.errors import PayloadDecodeError

DEFAULT_QUEUE = "default"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3


class JobState(StrEnum):
    READY = "ready"
    SCHEDULED = "scheduled"
    RESERVED = "reserved"
    DONE = "done"
    DEAD = "dead"


class Job(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """What to run: written once at enqueue, never changed afterwards."""

    id: str
    type: str
    payload: Any = None
    queue: str = DEFAULT_QUEUE
    max_retries: int | None = None  # None: the handler's option, else DEFAULT_MAX_RETRIES
    timeout: float | None = None  # None: the handler's option, else DEFAULT_TIMEOUT


class JobRecord(msgspec.Struct, kw_only=True):
    """A job with its current state, as read back from Redis (timestamps in epoch seconds)."""

    job: Job
    state: JobState
    attempts: int = 0
    last_error: str | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


def new_job_id() -> str:
    """A random, URL-safe job id."""
    return uuid.uuid4().hex


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Job)


def encode_job(job: Job) -> bytes:
    return _encoder.encode(job)


def decode_job(data: bytes | str) -> Job:
    """Decode a stored spec; anything malformed raises ``PayloadDecodeError`` with the reason."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PayloadDecodeError(f"cannot decode job: {exc}") from exc


def encode_value(value: Any) -> bytes:
    """Encode any JSON value (payloads, results); raises TypeError for what JSON cannot hold."""
    try:
        return _encoder.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"payload is not JSON-serialisable: {exc}") from exc
