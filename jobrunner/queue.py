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

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from jobrunner.calls import (
    BATCH_LIMIT,
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
    ms,
    pause_call,
    record_of,
    requeue_call,
    stats_commands,
    stats_each,
    text,
    watch_call,
)
from jobrunner.connection import is_cluster
from jobrunner.job import Job, JobRecord, queue_of
from jobrunner.keys import PREFIX, QueueKeys, queues_key, shards_key, worker_key, workers_key
from jobrunner.pipelined import NotReplicated, PipelinedConnection
from jobrunner.registry import Registry
from jobrunner.registry import registry as default_registry
from jobrunner.routed import RoutedConnections
from jobrunner.scripts import Scripts
from jobrunner.shards import (
    ShardCounts,
    check_shards,
    combined,
    expand,
    logical_of,
    place,
    shards_of,
)

__all__ = ["BATCH_LIMIT", "Enqueued", "NewJob", "QueueStats", "ReliableQueue", "Reservation"]


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
    marked: bool = False  # its start mark was written by reserve: run it now, no start call


_ms, _text = ms, text


def _marks(items: Sequence[tuple[str, int]]) -> bytes:
    """Start marks as the scripts take them: one JSON argument, [id, token, id, token, ...]."""
    return msgspec.json.encode([x for job_id, token in items for x in (job_id, str(token))])


COALESCE_LIMIT = 1000  # a caller with this many jobs or more sends them alone
# enqueue calls on their way to one queue at once; callers meanwhile gather into the next (two
# measured no faster than one here: bench.enqueue_cost's 64 tasks, within the noise)
IN_FLIGHT = 1


class _Lane:
    """One queue's enqueue calls (at one ``max_depth``): those on their way, and the group
    gathering behind them."""

    __slots__ = ("in_flight", "waiting")

    def __init__(self) -> None:
        self.in_flight = 0
        self.waiting = _Group()


class _Group:
    """Enqueue calls to one queue that wait for the call on its way to return, sent as one."""

    __slots__ = ("done", "items")

    def __init__(self) -> None:
        self.items: list[NewJob] = []
        self.done: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        # retrieved here too, so a group whose callers all went away does not warn
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())


class ReliableQueue:
    """Async access to jobrunner's queues on one Redis.

    ``result_ttl`` is how long a finished job's hash is kept for ``get_job`` (0 deletes it at once);
    ``idempotency_ttl`` how long an idempotency key keeps naming its job (a day by default).
    ``registry`` (default: the one ``@handler`` fills) supplies per-type ``max_retries``.
    ``count_every``: how long the ``enqueued`` counter may lag a burst of enqueues (see
    ``EnqueueCounts``; 0 counts every call at once). ``pipelined``: run the transitions' scripts
    over one connection of its own that pipelines concurrent calls (``PipelinedConnection``),
    as producers and workers do; ``aclose()`` closes it.

    ``wait_replicas``: after each enqueue and ack, ``WAIT`` until that many replicas have the
    write (at most ``wait_timeout`` seconds): an enqueue that is not confirmed in time raises
    ``RedisUnavailable`` (it is on the primary; a failover could lose it), an ack goes on and is
    counted in ``unreplicated`` (a lost ack only means the job runs again).

    ``history``: above 0, every job that ends here (ack, fail, cancel, reap) is also written to
    its queue's history stream, trimmed to about that many entries, for the archiver
    (``jobrunner archiver``, docs/history.md); 0 (the default) writes nothing.

    On Redis Cluster (``redis`` a cluster client) every script runs on the master serving its
    queue's slot, over a pipelining connection per master (``RoutedConnections``), and a batch
    over several queues is written one queue at a time: all or nothing per queue, not for the
    batch (see docs/scaling.md).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = PREFIX,
        result_ttl: float = 600.0,
        registry: Registry | None = None,
        idempotency_ttl: float = 86_400.0,
        count_every: float = 1.0,
        pipelined: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        history: int = 0,
    ) -> None:
        self.redis = redis
        self.history = history  # the history stream's bound in entries; 0: no history
        self.registry = registry if registry is not None else default_registry
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.idempotency_ttl = idempotency_ttl  # how long a client's key keeps naming its job
        self._scripts = Scripts(redis)
        self._keys: dict[str, QueueKeys] = {}
        self._known_queues: set[str] = set()
        self.cluster = is_cluster(redis)
        self._pipe: PipelinedConnection | RoutedConnections | None = None
        if self.cluster:
            self._pipe = RoutedConnections(redis)  # type: ignore[arg-type]
        elif pipelined or wait_replicas:  # WAIT must follow the write on its connection
            self._pipe = PipelinedConnection.from_redis(redis)
        self._wait = (wait_replicas, _ms(wait_timeout)) if wait_replicas else None
        self.shards = ShardCounts()  # this process's copy of the shard counts (shards.py)
        self._shard_read: asyncio.Future[dict[str, int]] | None = None
        self.unreplicated = 0  # acks that WAIT did not see reach wait_replicas replicas
        self._lanes: dict[tuple[str, int], _Lane] = {}  # (queue, max_depth) -> its calls
        self._group_tasks: set[asyncio.Task[None]] = set()
        self.counts = EnqueueCounts(count_every)  # `enqueued` counters carried between calls
        self._count_flush: asyncio.TimerHandle | None = None
        self._count_task: asyncio.Task[None] | None = None
        # queues whose last reserve found them paused: an idle worker does not watch them
        self.paused: set[str] = set()

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
        job = self.registry.new_job(type, payload, queue=queue, job_id=job_id,
                                    max_retries=max_retries, timeout=timeout)  # fmt: skip
        return (await self.enqueue_batch([NewJob(job, delay, fresh=job_id is None)])).ids[0]

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

        With ``pipelined``, calls to one queue made while a call to it is on its way are
        coalesced: they go together, as one script call, when it returns, and each caller gets
        its own ids. A lone caller is never held back. The jobs are checked before they join,
        so one caller's bad job fails that caller only; a refusal of the whole call (a full
        queue, Redis at maxmemory or unreachable) is every caller's, as it would have been
        each one's alone.
        """
        try:
            counts = await self.shard_counts()
        except RedisError as exc:  # nothing written: a refusal, as the script's would be
            raise enqueue_refusal(exc) or exc from exc
        if counts:
            items = [place(item, counts) for item in items]
        if self._pipe is None or not items or len(items) >= COALESCE_LIMIT:
            return await self._write_batch(items, max_depth, checked)
        queue = items[0].job.queue
        if any(item.job.queue != queue for item in items):
            return await self._write_batch(items, max_depth, checked)
        key = (queue, max_depth)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if lane.in_flight < IN_FLIGHT and not lane.waiting.items:  # room on the way: go now
            lane.in_flight += 1
            try:
                return await self._write_batch(items, max_depth, checked)
            finally:
                lane.in_flight -= 1
                self._send_waiting(key, lane)
        check_jobs(items, jobs_checked=checked)  # a bad job fails its own caller, not the group
        group = lane.waiting
        offset = len(group.items)
        group.items.extend(items)
        done = await asyncio.shield(group.done)
        end = offset + len(items)
        return Enqueued(ids=done.ids[offset:end], created=done.created[offset:end])

    def _send_waiting(self, key: tuple[str, int], lane: _Lane) -> None:
        """A call to ``key``'s queue returned: send the group that gathered meanwhile."""
        if not lane.waiting.items:
            if not lane.in_flight:
                del self._lanes[key]  # idle again
            return
        group, lane.waiting = lane.waiting, _Group()
        lane.in_flight += 1
        task = asyncio.ensure_future(self._send_group(key, lane, group))
        self._group_tasks.add(task)
        task.add_done_callback(self._group_tasks.discard)

    async def _send_group(self, key: tuple[str, int], lane: _Lane, group: _Group) -> None:
        try:
            group.done.set_result(await self._write_batch(group.items, key[1], True))
        except BaseException as exc:
            group.done.set_exception(exc)
        finally:
            lane.in_flight -= 1
            self._send_waiting(key, lane)

    async def _write_batch(
        self, items: Sequence[NewJob], max_depth: int, checked: bool
    ) -> Enqueued:
        if self.cluster and len(groups := by_queue(items)) > 1:
            check_jobs(items, jobs_checked=checked)  # a bad job is found before any write
            parts = [(g, await self._write_batch(g, max_depth, True)) for g in groups]
            return merged(items, parts)
        call, queues = enqueue_call(
            items, self.keys, self.registry, prefix=self.prefix, max_depth=max_depth,
            idempotency_ttl=self.idempotency_ttl, checked=checked, counts=self.counts,
            cluster=self.cluster,
        )  # fmt: skip
        try:
            await self._remember_queues(queues)
            reply = await self._call(call)
            done = enqueue_result(items, queues, reply, max_depth)
        except BaseException as exc:
            if self.counts.restore(self.counts.counted_now(call, queues)):
                self._flush_counts_later()
            if (refusal := enqueue_refusal(exc)) is not None:
                raise refusal from exc
            raise
        if self.counts.settle(call, queues, items, done.created):
            self._flush_counts_later()
        return done

    def _flush_counts_later(self) -> None:
        """A flush within ``count_every``, unless one is already due."""
        if self._count_flush is None:
            self._count_flush = asyncio.get_running_loop().call_later(
                self.counts.every, self._flush_counts_now
            )

    def _flush_counts_now(self) -> None:
        self._count_flush = None
        self._count_task = asyncio.ensure_future(self.flush_counts())

    async def flush_counts(self, retry: bool = True) -> None:
        """Write the ``enqueued`` counts carried so far (see ``EnqueueCounts``)."""
        carried = self.counts.take()
        if not carried:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for name, n in carried.items():
                    pipe.hincrby(self.keys(name).stats, "enqueued", n)
                await pipe.execute()
        except RedisError:
            self.counts.restore(carried)
            if retry:
                self._flush_counts_later()  # try again in a second

    async def aclose(self) -> None:
        """Write what is carried; call before closing the Redis client."""
        if self._count_flush is not None:
            self._count_flush.cancel()
            self._count_flush = None
        await self.flush_counts(retry=False)
        if self._pipe is not None:
            await self._pipe.aclose()

    async def _call(self, call: Call) -> Any:
        durable = call.script == "enqueue"
        return await self._script(call.script, keys=call.keys, args=call.args, durable=durable)

    async def _script(
        self, name: str, *, keys: list[Any], args: list[Any], durable: bool = False
    ) -> Any:
        """Run a transition's script: on the pipelining connection where there is one; a
        ``durable`` one waits for ``wait_replicas`` (raises ``NotReplicated`` short of them)."""
        script: AsyncScript = getattr(self._scripts, name)
        if self._pipe is not None:
            wait = self._wait if durable else None
            return await self._pipe.evalsha(script.sha, script.script, keys, args, wait=wait)
        return await script(keys=keys, args=args)

    async def _remember_queues(self, names: Iterable[str]) -> None:
        new = [name for name in names if name not in self._known_queues]
        if new:
            await self.redis.sadd(queues_key(self.prefix), *new)
            self._known_queues.update(new)

    # ---------------------------------------------------------------- shards

    async def shard_counts(self) -> dict[str, int]:
        """The sharded queues and their shard counts, re-read every ``shards.refresh`` s: by
        one read that every caller meanwhile waits on (they go on in the order they came, as
        the coalescing of enqueues expects)."""
        if not self.shards.due():
            return self.shards.counts  # no await: the caller keeps its place
        if self._shard_read is None:
            self._shard_read = asyncio.ensure_future(self._read_shard_counts())
        return await asyncio.shield(self._shard_read)

    async def _read_shard_counts(self) -> dict[str, int]:
        try:
            return self.shards.update(await self.redis.hgetall(shards_key(self.prefix)))
        finally:
            self._shard_read = None

    async def serving(self, queues: Sequence[str], turn: int = 0) -> list[str]:
        """The queues that hold ``queues``' jobs, shards in place of sharded ones (rotated by
        ``turn``), in priority order: what a worker reserves from."""
        return expand(queues, await self.shard_counts(), turn)

    async def declare_shards(self, queue: str, n: int) -> int:
        """Spread ``queue`` over ``n`` shards (more than it has; never fewer); returns the
        number it had."""
        key = shards_key(self.prefix)
        current = int(await self.redis.hget(key, queue) or 1)
        check_shards(queue, n, current)
        await self.redis.hset(key, queue, n)
        await self._remember_queues([queue])
        self.shards.update(await self.redis.hgetall(key))
        return current

    async def holding(self, queue: str) -> list[str]:
        """The queues that hold ``queue``'s jobs: its shards, or itself."""
        return shards_of(queue, await self.shard_counts())

    # ---------------------------------------------------------------- consuming

    async def reserve(
        self, queue: str, count: int, lease: float, start: int = 0
    ) -> list[Reservation]:
        """Lease up to ``count`` ready jobs for ``lease`` seconds, in one round trip; the first
        ``start`` of them are marked started too (the caller runs them at once)."""
        keys = self.keys(queue)
        reply = await self._script("reserve",
            keys=[keys.ready, keys.reserved, keys.fence, keys.paused, keys.cancel, keys.stats,
                  keys.claimed],
            args=[keys.job_prefix, count, _ms(lease), keys.notify_prefix, _ms(self.result_ttl),
                  start],
        )  # fmt: skip
        now_ms = int(reply[0])
        if int(reply[1]):
            self.paused.add(queue)
        else:
            self.paused.discard(queue)
        out: list[Reservation] = []
        for n, i in enumerate(range(2, len(reply), 6)):
            last_delay = reply[i + 5]
            out.append(
                Reservation(
                    queue=queue,
                    id=_text(reply[i]),
                    token=int(reply[i + 1]),
                    attempts=int(reply[i + 2]),
                    raw=reply[i + 3] or b"",
                    # a producer whose clock runs ahead of Redis's must not make a wait negative
                    enqueued_ms=min(int(reply[i + 4] or now_ms), now_ms),
                    reserved_ms=now_ms,
                    last_delay=float(last_delay) if last_delay else None,
                    marked=n < start,
                )
            )
        return out

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block until one of ``queues`` holds a ready job, or ``timeout`` passes.

        ``BLMOVE ready claimed RIGHT LEFT`` blocks while ready is empty and, once it is not,
        moves one id to ``claimed``, where the next reserve takes it first: one job wakes one
        worker, within a round trip of whatever readied it (enqueue, promote, requeue, a reap,
        a rename), and no script spends a command on waking anyone. Several queues are watched
        at once, one blocking call each, the first to return ending the wait (an id another
        moved meanwhile waits in its ``claimed`` for the next reserve). A queue its last
        reserve found paused is not watched (its jobs may not be taken): the worker looks again
        after ``timeout``. True when a queue held a job.
        """
        watched = [name for name in queues if name not in self.paused]
        if not watched:
            await asyncio.sleep(timeout)
            return False
        if len(watched) == 1:
            return await self._block_until_ready(watched[0], timeout)
        waits = [asyncio.ensure_future(self._block_until_ready(key, timeout)) for key in watched]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return any(w.exception() is None and w.result() for w in done if not w.cancelled())

    async def _block_until_ready(self, queue: str, timeout: float) -> bool:
        keys = self.keys(queue)
        moved = await self.redis.blmove(keys.ready, keys.claimed, timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]
        return moved is not None

    async def ack(
        self, queue: str, done: Sequence[tuple[str, int] | tuple[str, int, bytes | None]]
    ) -> list[str]:
        """Mark jobs done, each with its result (JSON bytes, or None); returns the ids rejected
        because their lease was taken over. ``(id, token)`` pairs mean no result."""
        if not done:
            return []
        return (await self.ack_and_start(queue, done, ()))[0]

    async def ack_and_start(
        self,
        queue: str,
        done: Sequence[tuple[str, int] | tuple[str, int, bytes | None]],
        starts: Sequence[tuple[str, int]],
    ) -> tuple[list[str], list[str]]:
        """``ack`` and ``start`` in one script call: where a runner's slot turns over, the
        finished job's ack carries the start mark of the next. Returns (the stale acks, the
        start marks no longer held)."""
        keys = self.keys(queue)
        marks = _marks(starts) if starts else ""
        args: list[Any] = [keys.job_prefix, _ms(self.result_ttl), keys.notify_prefix, marks,
                           self.history]  # fmt: skip
        for item in done:
            args += (item[0], item[1], (item[2] if len(item) > 2 else None) or b"")
        try:
            stale, lost = await self._script("ack",
                keys=[keys.reserved, keys.stats, keys.cancel, keys.history], args=args,
                durable=True,
            )  # fmt: skip
        except NotReplicated as exc:  # done on the primary; lost in a failover, it runs again
            stale, lost = exc.reply
            self.unreplicated += len(done)
        return [_text(s) for s in stale], [_text(i) for i in lost]

    async def start(self, queue: str, items: Sequence[tuple[str, int]]) -> list[str]:
        """Mark leased jobs as started (charging their attempt) before their handlers run;
        returns the ids no longer held under that token, which must not be started."""
        if not items:
            return []
        keys = self.keys(queue)
        lost = await self._script(
            "start", keys=[keys.reserved], args=[keys.job_prefix, _marks(items)]
        )
        return [_text(i) for i in lost]

    async def finish_cancelled(self, queue: str, items: Sequence[tuple[str, int, str]]) -> int:
        """End leased jobs as cancelled: ``(id, token, what happened)`` each."""
        if not items:
            return 0
        keys = self.keys(queue)
        args: list[Any] = [keys.job_prefix, _ms(self.result_ttl), keys.notify_prefix,
                           self.history]  # fmt: skip
        for job_id, token, why in items:
            args += (job_id, token, why)
        return int(await self._script("cancelled",
            keys=[keys.reserved, keys.stats, keys.cancel, keys.history], args=args))  # fmt: skip

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
        """Record a failed attempt: retry after ``delay`` or dead-letter ("cancelled" when a
        cancellation was asked for while it ran); "stale" if not ours."""
        keys = self.keys(queue)
        reply = await self._script("fail",
            keys=[keys.reserved, keys.scheduled, keys.dead, keys.stats, keys.cancel, keys.history],
            args=[keys.job_prefix, job_id, token, error, _ms(delay), repr(delay), int(dead),
                  keys.notify_prefix, _ms(self.result_ttl), self.history],
        )  # fmt: skip
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
            await self._script("release", keys=[keys.reserved, keys.ready, keys.stats], args=args)
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
            await self._script("defer", keys=[keys.reserved, keys.scheduled, keys.stats], args=args)
        )

    async def extend(self, queue: str, held: Sequence[tuple[str, int]], lease: float) -> list[str]:
        """Renew leases; returns the ids that are no longer ours."""
        if not held:
            return []
        keys = self.keys(queue)
        args: list[Any] = [keys.job_prefix, _ms(lease)]
        for job_id, token in held:
            args += (job_id, token)
        lost = await self._script("extend", keys=[keys.reserved], args=args)
        return [_text(i) for i in lost]

    # ---------------------------------------------------------------- maintenance

    async def promote(self, queue: str, limit: int = 1000) -> int:
        """Move due scheduled jobs to ready; returns how many moved."""
        keys = self.keys(queue)
        return int(
            await self._script(
                "promote", keys=[keys.scheduled, keys.ready], args=[keys.job_prefix, limit]
            )
        )

    async def reap(self, queue: str, limit: int = 1000) -> tuple[int, int, list[str]]:
        """Return expired leases to ready (or dead, or cancelled); returns (requeued, dead, the
        ids whose cancellation is asked for: the worker holding one stops it)."""
        keys = self.keys(queue)
        requeued, dead, cancel = await self._script(
            "reap",
            keys=[keys.reserved, keys.ready, keys.dead, keys.stats, keys.cancel, keys.history],
            args=[keys.job_prefix, limit, keys.notify_prefix, _ms(self.result_ttl), self.history],
        )
        return int(requeued), int(dead), [_text(i) for i in cancel]

    async def requeue(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Send dead jobs back to ready: the given ids, or every dead job when ``ids`` is None."""
        if ids is not None:
            return sum([int(await self._call(requeue_call(self.keys(name), part)))
                        for name, part in _by_shard(queue, ids).items()])  # fmt: skip
        total = 0
        for name in await self.holding(queue):
            while n := int(await self._call(requeue_call(self.keys(name), None))):
                total += n
        return total

    async def cancel(self, job_id: str, queue: str | None = None) -> str:
        """Cancel a job: 'cancelled' (it will not run), 'cancelling' (running; its worker
        stops it), its final state if it had ended, or '' if unknown."""
        keys = self.keys(queue or queue_of(job_id))
        return _text(await self._call(cancel_call(keys, job_id, self.result_ttl, self.history)))

    async def pause(self, queue: str, paused: bool = True) -> bool:
        """Stop (or resume) handing out the queue's jobs (every shard's); True if that changed
        anything."""
        changed = [await self._call(pause_call(self.keys(name), paused))
                   for name in await self.holding(queue)]  # fmt: skip
        return any(changed)

    async def watch(self, job_id: str, queue: str | None = None) -> str:
        """Flag a job as waited for (its end is then pushed to its notify list); its state."""
        return _text(await self._call(watch_call(self.keys(queue or queue_of(job_id)), job_id)))

    # ---------------------------------------------------------------- reading

    async def queue_names(self) -> list[str]:
        """Every queue enqueued to (a sharded one once, by its name, not its shards')."""
        names = await self.redis.smembers(queues_key(self.prefix))
        return sorted({logical_of(_text(n)) for n in names})

    async def stats(self, queue: str) -> QueueStats:
        return (await self.stats_many([queue]))[0]

    async def stats_many(self, queues: Sequence[str]) -> list[QueueStats]:
        """Depths, counters and the paused flag of several queues in one round trip (after
        writing the ``enqueued`` counts this producer carries, so it reads its own writes)."""
        await self.flush_counts()
        held = {queue: await self.holding(queue) for queue in queues}  # a sharded one: each
        flat = [name for queue in queues for name in held[queue]]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in flat:
                for command, key in stats_commands(self.keys(name)):
                    getattr(pipe, command)(key)
            replies = await pipe.execute()
        each = {s.name: s for s in stats_each(flat, replies)}
        return [combined(queue, [each[name] for name in held[queue]]) for queue in queues]

    async def get_job(self, job_id: str, queue: str | None = None) -> JobRecord | None:
        """A job with its state, or None when it is unknown (or its result expired).

        One read: the id names its queue (``queue`` is for an id chosen without one).
        """
        name = queue or queue_of(job_id)
        fields = await self.redis.hgetall(self.keys(name).job(job_id))
        return record_of(job_id, name, fields) if fields else None

    async def dead_jobs(self, queue: str, offset: int = 0, limit: int = 50) -> list[JobRecord]:
        """Dead jobs, most recent first."""
        return [record for record, _ in await self._listed(queue, "dead", offset, limit)]

    async def scheduled_jobs(
        self, queue: str, offset: int = 0, limit: int = 50
    ) -> list[tuple[JobRecord, float]]:
        """Jobs waiting for a time, soonest first, with that time: delayed ones (attempts 0)
        and ones waiting to be retried (attempts > 0)."""
        return await self._listed(queue, "scheduled", offset, limit)

    async def running_jobs(
        self, queue: str, offset: int = 0, limit: int = 50
    ) -> list[tuple[JobRecord, float]]:
        """Reserved jobs, with the time their lease ends, soonest first."""
        return await self._listed(queue, "reserved", offset, limit)

    async def delete_dead(self, queue: str, ids: Sequence[str]) -> int:
        """Remove dead jobs for good; ids not in dead are left alone. Returns how many."""
        return sum([int(await self._call(delete_call(self.keys(name), part)))
                    for name, part in _by_shard(queue, ids).items()])  # fmt: skip

    async def _listed(
        self, queue: str, where: str, offset: int, limit: int
    ) -> list[tuple[JobRecord, float]]:
        """A page of one of the queue's sorted sets (over every shard of a sharded one: each
        shard's first offset + limit, merged by score)."""
        names = await self.holding(queue)
        if len(names) == 1:
            return await self._listed_one(queue, where, offset, limit)
        rows = [
            row for name in names for row in await self._listed_one(name, where, 0, offset + limit)
        ]
        rows.sort(key=lambda row: row[1], reverse=where == "dead")
        return rows[offset : offset + limit]

    async def _listed_one(
        self, queue: str, where: str, offset: int, limit: int
    ) -> list[tuple[JobRecord, float]]:
        """A page of one of the queue's sorted sets, read in two round trips."""
        keys = self.keys(queue)
        key = getattr(keys, where)
        end = offset + limit - 1
        entries: list[Any] = await self.redis.zrange(
            key, offset, end, desc=where == "dead", withscores=True
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _ in entries:
                pipe.hgetall(keys.job(_text(job_id)))
            rows = await pipe.execute()
        return [
            (record_of(_text(job_id), queue, row), float(score))
            for (job_id, score), row in zip(entries, rows, strict=True)
            if row
        ]

    # ---------------------------------------------------------------- workers

    async def heartbeat(
        self, worker_id: str, info: dict[str, str | int | float], ttl: float
    ) -> None:
        """Say this worker is alive; its description expires unless renewed within ``ttl``."""
        key = worker_key(worker_id, self.prefix)
        # TIME on its own: a cluster pipeline refuses a command without a key (a beat a second
        # can afford the round trip); the description and its expiry in one transaction
        sec, usec = await self.redis.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=dict(info.items()))
            pipe.pexpire(key, _ms(ttl))
            await pipe.execute()
        await self.redis.zadd(workers_key(self.prefix), {worker_id: sec * 1000 + usec // 1000})

    async def remove_worker(self, worker_id: str) -> None:
        # two keys in two slots on Redis Cluster: each removal stands alone, no transaction
        async with self.redis.pipeline(transaction=False) as pipe:
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


def _by_shard(queue: str, ids: Sequence[str]) -> dict[str, list[str]]:
    """Ids given for ``queue``, by the shard each names (an id that names none: ``queue``)."""
    out: dict[str, list[str]] = {}
    for job_id in ids:
        named = queue_of(job_id)
        out.setdefault(named if logical_of(named) == queue else queue, []).append(job_id)
    return out
