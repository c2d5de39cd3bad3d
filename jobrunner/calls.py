"""The script calls producers and operators make, as data: which keys and arguments each sends,
and what its reply means. Pure functions, so the asyncio protocol (``queue.py``) and the
blocking client (``sync_client.py``) send byte-for-byte the same calls to the same scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from jobrunner.errors import PayloadDecodeError, QueueFull
from jobrunner.job import Job, JobRecord, JobState, check_job, decode_job, encode_job
from jobrunner.keys import QueueKeys, idempotency_key
from jobrunner.registry import Registry

# Jobs per enqueue script call, the API's batch limit too: one call writes them all or nothing,
# and a batch this size holds Redis for a few milliseconds.
BATCH_LIMIT = 10_000
FINAL_STATES = frozenset({JobState.DONE, JobState.DEAD, JobState.CANCELLED})
UNDECODABLE = "<undecodable>"


class NewJob(msgspec.Struct, frozen=True):
    """A job to enqueue, when it becomes ready, and the client's idempotency key, if any."""

    job: Job
    delay: float = 0.0
    idempotency_key: str | None = None
    fresh: bool = False  # its id was made just now (a new uuid): the script skips EXISTS


class Enqueued(msgspec.Struct, frozen=True):
    """Per job: the id it goes by (an idempotency key may name an earlier job), and whether
    this call added it."""

    ids: list[str]
    created: list[bool]


class QueueStats(msgspec.Struct, frozen=True):
    """Depths now, the queue's lifetime counters, and whether it is paused."""

    name: str
    ready: int
    scheduled: int
    reserved: int
    dead: int
    counters: dict[str, int]
    paused: bool = False


@dataclass(frozen=True)
class Call:
    """One script call: the script's name in ``Scripts``, its KEYS and its ARGV."""

    script: str
    keys: list[str]
    args: list[Any] = field(default_factory=list)


def ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------ enqueue


def enqueue_call(
    items: Sequence[NewJob],
    keys_of: Any,
    registry: Registry,
    *,
    prefix: str,
    max_depth: int,
    idempotency_ttl: float,
    checked: bool,
) -> tuple[Call, list[str]]:
    """The enqueue script call for a batch (all or nothing), and the queues it touches."""
    if len(items) > BATCH_LIMIT:
        raise ValueError(f"a batch holds at most {BATCH_LIMIT} jobs, not {len(items)}")
    queues: dict[str, int] = {}
    keys: list[str] = []
    for item in items:
        if not checked:
            check_job(item.job)
        if item.delay < 0:
            raise ValueError("delay must not be negative")
        if item.job.queue not in queues:
            queues[item.job.queue] = len(queues) + 1
            qkeys: QueueKeys = keys_of(item.job.queue)
            keys += (qkeys.ready, qkeys.scheduled, qkeys.stats, qkeys.wake)
    args: list[Any] = [len(queues), max_depth, ms(idempotency_ttl)]
    args += [keys_of(name).job_prefix for name in queues]
    for item in items:
        job = item.job
        idem = -1 if item.fresh else 0
        if item.idempotency_key is not None:
            keys.append(idempotency_key(item.idempotency_key, prefix))
            idem = len(keys)
        args += (queues[job.queue], job.id, encode_job(job), registry.max_retries_for(job),
                 ms(item.delay), idem)  # fmt: skip
    return Call("enqueue", keys, args), list(queues)


def enqueue_result(
    items: Sequence[NewJob], queues: list[str], reply: Any, max_depth: int
) -> Enqueued:
    """What an enqueue reply says; ``QueueFull`` when the batch was refused at its bound."""
    if int(reply[0]) == -1:
        raise QueueFull(queues[int(reply[1]) - 1], int(reply[2]), max_depth)
    ids, created = [], []
    for item, flag in zip(items, reply[1:], strict=True):
        if isinstance(flag, bytes | str):  # its idempotency key names another job
            ids.append(text(flag))
            created.append(False)
        else:
            ids.append(item.job.id)
            created.append(flag == 1)
    return Enqueued(ids=ids, created=created)


# ------------------------------------------------------------------ operators


def cancel_call(keys: QueueKeys, job_id: str, result_ttl: float) -> Call:
    return Call("cancel", [keys.job(job_id), keys.scheduled, keys.stats, keys.cancel,
                           keys.notify(job_id)], [job_id, ms(result_ttl)])  # fmt: skip


def watch_call(keys: QueueKeys, job_id: str) -> Call:
    return Call("watch", [keys.job(job_id)])


def pause_call(keys: QueueKeys, paused: bool) -> Call:
    return Call("pause", [keys.paused, keys.wake], [1 if paused else 0])


def requeue_call(keys: QueueKeys, ids: Sequence[str] | None) -> Call:
    """Dead jobs back to ready: the ids given, or the 1,000 oldest (call again until 0)."""
    mode: list[Any] = ["ids", *ids] if ids is not None else ["oldest", 1000]
    return Call("requeue", [keys.dead, keys.ready, keys.stats, keys.wake], [keys.job_prefix, *mode])


def delete_call(keys: QueueKeys, ids: Sequence[str]) -> Call:
    """Dead jobs removed for good (ids not in dead are left alone)."""
    return Call("delete", [keys.dead, keys.stats], [keys.job_prefix, *ids])


def stats_commands(keys: QueueKeys) -> list[tuple[str, str]]:
    """The reads of one queue's stats, for a pipeline: (command, key)."""
    return [("llen", keys.ready), ("zcard", keys.scheduled), ("zcard", keys.reserved),
            ("zcard", keys.dead), ("hgetall", keys.stats), ("exists", keys.paused)]  # fmt: skip


def stats_of(name: str, replies: Sequence[Any]) -> QueueStats:
    ready, scheduled, reserved, dead, counters, paused = replies
    return QueueStats(name=name, ready=ready, scheduled=scheduled, reserved=reserved, dead=dead,
                      counters={text(k): int(v) for k, v in counters.items()},
                      paused=bool(paused))  # fmt: skip


# ------------------------------------------------------------------ reading a job


def record_of(job_id: str, queue: str, raw_fields: dict[Any, Any]) -> JobRecord:
    """A JobRecord from a job hash; a spec or result that cannot be decoded is shown, not
    raised."""
    fields = {text(k): v for k, v in raw_fields.items()}

    def seconds(name: str) -> float | None:
        value = fields.get(name)
        return int(value) / 1000 if value is not None else None

    error = fields.get("e")
    try:
        job = decode_job(fields.get("d", b""))
    except PayloadDecodeError:
        raw = fields.get("d", b"")
        shown = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        job = Job(id=job_id, type=UNDECODABLE, payload=shown, queue=queue)
    if job.max_retries is None and "mr" in fields:  # what the job was given at enqueue
        job = msgspec.structs.replace(job, max_retries=int(fields["mr"]))
    result = None
    if "r" in fields:
        try:
            result = msgspec.json.decode(fields["r"])
        except msgspec.DecodeError:
            result = text(fields["r"])
    return JobRecord(
        job=job,
        state=JobState(text(fields["s"])),
        attempts=int(fields.get("a", 0)),
        last_error=text(error) if error is not None else None,
        enqueued_at=seconds("eq"),
        started_at=seconds("st"),
        finished_at=seconds("fi"),
        result=result,
        has_result="r" in fields,
    )
