"""The producer's side of jobrunner, apart from the worker's protocol: enqueue jobs, read them,
wait for their results, cancel them, requeue dead ones, pause queues.

``Client`` is asyncio (redis-py's asyncio client); ``SyncClient`` (``jobrunner.sync_client``)
does the same over a blocking connection for Django, Flask or a script, calling the same Lua
scripts with the same arguments (``jobrunner.calls``). Both refuse a job type no handler serves
when the producer has imported handlers (the registry is not empty), as the API and the CLI do;
a producer that imported none cannot tell, and the job is dead-lettered by a worker instead.

``client.result(id)`` waits without polling: it flags the job as waited for, and the script that
ends the job pushes to a list of that job's, which the client blocks on.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import weakref
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from jobrunner.calls import FINAL_STATES, NewJob, QueueStats
from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.errors import ConfigError, JobCancelled, JobFailed, UnknownJob
from jobrunner.job import JobRecord, JobState, queue_of
from jobrunner.keys import PREFIX
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Registry
from jobrunner.registry import registry as default_registry
from jobrunner.tracing import enqueue_span

# BLPOP waits in pieces shorter than the connection's socket timeout (10 s).
WAIT_SLICE = 5.0
JobSpec = Mapping[str, Any]  # {"type": ..., "payload": ..., "queue": ..., "delay": ..., ...}


def new_jobs(registry: Registry, jobs: Iterable[JobSpec]) -> list[NewJob]:
    """``enqueue_many``'s dicts as jobs: ``type`` and the ``enqueue`` options by name."""
    out = []
    for spec in jobs:
        options = dict(spec)
        delay = float(options.pop("delay", 0.0))
        key = options.pop("idempotency_key", None)
        job = registry.new_job(options.pop("type"), options.pop("payload", None), **options)
        out.append(NewJob(job, delay, key, fresh="job_id" not in options))
    return out


def outcome_of(job_id: str, record: JobRecord | None) -> Any:
    """A finished job's result, or the exception that says why there is none."""
    if record is None:
        raise UnknownJob(f"no job {job_id!r} (or its record expired)")
    if record.state is JobState.DEAD:
        raise JobFailed(job_id, record.last_error)
    if record.state is JobState.CANCELLED:
        raise JobCancelled(f"job {job_id} was cancelled: {record.last_error or ''}".rstrip(": "))
    return record.result


class Client:
    """Enqueue and follow jobs from asyncio code. ``async with Client.from_url() as c: ...``"""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = PREFIX,
        registry: Registry | None = None,
        result_ttl: float = 600.0,
        idempotency_ttl: float = 86_400.0,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        owns_connection: bool = False,
        history: int = 0,
        pg_url: str = "",
    ) -> None:
        self.redis = redis
        self.registry = registry if registry is not None else default_registry
        self._queue = ReliableQueue(
            redis, prefix=prefix, registry=self.registry, result_ttl=result_ttl,
            idempotency_ttl=idempotency_ttl, pipelined=True, wait_replicas=wait_replicas,
            wait_timeout=wait_timeout, history=history,
        )  # fmt: skip
        self._owns = owns_connection
        self.pg_url = pg_url  # the job history's database, for history()
        self._history: Any = None  # its HistoryStore, opened by the first history()

    @classmethod
    def from_url(cls, url: str | None = None, **options: Any) -> Client:
        """A client on ``url`` (default: ``REDIS_URL`` / ``JOBRUNNER_REDIS_URL``) that closes
        its connection pool with ``aclose()`` or the ``async with`` block."""
        settings = Settings.from_env(None, **({"redis_url": url} if url else {}))
        given = {"prefix": settings.prefix, "result_ttl": settings.result_ttl,
                 "idempotency_ttl": settings.idempotency_ttl, "history": settings.history,
                 "wait_replicas": settings.wait_replicas, "wait_timeout": settings.wait_timeout,
                 "pg_url": settings.pg_url, **options}  # fmt: skip
        return cls(async_redis(settings.redis_url), owns_connection=True, **given)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._queue.aclose()  # the `enqueued` counts it carries
        if self._history is not None:
            await self._history.aclose()
            self._history = None
        if self._owns:
            await self.redis.aclose()

    # ---------------------------------------------------------------- producing

    async def enqueue(
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
        """Enqueue one job; returns its id (that of an earlier job its idempotency key names).

        ``queue``, ``max_retries`` and ``timeout`` default to the handler's options (when this
        process imported it), else to the default queue, 3 retries and 30 seconds.
        """
        job = self.registry.new_job(type, payload, queue=queue, job_id=job_id,
                                    max_retries=max_retries, timeout=timeout)  # fmt: skip
        new = NewJob(job, delay, idempotency_key, fresh=job_id is None)
        return (await self._enqueue([new]))[0]

    async def enqueue_many(self, jobs: Iterable[JobSpec]) -> list[str]:
        """Enqueue jobs given as dicts (``{"type": ..., "payload": ..., "queue": ...}``), all
        of them or none (up to 10,000 at a time); returns their ids in order."""
        return await self._enqueue(new_jobs(self.registry, jobs))

    async def _enqueue(self, batch: list[NewJob]) -> list[str]:
        with enqueue_span(batch) as batch:  # with tracing on, the jobs carry its context
            return (await self._queue.enqueue_batch(batch)).ids

    # ---------------------------------------------------------------- following

    async def get(self, job_id: str) -> JobRecord | None:
        """A job's state, attempts, last error, timestamps and result; None when unknown."""
        return await self._queue.get_job(job_id)

    async def stats(self, queue: str) -> QueueStats:
        """The queue's depths, lifetime counters and whether it is paused, in one round trip."""
        return await self._queue.stats(queue)

    async def result(self, job_id: str, timeout: float | None = None) -> Any:
        """Wait for a job to end and return its result (what its handler returned).

        Raises ``JobFailed`` (dead, with its last error), ``JobCancelled``, ``UnknownJob``, or
        ``TimeoutError`` when it has not ended within ``timeout`` seconds (None: wait on).
        """
        state = await self._queue.watch(job_id)
        if not state:
            raise UnknownJob(f"no job {job_id!r} (or its record expired)")
        if JobState(state) not in FINAL_STATES:
            notify = self._queue.keys(queue_of(job_id)).notify(job_id)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} did not end within {timeout}s")
                # BLPOP takes whole seconds on old servers; sub-second waits need Redis 6+
                if await self.redis.blpop([notify], timeout=min(left, WAIT_SLICE)) is not None:
                    break
        return outcome_of(job_id, await self.get(job_id))

    # ---------------------------------------------------------------- operating

    async def cancel(self, job_id: str) -> str:
        """'cancelled' (it will not run), 'cancelling' (its worker is stopping it), its final
        state if it had ended already, or '' for an unknown job."""
        return await self._queue.cancel(job_id)

    async def requeue(self, queue: str, ids: list[str] | None = None) -> int:
        """Dead jobs back to ready, with fresh attempts: the ids given, or all of the queue's."""
        return await self._queue.requeue(queue, ids)

    async def delete(self, queue: str, ids: list[str]) -> int:
        """Remove dead jobs for good (only dead ones: a live job is never deleted)."""
        return await self._queue.delete_dead(queue, ids)

    async def history(self, **filters: Any) -> Any:
        """Jobs that ended, from the history database (``pg_url``; docs/history.md): a
        ``HistoryPage`` (``rows`` newest first, ``next`` the cursor of the following page).
        ``filters``: type, queue, state, since, until (epoch seconds), error (full-text),
        limit, cursor, as ``GET /history``'s. Needs the ``history`` extra (psycopg), which is
        imported here, by name: the core depends on none of it."""
        if not self.pg_url:
            raise ConfigError("no history database: pass pg_url or set JOBRUNNER_PG_URL")
        try:
            store = importlib.import_module("jobrunner.archive.store")
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"history() needs {exc.name!r}: pip install 'jobrunner[history]'"
            ) from exc
        if self._history is None:
            self._history = await store.HistoryStore.connect(self.pg_url)
        return await self._history.query(store.HistoryQuery(**filters))

    async def pause(self, queue: str) -> bool:
        """Workers stop taking the queue's jobs (those running finish); enqueues still work."""
        return await self._queue.pause(queue, True)

    async def resume(self, queue: str) -> bool:
        return await self._queue.pause(queue, False)


_defaults: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = (
    weakref.WeakKeyDictionary()
)


def default_client() -> Client:
    """The client ``Handler.enqueue`` uses without ``client=``: one per event loop, on
    ``REDIS_URL`` (asyncio connections belong to the loop that made them)."""
    loop = asyncio.get_running_loop()
    client = _defaults.get(loop)
    if client is None:
        client = _defaults[loop] = Client.from_url()
    return client
