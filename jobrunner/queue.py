"""The reliable queue: every Redis operation of a job's life, each one atomic.

This is the only module that changes a job's state in Redis: each transition is one Lua script
in ``lua/`` that reads the clock of Redis (``TIME``), so leases and due times do not depend on
the clocks of the machines that run workers; it also holds the reads of jobs and queues and the
workers' heartbeats. Other components keep keys of their own behind their own modules: the
scheduler its lock and marks (``scheduler/``), the rate limiters their counters
(``ratelimit/``), the dashboard its once-a-second sample of depths (``api/live.py``), and the
lab's naive baseline its own list.

States and where a job id sits: ready (LIST) -> reserved (ZSET by lease deadline, with a fencing
token) -> done (hash kept ``result_ttl``) | scheduled (ZSET by due time) -> ready | dead (ZSET).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobrunner.errors import PayloadDecodeError, QueueFull, RedisFull, RedisUnavailable
from jobrunner.job import (
    Job,
    JobRecord,
    JobState,
    check_job,
    decode_job,
    encode_job,
    make_job,
    queue_of,
)
from jobrunner.keys import (
    PREFIX,
    QueueKeys,
    idempotency_key,
    queues_key,
    worker_key,
    workers_key,
)
from jobrunner.registry import Registry
from jobrunner.registry import registry as default_registry
from jobrunner.scripts import Scripts

# Jobs per enqueue script call, the API's batch limit too: one call writes them all or nothing,
# and a batch this size holds Redis for a few milliseconds.
BATCH_LIMIT = 10_000


class NewJob(msgspec.Struct, frozen=True):
    """A job to enqueue, when it becomes ready, and the client's idempotency key, if any."""

    job: Job
    delay: float = 0.0
    idempotency_key: str | None = None


class Enqueued(msgspec.Struct, frozen=True):
    """Per job: the id it goes by (an idempotency key may name an earlier job), and whether
    this call added it."""

    ids: list[str]
    created: list[bool]


class Reservation(msgspec.Struct, frozen=True):
    """A leased job as the reserve script returned it; the spec is decoded by the worker."""

    queue: str
    id: str
    token: int
    attempts: int
    raw: bytes
    enqueued_ms: int
    reserved_ms: int
    last_delay: float | None


class QueueStats(msgspec.Struct, frozen=True):
    """Depths now, and the queue's lifetime counters."""

    name: str
    ready: int
    scheduled: int
    reserved: int
    dead: int
    counters: dict[str, int]


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ReliableQueue:
    """Async access to jobrunner's queues on one Redis.

    ``result_ttl`` is how long a finished job's hash is kept for ``get_job`` (0 deletes it at once);
    ``idempotency_ttl`` how long an idempotency key keeps naming its job (a day by default).
    ``registry`` (default: the one ``@handler`` fills) supplies per-type ``max_retries``.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = PREFIX,
        result_ttl: float = 600.0,
        registry: Registry | None = None,
        idempotency_ttl: float = 86_400.0,
    ) -> None:
        self.redis = redis
        self.registry = registry if registry is not None else default_registry
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.idempotency_ttl = idempotency_ttl  # how long a client's key keeps naming its job
        self._scripts = Scripts(redis)
        self._keys: dict[str, QueueKeys] = {}
        self._known_queues: set[str] = set()

    def keys(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = QueueKeys(queue, self.prefix)
        return keys

    # ---------------------------------------------------------------- producing

    async def enqueue(
        self,
        type: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        job_id: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        delay: float = 0.0,
    ) -> str:
        """Enqueue one job and return its id. An id that already exists is left as it is.

        ``queue``, ``max_retries`` and ``timeout`` default to the options the job's handler was
        registered with (when this process imported it), else to the default queue, 3 retries
        and 30 seconds. The id names the queue (``<id>@<queue>``, bare on the default queue).
        """
        job = make_job(
            type,
            payload,
            queue=queue or self.registry.queue_for(type),
            job_id=job_id,
            max_retries=max_retries,
            timeout=timeout,
        )
        await self.enqueue_jobs([job], delay=delay)
        return job.id

    async def enqueue_jobs(
        self, jobs: Sequence[Job], *, delay: float = 0.0, checked: bool = False
    ) -> list[bool]:
        """Enqueue many jobs; returns, per job, whether it was new (its id did not exist).

        Up to ``BATCH_LIMIT`` jobs go in one script call, written all or nothing; a longer
        list is sent in such batches. Every job is checked (``check_job``) before anything is
        written, unless the caller says it has ``checked`` them already.
        """
        created: list[bool] = []
        for start in range(0, len(jobs), BATCH_LIMIT):
            chunk = [NewJob(job, delay) for job in jobs[start : start + BATCH_LIMIT]]
            created += (await self.enqueue_batch(chunk, checked=checked)).created
        return created

    async def enqueue_batch(
        self, items: Sequence[NewJob], *, max_depth: int = 0, checked: bool = False
    ) -> Enqueued:
        """Write a batch of jobs over any queues in one script call: all of it, or nothing.

        ``max_depth`` refuses the whole batch (``QueueFull``) when any of its queues already
        holds that many waiting jobs. An idempotency key names one job whatever the queue: a
        job whose key is known is not added, and the id it names is returned in its place.
        Raises ``QueueFull``, ``RedisFull`` or ``RedisUnavailable``, each a certain refusal
        except ``RedisUnavailable`` after the request left (its reply may have been lost).
        """
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
                qkeys = self.keys(item.job.queue)
                keys += (qkeys.ready, qkeys.scheduled, qkeys.stats, qkeys.wake)
        args: list[Any] = [len(queues), max_depth, _ms(self.idempotency_ttl)]
        args += [self.keys(name).job_prefix for name in queues]
        for item in items:
            job = item.job
            idem = 0
            if item.idempotency_key is not None:
                keys.append(idempotency_key(item.idempotency_key, self.prefix))
                idem = len(keys)
            args += (queues[job.queue], job.id, encode_job(job),
                     self.registry.max_retries_for(job), _ms(item.delay), idem)  # fmt: skip
        try:
            await self._remember_queues(queues)
            reply = await self._scripts.enqueue(keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise RedisUnavailable(f"cannot enqueue: Redis is unreachable ({exc})") from exc
        except OutOfMemoryError as exc:  # refused at its first write: nothing was written
            raise RedisFull(f"cannot enqueue: Redis is at maxmemory ({exc})") from exc
        if int(reply[0]) == -1:
            name = list(queues)[int(reply[1]) - 1]
            raise QueueFull(name, int(reply[2]), max_depth)
        ids, created = [], []
        for item, flag in zip(items, reply[1:], strict=True):
            if isinstance(flag, bytes):  # its idempotency key names another job
                ids.append(flag.decode())
                created.append(False)
            else:
                ids.append(item.job.id)
                created.append(flag == 1)
        return Enqueued(ids=ids, created=created)

    async def _remember_queues(self, names: Iterable[str]) -> None:
        new = [name for name in names if name not in self._known_queues]
        if new:
            await self.redis.sadd(queues_key(self.prefix), *new)
            self._known_queues.update(new)

    # ---------------------------------------------------------------- consuming

    async def reserve(self, queue: str, count: int, lease: float) -> list[Reservation]:
        """Lease up to ``count`` ready jobs for ``lease`` seconds, in one round trip."""
        keys = self.keys(queue)
        reply = await self._scripts.reserve(
            keys=[keys.ready, keys.reserved, keys.fence, keys.wake],
            args=[keys.job_prefix, count, _ms(lease)],
        )
        now_ms = int(reply[0])
        out: list[Reservation] = []
        for i in range(1, len(reply), 6):
            last_delay = reply[i + 5]
            out.append(
                Reservation(
                    queue=queue,
                    id=_text(reply[i]),
                    token=int(reply[i + 1]),
                    attempts=int(reply[i + 2]),
                    raw=reply[i + 3] or b"",
                    enqueued_ms=int(reply[i + 4] or now_ms),
                    reserved_ms=now_ms,
                    last_delay=float(last_delay) if last_delay else None,
                )
            )
        return out

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block until a transition readies jobs on one of ``queues``, or ``timeout`` passes.

        Every script that readies jobs pushes a marker onto the queue's ``wake`` list (at most
        one element); an idle worker takes it with ``BLPOP``, so it wakes within a round trip
        of an enqueue instead of polling. The timeout is the safety net for jobs readied any
        other way. True when a marker was taken.
        """
        wake_keys = [self.keys(name).wake for name in queues]
        return await self.redis.blpop(wake_keys, timeout=timeout) is not None

    async def ack(self, queue: str, done: Sequence[tuple[str, int]]) -> list[str]:
        """Mark jobs done; returns the ids rejected because their lease was taken over."""
        if not done:
            return []
        keys = self.keys(queue)
        args: list[Any] = [keys.job_prefix, _ms(self.result_ttl)]
        for job_id, token in done:
            args += (job_id, token)
        stale = await self._scripts.ack(keys=[keys.reserved, keys.stats], args=args)
        return [_text(s) for s in stale]

    async def fail(
        self,
        queue: str,
        job_id: str,
        token: int,
        error: str,
        *,
        delay: float = 0.0,
        dead: bool = False,
    ) -> str:
        """Record a failed attempt: retry after ``delay`` or dead-letter; "stale" if not ours."""
        keys = self.keys(queue)
        reply = await self._scripts.fail(
            keys=[keys.reserved, keys.scheduled, keys.dead, keys.stats],
            args=[keys.job_prefix, job_id, token, error, _ms(delay), repr(delay), int(dead)],
        )
        return _text(reply)

    async def release(self, queue: str, items: Sequence[tuple[str, int, bool]]) -> int:
        """Give leased jobs back to the front of ready; ``(id, token, started)`` per job."""
        if not items:
            return 0
        keys = self.keys(queue)
        args: list[Any] = [keys.job_prefix]
        for job_id, token, started in items:
            args += (job_id, token, 0 if started else 1)
        return int(
            await self._scripts.release(
                keys=[keys.reserved, keys.ready, keys.stats, keys.wake], args=args
            )
        )

    async def defer(self, queue: str, items: Sequence[tuple[str, int, float]]) -> int:
        """Put leased jobs back in ``scheduled`` for later, refunding the attempt; not a failure.

        ``(id, token, delay seconds)`` per job; for jobs over an execution limit. Returns how
        many were deferred (a job whose lease was taken over is skipped).
        """
        if not items:
            return 0
        keys = self.keys(queue)
        args: list[Any] = [keys.job_prefix]
        for job_id, token, delay in items:
            args += (job_id, token, _ms(delay))
        return int(
            await self._scripts.defer(keys=[keys.reserved, keys.scheduled, keys.stats], args=args)
        )

    async def extend(self, queue: str, held: Sequence[tuple[str, int]], lease: float) -> list[str]:
        """Renew leases; returns the ids that are no longer ours."""
        if not held:
            return []
        keys = self.keys(queue)
        args: list[Any] = [keys.job_prefix, _ms(lease)]
        for job_id, token in held:
            args += (job_id, token)
        lost = await self._scripts.extend(keys=[keys.reserved], args=args)
        return [_text(i) for i in lost]

    # ---------------------------------------------------------------- maintenance

    async def promote(self, queue: str, limit: int = 1000) -> int:
        """Move due scheduled jobs to ready; returns how many moved."""
        keys = self.keys(queue)
        return int(
            await self._scripts.promote(
                keys=[keys.scheduled, keys.ready, keys.wake], args=[keys.job_prefix, limit]
            )
        )

    async def reap(self, queue: str, limit: int = 1000) -> tuple[int, int]:
        """Return expired leases to ready (or dead); returns (requeued, dead)."""
        keys = self.keys(queue)
        requeued, dead = await self._scripts.reap(
            keys=[keys.reserved, keys.ready, keys.dead, keys.stats, keys.wake],
            args=[keys.job_prefix, limit],
        )
        return int(requeued), int(dead)

    async def requeue(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Send dead jobs back to ready: the given ids, or every dead job when ``ids`` is None."""
        keys = self.keys(queue)
        script_keys = [keys.dead, keys.ready, keys.stats, keys.wake]
        if ids is not None:
            if not ids:
                return 0
            return int(
                await self._scripts.requeue(keys=script_keys, args=[keys.job_prefix, "ids", *ids])
            )
        total = 0
        while True:
            n = int(
                await self._scripts.requeue(
                    keys=script_keys, args=[keys.job_prefix, "oldest", 1000]
                )
            )
            total += n
            if n == 0:
                return total

    # ---------------------------------------------------------------- reading

    async def queue_names(self) -> list[str]:
        names = await self.redis.smembers(queues_key(self.prefix))
        return sorted(_text(n) for n in names)

    async def stats(self, queue: str) -> QueueStats:
        return (await self.stats_many([queue]))[0]

    async def stats_many(self, queues: Sequence[str]) -> list[QueueStats]:
        """Depths and counters of several queues in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                keys = self.keys(queue)
                pipe.llen(keys.ready)
                pipe.zcard(keys.scheduled)
                pipe.zcard(keys.reserved)
                pipe.zcard(keys.dead)
                pipe.hgetall(keys.stats)
            replies = await pipe.execute()
        out = []
        for i, queue in enumerate(queues):
            ready, scheduled, reserved, dead, counters = replies[5 * i : 5 * i + 5]
            out.append(
                QueueStats(
                    name=queue,
                    ready=ready,
                    scheduled=scheduled,
                    reserved=reserved,
                    dead=dead,
                    counters={_text(k): int(v) for k, v in counters.items()},
                )
            )
        return out

    async def get_job(self, job_id: str, queue: str | None = None) -> JobRecord | None:
        """A job with its state, or None when it is unknown (or its result expired).

        One read: the id names its queue (``queue`` is for an id chosen without one).
        """
        name = queue or queue_of(job_id)
        fields = await self.redis.hgetall(self.keys(name).job(job_id))
        return _record(job_id, name, fields) if fields else None

    async def dead_jobs(self, queue: str, offset: int = 0, limit: int = 50) -> list[JobRecord]:
        """Dead jobs, most recent first."""
        keys = self.keys(queue)
        ids = await self.redis.zrevrange(keys.dead, offset, offset + limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.job(_text(job_id)))
            rows = await pipe.execute()
        return [_record(_text(i), queue, row) for i, row in zip(ids, rows, strict=True) if row]

    # ---------------------------------------------------------------- workers

    async def heartbeat(
        self, worker_id: str, info: dict[str, str | int | float], ttl: float
    ) -> None:
        """Say this worker is alive; its description expires unless renewed within ``ttl``."""
        key = worker_key(worker_id, self.prefix)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.time()
            pipe.hset(key, mapping=dict(info.items()))
            pipe.pexpire(key, _ms(ttl))
            now, *_ = await pipe.execute()
        await self.redis.zadd(workers_key(self.prefix), {worker_id: now[0] * 1000 + now[1] // 1000})

    async def remove_worker(self, worker_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(workers_key(self.prefix), worker_id)
            pipe.delete(worker_key(worker_id, self.prefix))
            await pipe.execute()

    async def live_workers(self, max_age: float) -> dict[str, dict[str, str]]:
        """Workers that beat within ``max_age`` seconds, with their descriptions."""
        sec, usec = await self.redis.time()
        now_ms = sec * 1000 + usec // 1000
        ids = await self.redis.zrangebyscore(
            workers_key(self.prefix), now_ms - _ms(max_age), "+inf"
        )
        out: dict[str, dict[str, str]] = {}
        for raw in ids:
            worker_id = _text(raw)
            info = await self.redis.hgetall(worker_key(worker_id, self.prefix))
            if info:
                out[worker_id] = {_text(k): _text(v) for k, v in info.items()}
        return out


UNDECODABLE = "<undecodable>"


def _record(job_id: str, queue: str, raw_fields: dict[Any, Any]) -> JobRecord:
    """A JobRecord from a job hash; a spec that cannot be decoded is shown, not raised."""
    fields = {_text(k): v for k, v in raw_fields.items()}

    def seconds(name: str) -> float | None:
        value = fields.get(name)
        return int(value) / 1000 if value is not None else None

    error = fields.get("e")
    try:
        job = decode_job(fields.get("d", b""))
    except PayloadDecodeError:
        raw = fields.get("d", b"")
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        job = Job(id=job_id, type=UNDECODABLE, payload=text, queue=queue)
    return JobRecord(
        job=job,
        state=JobState(_text(fields["s"])),
        attempts=int(fields.get("a", 0)),
        last_error=_text(error) if error is not None else None,
        enqueued_at=seconds("eq"),
        started_at=seconds("st"),
        finished_at=seconds("fi"),
    )
