"""``SyncClient``: ``Client`` for blocking code (Django, Flask, scripts), on redis-py's sync client.

It sends the same script calls as the asyncio side (``jobrunner.calls``) and reads job records
the same way, so a job enqueued here is indistinguishable from one enqueued by ``Client``, the
API or the CLI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from jobrunner.calls import (
    FINAL_STATES,
    Call,
    EnqueueCounts,
    Enqueued,
    NewJob,
    QueueStats,
    by_queue,
    cancel_call,
    check_jobs,
    delete_call,
    enqueue_call,
    enqueue_refusal,
    enqueue_result,
    merged,
    pause_call,
    record_of,
    requeue_call,
    stats_commands,
    stats_each,
    text,
    watch_call,
)
from jobrunner.client import WAIT_SLICE, JobSpec, new_jobs, outcome_of
from jobrunner.config import Settings
from jobrunner.connection import is_cluster, sync_redis
from jobrunner.errors import UnknownJob
from jobrunner.job import JobRecord, JobState, queue_of
from jobrunner.keys import PREFIX, QueueKeys, queues_key, shards_key
from jobrunner.pipelined import SyncPipelinedConnection
from jobrunner.registry import Registry
from jobrunner.registry import registry as default_registry
from jobrunner.scripts import SyncScripts
from jobrunner.shards import ShardCounts, combined, place, shards_of
from jobrunner.tracing import enqueue_span


class SyncClient:
    """Enqueue and follow jobs from blocking code. ``with SyncClient.from_url() as c: ...``"""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = PREFIX,
        registry: Registry | None = None,
        result_ttl: float = 600.0,
        idempotency_ttl: float = 86_400.0,
        owns_connection: bool = False,
        history: int = 0,
    ) -> None:
        self.redis = redis
        self.history = history  # the history stream's bound (cancel writes to it); 0: off
        self.prefix = prefix
        self.registry = registry if registry is not None else default_registry
        self.result_ttl = result_ttl
        self.idempotency_ttl = idempotency_ttl
        self._scripts = SyncScripts(redis)
        self.cluster = is_cluster(redis)  # then redis-py's cluster client routes every call
        # enqueues, pipelined across threads (on one Redis)
        self._pipe = None if self.cluster else SyncPipelinedConnection(redis)
        self._owns = owns_connection
        self._known_queues: set[str] = set()
        self._keys: dict[str, QueueKeys] = {}
        self.counts = EnqueueCounts()  # `enqueued` counters carried between calls
        self.shards = ShardCounts()  # this client's copy of the shard counts (shards.py)
        self._timer: threading.Timer | None = None
        self._timer_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str | None = None, **options: Any) -> SyncClient:
        """A client on ``url`` (default: ``REDIS_URL`` / ``JOBRUNNER_REDIS_URL``) that closes
        its connections with ``close()`` or the ``with`` block."""
        settings = Settings.from_env(None, **({"redis_url": url} if url else {}))
        return cls(sync_redis(settings.redis_url), prefix=settings.prefix,
                   result_ttl=settings.result_ttl, idempotency_ttl=settings.idempotency_ttl,
                   history=settings.history, owns_connection=True, **options)  # fmt: skip

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self.flush_counts()
        if self._pipe is not None:
            self._pipe.close()
        if self._owns:
            self.redis.close()

    def keys(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = QueueKeys(queue, self.prefix)
        return keys

    def _call(self, call: Call) -> Any:
        script = getattr(self._scripts, call.script)
        if call.script == "enqueue" and self._pipe is not None:
            return self._pipe.evalsha(script.sha, script.script, call.keys, call.args)
        return script(keys=call.keys, args=call.args)

    # ---------------------------------------------------------------- producing

    def enqueue(
        self,
        type: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        delay: float = 0.0,
        job_id: str | None = None,
        idempotency_key: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """Enqueue one job; returns its id (see ``Client.enqueue``)."""
        job = self.registry.new_job(type, payload, queue=queue, job_id=job_id,
                                    max_retries=max_retries, timeout=timeout)  # fmt: skip
        return self._enqueue([NewJob(job, delay, idempotency_key, fresh=job_id is None)])[0]

    def enqueue_many(self, jobs: Iterable[JobSpec]) -> list[str]:
        """Enqueue jobs given as dicts, all of them or none; returns their ids in order."""
        return self._enqueue(new_jobs(self.registry, jobs))

    def _enqueue(self, items: list[NewJob]) -> list[str]:
        with enqueue_span(items) as items:  # with tracing on, the jobs carry its context
            return self._write(items, checked=False).ids

    def _write(self, items: list[NewJob], checked: bool) -> Enqueued:
        try:
            counts = self._shard_counts()
        except RedisError as exc:  # nothing written: a refusal, as the script's would be
            raise enqueue_refusal(exc) or exc from exc
        if counts:  # a sharded queue's jobs go to their shards
            items = [place(item, counts) for item in items]
        if self.cluster and len(groups := by_queue(items)) > 1:  # one script call per slot
            check_jobs(items, jobs_checked=checked)
            return merged(items, [(g, self._write(g, checked=True)) for g in groups])
        call, queues = enqueue_call(items, self.keys, self.registry, prefix=self.prefix,
                                    max_depth=0, idempotency_ttl=self.idempotency_ttl,
                                    checked=checked, counts=self.counts,
                                    cluster=self.cluster)  # fmt: skip
        try:
            new = [q for q in queues if q not in self._known_queues]
            if new:
                self.redis.sadd(queues_key(self.prefix), *new)
                self._known_queues.update(new)
            done = enqueue_result(items, queues, self._call(call), 0)
        except BaseException as exc:
            if self.counts.restore(self.counts.counted_now(call, queues)):
                self._flush_counts_later()
            if (refusal := enqueue_refusal(exc)) is not None:
                raise refusal from exc
            raise
        if self.counts.settle(call, queues, items, done.created):
            self._flush_counts_later()
        return done

    def _shard_counts(self) -> dict[str, int]:
        """The sharded queues' shard counts, re-read every ``shards.refresh`` seconds."""
        if self.shards.due():
            self.shards.update(self.redis.hgetall(shards_key(self.prefix)))
        return self.shards.counts

    def _flush_counts_later(self) -> None:
        """A flush within ``counts.every`` (a daemon timer), unless one is already due."""
        with self._timer_lock:
            if self._timer is None:
                self._timer = threading.Timer(self.counts.every, self._flush_counts_now)
                self._timer.daemon = True
                self._timer.start()

    def _flush_counts_now(self) -> None:
        with self._timer_lock:
            self._timer = None
        self.flush_counts(retry=True)

    def flush_counts(self, retry: bool = False) -> None:
        """Write the ``enqueued`` counts carried so far (see ``EnqueueCounts``)."""
        carried = self.counts.take()
        if not carried:
            return
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for name, n in carried.items():
                    pipe.hincrby(self.keys(name).stats, "enqueued", n)
                pipe.execute()
        except RedisError:
            if self.counts.restore(carried) and retry:
                self._flush_counts_later()

    # ---------------------------------------------------------------- following

    def get(self, job_id: str) -> JobRecord | None:
        queue = queue_of(job_id)
        fields = self.redis.hgetall(self.keys(queue).job(job_id))
        return record_of(job_id, queue, fields) if fields else None

    def stats(self, queue: str) -> QueueStats:
        """The queue's depths, lifetime counters and whether it is paused, in one round trip
        (a sharded queue's: summed over its shards, each beside)."""
        self.flush_counts()  # read its own writes
        names = shards_of(queue, self._shard_counts())
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            for command, key in stats_commands(self.keys(name)):
                getattr(pipe, command)(key)
        return combined(queue, stats_each(names, pipe.execute()))

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """Wait for a job to end and return its result (see ``Client.result``)."""
        keys = self.keys(queue_of(job_id))
        state = text(self._call(watch_call(keys, job_id)))
        if not state:
            raise UnknownJob(f"no job {job_id!r} (or its record expired)")
        if JobState(state) not in FINAL_STATES:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} did not end within {timeout}s")
                if self.redis.blpop([keys.notify(job_id)], timeout=min(left, WAIT_SLICE)):
                    break
        return outcome_of(job_id, self.get(job_id))

    # ---------------------------------------------------------------- operating

    def cancel(self, job_id: str) -> str:
        keys = self.keys(queue_of(job_id))
        return text(self._call(cancel_call(keys, job_id, self.result_ttl, self.history)))

    def requeue(self, queue: str, ids: list[str] | None = None) -> int:
        keys = self.keys(queue)
        if ids is not None:
            return int(self._call(requeue_call(keys, ids))) if ids else 0
        total = 0
        while n := int(self._call(requeue_call(keys, None))):
            total += n
        return total

    def delete(self, queue: str, ids: list[str]) -> int:
        """Remove dead jobs for good (only dead ones: a live job is never deleted)."""
        return int(self._call(delete_call(self.keys(queue), ids))) if ids else 0

    def pause(self, queue: str) -> bool:
        """Workers stop taking the queue's jobs (every shard's); True if that changed."""
        return self._set_paused(queue, True)

    def resume(self, queue: str) -> bool:
        return self._set_paused(queue, False)

    def _set_paused(self, queue: str, paused: bool) -> bool:
        names = shards_of(queue, self._shard_counts())
        changed = [bool(self._call(pause_call(self.keys(n), paused))) for n in names]  # each
        return any(changed)


_default: list[SyncClient] = []  # made on first use
_default_lock = threading.Lock()


def default_sync_client() -> SyncClient:
    """The client ``Handler.enqueue_sync`` uses without ``client=``: one, on ``REDIS_URL``."""
    with _default_lock:
        if not _default:
            _default.append(SyncClient.from_url())
        return _default[0]
