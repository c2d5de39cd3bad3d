"""The script calls producers and operators make, as data: which keys and arguments each sends,
and what its reply means. Pure functions, so the asyncio protocol (``queue.py``) and the
blocking client (``sync_client.py``) send byte-for-byte the same calls to the same scripts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.exceptions import AskError, ClusterDownError, OutOfMemoryError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobrunner.errors import PayloadDecodeError, QueueFull, RedisFull, RedisUnavailable
from jobrunner.job import Job, JobRecord, JobState, check_job, decode_job, encode_job
from jobrunner.keys import QueueKeys, idempotency_key
from jobrunner.pipelined import NotReplicated
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
    shards: list[QueueStats] = msgspec.field(default_factory=list)  # a sharded queue's, each


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


def check_jobs(items: Sequence[NewJob], *, jobs_checked: bool = False) -> None:
    """What every job must pass before it is written: the payload limits, a valid id and
    queue (``check_job``, unless the caller did it), and a delay that is not negative."""
    for item in items:
        if not jobs_checked:
            check_job(item.job)
        if item.delay < 0:
            raise ValueError("delay must not be negative")


def enqueue_call(
    items: Sequence[NewJob],
    keys_of: Any,
    registry: Registry,
    *,
    prefix: str,
    max_depth: int,
    idempotency_ttl: float,
    checked: bool,
    counts: EnqueueCounts | None = None,
    cluster: bool = False,
) -> tuple[Call, list[str]]:
    """The enqueue script call for a batch (all or nothing), and the queues it touches.

    With ``counts``, each queue's ``enqueued`` counter may be left to a later call (see
    ``EnqueueCounts``); the caller then passes the reply to ``counts.settle``. On a
    ``cluster`` the batch must hold one queue (see ``by_queue``) and idempotency keys carry
    its hash tag.
    """
    if len(items) > BATCH_LIMIT:
        raise ValueError(f"a batch holds at most {BATCH_LIMIT} jobs, not {len(items)}")
    check_jobs(items, jobs_checked=checked)
    queues: dict[str, int] = {}
    keys: list[str] = []
    for item in items:
        if item.job.queue not in queues:
            queues[item.job.queue] = len(queues) + 1
            qkeys: QueueKeys = keys_of(item.job.queue)
            keys += (qkeys.ready, qkeys.scheduled, qkeys.stats)
    args: list[Any] = [len(queues), max_depth, ms(idempotency_ttl), int(time.time() * 1000)]
    for name in queues:
        args += (keys_of(name).job_prefix, 0 if counts is None else counts.carry(name))
    for item in items:
        job = item.job
        idem = -1 if item.fresh else 0
        if item.idempotency_key is not None:
            keys.append(
                idempotency_key(item.idempotency_key, prefix, job.queue if cluster else None)
            )
            idem = len(keys)
        args += (queues[job.queue], job.id, encode_job(job), registry.max_retries_for(job),
                 ms(item.delay), idem)  # fmt: skip
    return Call("enqueue", keys, args), list(queues)


def by_queue(items: Sequence[NewJob]) -> list[list[NewJob]]:
    """A batch split into one batch per queue, in order of first appearance: on Redis Cluster
    each queue lives in a slot of its own and a script may touch one slot only."""
    groups: dict[str, list[NewJob]] = {}
    for item in items:
        groups.setdefault(item.job.queue, []).append(item)
    return list(groups.values())


def merged(items: Sequence[NewJob], parts: Sequence[tuple[list[NewJob], Enqueued]]) -> Enqueued:
    """The per-queue results of a split batch, put back in the order of ``items``."""
    by_item = {
        id(item): (job_id, created)
        for part, done in parts
        for item, job_id, created in zip(part, done.ids, done.created, strict=True)
    }
    ordered = [by_item[id(item)] for item in items]
    return Enqueued(ids=[i for i, _ in ordered], created=[c for _, c in ordered])


class EnqueueCounts:
    """The ``enqueued`` counts a producer carries from call to call, so that a stream of single
    enqueues costs one HINCRBY a second per queue rather than one a job (issue 20: three Redis
    commands per enqueue).

    A queue's first enqueue in ``every`` seconds counts at once, with whatever was carried; the
    calls after it within ``every`` leave their count to be carried. So a lone enqueue shows in
    the counter at once and a burst within ``every``; what is still carried when the burst ends
    is written by ``flush`` (the clients call it ``every`` seconds after a count was carried, and
    on close). A producer that dies carrying counts loses them: the counter is a statistic, it
    never decides what happens to a job.
    """

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._carried: dict[str, int] = {}
        self._due: dict[str, float] = {}  # queue -> when its next call counts at once
        self._lock = threading.Lock()  # a SyncClient is shared by threads

    def carry(self, queue: str) -> int:
        """What a call to ``queue`` adds beyond its own jobs now, or -1: it counts none now."""
        now = self._clock()
        with self._lock:
            if now < self._due.get(queue, 0.0):
                return -1
            self._due[queue] = now + self.every
            return self._carried.pop(queue, 0)

    def settle(
        self, call: Call, queues: Sequence[str], items: Sequence[NewJob], created: Sequence[bool]
    ) -> bool:
        """After the call's reply: carry the new jobs of queues that did not count now. True
        when something is carried (the caller makes sure a ``take`` follows within ``every``)."""
        carried = _carry_args(call, queues)
        with self._lock:
            for item, new in zip(items, created, strict=True):
                if new and carried[item.job.queue] < 0:
                    self._carried[item.job.queue] = self._carried.get(item.job.queue, 0) + 1
            return bool(self._carried)

    def restore(self, counts: dict[str, int]) -> bool:
        """Counts that were not written (their call failed) go back to be carried; True when
        something is carried."""
        with self._lock:
            for name, n in counts.items():
                if n > 0:
                    self._carried[name] = self._carried.get(name, 0) + n
            return bool(self._carried)

    def counted_now(self, call: Call, queues: Sequence[str]) -> dict[str, int]:
        """What ``call`` carries into the counters (to ``restore`` should it fail)."""
        return {name: max(0, n) for name, n in _carry_args(call, queues).items()}

    def take(self) -> dict[str, int]:
        """Everything carried, to be written now (``HINCRBY`` per queue)."""
        with self._lock:
            carried, self._carried = self._carried, {}
            return carried


def _carry_args(call: Call, queues: Sequence[str]) -> dict[str, int]:
    """Each queue's count argument of an enqueue call (see ``enqueue_call``'s ARGV layout)."""
    return {name: int(call.args[5 + 2 * i]) for i, name in enumerate(queues)}


def enqueue_refusal(exc: BaseException) -> Exception | None:
    """What an enqueue call's failure means to its caller, where it means a refusal."""
    if isinstance(exc, NotReplicated):
        return RedisUnavailable(
            f"cannot confirm the enqueue: {exc}; a failover now could lose it, so send it "
            "again with the same idempotency key"
        )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return RedisUnavailable(f"cannot enqueue: Redis is unreachable ({exc})")
    if isinstance(exc, OutOfMemoryError):  # refused at its first write: nothing was written
        return RedisFull(f"cannot enqueue: Redis is at maxmemory ({exc})")
    if isinstance(exc, AskError | TryAgainError | ClusterDownError):  # MOVED is an ASK too
        return RedisUnavailable(
            f"cannot enqueue: the cluster refused it while its slot moved or failed over "
            f"({type(exc).__name__}: {exc}); nothing was written, send it again"
        )
    return None


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


def cancel_call(keys: QueueKeys, job_id: str, result_ttl: float, history: int = 0) -> Call:
    """``history``: the bound of the queue's history stream (0: no entry; see keys.py)."""
    return Call("cancel", [keys.job(job_id), keys.scheduled, keys.stats, keys.cancel,
                           keys.notify(job_id), keys.history],
                [job_id, ms(result_ttl), history])  # fmt: skip


def watch_call(keys: QueueKeys, job_id: str) -> Call:
    return Call("watch", [keys.job(job_id)])


def pause_call(keys: QueueKeys, paused: bool) -> Call:
    return Call("pause", [keys.paused], [1 if paused else 0])


def requeue_call(keys: QueueKeys, ids: Sequence[str] | None) -> Call:
    """Dead jobs back to ready: the ids given, or the 1,000 oldest (call again until 0)."""
    mode: list[Any] = ["ids", *ids] if ids is not None else ["oldest", 1000]
    return Call("requeue", [keys.dead, keys.ready, keys.stats], [keys.job_prefix, *mode])


def delete_call(keys: QueueKeys, ids: Sequence[str]) -> Call:
    """Dead jobs removed for good (ids not in dead are left alone)."""
    return Call("delete", [keys.dead, keys.stats], [keys.job_prefix, *ids])


def stats_commands(keys: QueueKeys) -> list[tuple[str, str]]:
    """The reads of one queue's stats, for a pipeline: (command, key)."""
    return [("llen", keys.ready), ("zcard", keys.scheduled), ("zcard", keys.reserved),
            ("zcard", keys.dead), ("hgetall", keys.stats), ("exists", keys.paused),
            ("llen", keys.claimed)]  # fmt: skip


def stats_each(names: Sequence[str], replies: Sequence[Any]) -> list[QueueStats]:
    """Several queues' stats from one pipeline of ``stats_commands`` per queue, in order."""
    width = len(replies) // len(names) if names else 0
    return [stats_of(n, replies[i * width : (i + 1) * width]) for i, n in enumerate(names)]


def stats_of(name: str, replies: Sequence[Any]) -> QueueStats:
    ready, scheduled, reserved, dead, counters, paused, claimed = replies
    return QueueStats(name=name, ready=ready + claimed, scheduled=scheduled, reserved=reserved,
                      dead=dead,
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
