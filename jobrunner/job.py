"""The job record and its codec.

A job has two halves. The *spec* (id, type, payload, queue, limits) is written once at enqueue and
stored as one encoded blob, so reserving a job costs one field read and one decode. The *state*
(attempts, lease token, timestamps, last error) changes on every transition and lives in separate
Redis hash fields that the Lua scripts update in place.

The codec is msgspec's JSON: ``bench/test_codec.py`` measures it against the standard library's
json and orjson; it is the fastest of the three at both ends and it validates the shape on decode.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from enum import StrEnum
from typing import Any

import msgspec

from jobrunner.errors import PayloadDecodeError
from jobrunner.payload import check_json, check_json_bytes

DEFAULT_QUEUE = "default"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3


class JobState(StrEnum):
    READY = "ready"
    SCHEDULED = "scheduled"
    RESERVED = "reserved"
    DONE = "done"
    DEAD = "dead"
    CANCELLED = "cancelled"


class Job(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """What to run: written once at enqueue, never changed afterwards."""

    id: str
    type: str
    payload: Any = None
    queue: str = DEFAULT_QUEUE
    max_retries: int | None = None  # None: the handler's option, else DEFAULT_MAX_RETRIES
    timeout: float | None = None  # None: the handler's option, else DEFAULT_TIMEOUT
    # the W3C traceparent of its enqueue span, with tracing on (jobrunner/tracing.py); absent
    # otherwise, so a spec encodes to the same bytes as before tracing existed
    tp: str | None = None


class JobRecord(msgspec.Struct, kw_only=True):
    """A job with its current state, as read back from Redis (timestamps in epoch seconds)."""

    job: Job
    state: JobState
    attempts: int = 0
    last_error: str | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None  # the handler's return value, once done (kept ``result_ttl``)
    has_result: bool = False  # whether one was kept (a handler may return None)


def make_job(
    type: str,
    payload: Any = None,
    *,
    queue: str = DEFAULT_QUEUE,
    job_id: str | None = None,
    max_retries: int | None = None,
    timeout: float | None = None,
) -> Job:
    """A new Job, with a fresh id unless one is given (a given id makes enqueue idempotent)."""
    return Job(
        id=own_job_id(job_id, queue) if job_id else new_job_id(queue),
        type=type,
        payload=payload,
        queue=queue,
        max_retries=max_retries,
        timeout=timeout,
    )


# ------------------------------------------------------------------ queue names and job ids
#
# A job's hash lives in its queue's hash slot (``jr:{queue}:job:<id>``), so finding a job needs
# its queue. The id carries it: ``<local>@<queue>``, or just ``<local>`` on the default queue.
# Looking a job up is then one read, however many queues there are.

# a shard of a sharded queue is named <queue>~<index> (jobrunner/shards.py)
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}(~[1-9][0-9]{0,3})?$")
QUEUE_SEPARATOR = "@"


def check_queue_name(name: str) -> str:
    """The name, if it may name a queue (it goes inside Redis keys' ``{...}`` hash tags)."""
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        raise ValueError(
            f"queue name {name!r}: 1 to 64 letters, digits, '_', '.', ':' or '-' "
            "(and '~<n>' naming a shard)"
        )
    return name


def job_id_in(queue: str, local: str) -> str:
    """The id of the job ``local`` on ``queue``."""
    return local if queue == DEFAULT_QUEUE else f"{local}{QUEUE_SEPARATOR}{queue}"


def queue_of(job_id: str) -> str:
    """The queue a job id names (the default queue when it names none)."""
    local, sep, queue = job_id.rpartition(QUEUE_SEPARATOR)
    return queue if sep and local else DEFAULT_QUEUE


def own_job_id(job_id: str, queue: str) -> str:
    """A caller's chosen id, with its queue added; an '@' in it must name that queue."""
    if QUEUE_SEPARATOR in job_id:
        if queue_of(job_id) != queue:
            raise ValueError(
                f"job id {job_id!r} names queue {queue_of(job_id)!r}, not {queue!r}: "
                "an '@' in a job id comes only before the name of its queue"
            )
        return job_id
    return job_id_in(queue, job_id)


def job_id_for_key(idempotency_key: str, queue: str = DEFAULT_QUEUE) -> str:
    """The job id an idempotency key stands for on ``queue``: the same key, the same id."""
    return job_id_in(queue, "idem-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32])


def new_job_id(queue: str = DEFAULT_QUEUE) -> str:
    """A random, URL-safe job id that names its queue."""
    return job_id_in(queue, uuid.uuid4().hex)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Job)


def encode_job(job: Job) -> bytes:
    return _encoder.encode(job)


def decode_job(data: bytes | str) -> Job:
    """Decode a stored spec; anything malformed raises ``PayloadDecodeError`` with the reason."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise PayloadDecodeError(f"cannot decode job: {exc}") from exc


def encode_value(value: Any) -> bytes:
    """Encode a JSON value (payloads, results); TypeError for anything JSON would not keep as is."""
    check_json(value)
    return _encoder.encode(value)


def check_job(job: Job) -> None:
    """Refuse a job that cannot be stored and run as given; raises ValueError or TypeError."""
    if not job.type:
        raise ValueError("a job needs a type")
    if not job.id:
        raise ValueError("a job needs an id")
    check_queue_name(job.queue)
    if queue_of(job.id) != job.queue:
        raise ValueError(f"job id {job.id!r} names queue {queue_of(job.id)!r}, not {job.queue!r}")
    if job.max_retries is not None and job.max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, not {job.max_retries}")
    if job.timeout is not None and not 0 < job.timeout < math.inf:
        raise ValueError(f"timeout must be a positive number of seconds, not {job.timeout!r}")
    if isinstance(job.payload, msgspec.Raw):  # JSON text from a client, already parsed once
        check_json_bytes(bytes(job.payload), "data")
    else:
        check_json(job.payload)
