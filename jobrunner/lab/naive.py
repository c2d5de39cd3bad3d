"""The NAIVE queue: the textbook LPUSH/BRPOP Redis queue, kept ONLY as a TEACHING BASELINE.

Do not run real work on it. It LOSES JOBS, and the lab (``tests/test_naive.py``) shows it:

* BRPOP removes the job from Redis *before* the handler runs. From then on the only copy is in
  the worker's memory, so a worker killed mid-job (SIGKILL, OOM killer, a lost host, a deploy
  that does not wait) loses it: nothing in Redis says the job ever existed.
* Retries happen in-process: the backoff is an ``asyncio.sleep`` inside the worker task that
  popped the job. The waiting job blocks that worker slot for the whole delay, and a worker
  killed during the wait loses the job too.
* Shutting down waits for every in-flight job (retries included); whoever will not wait that
  long sends SIGKILL, which loses them.

Compare ``jobrunner.queue.ReliableQueue``: it leases a job (the id stays in Redis, in a reserved
set, with a deadline) and only an ack removes it, so a dead worker's jobs are redelivered, and a
retry waits in Redis (scheduled set) rather than in a worker.

Run a worker: ``python -m jobrunner.lab.naive --redis-url URL --concurrency N --queues a,b``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobrunner.config import Settings
from jobrunner.connection import async_redis
from jobrunner.errors import ConfigError, PayloadDecodeError
from jobrunner.job import (
    DEFAULT_QUEUE,
    Job,
    decode_job,
    encode_job,
    make_job,
)
from jobrunner.keys import PREFIX, naive_key
from jobrunner.logs import configure_logging, get_logger
from jobrunner.registry import HandlerSpec, JobContext, Registry, load_handlers
from jobrunner.worker.invoke import call_sync
from jobrunner.worker.outcome import OK, Kind, Outcome, outcome_from_exception


class FailedJob(msgspec.Struct, frozen=True):
    """An entry of a queue's ``...:failed`` list (the naive dead-letter): raw job and why."""

    job: str  # the job as it was popped (text; may be undecodable)
    error: str
    attempts: int


class NaiveQueue:
    """One LIST per queue: LPUSH encoded jobs on the left, BRPOP them off the right."""

    def __init__(self, redis: Redis, *, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, queue: str) -> str:
        return naive_key(queue, self.prefix)

    def failed_key(self, queue: str) -> str:
        return self.key(queue) + ":failed"

    async def enqueue(
        self,
        type: str,
        payload: Any = None,
        *,
        queue: str = DEFAULT_QUEUE,
        job_id: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> str:
        job = make_job(
            type,
            payload,
            queue=queue,
            job_id=job_id,
            max_retries=max_retries,
            timeout=timeout,
        )
        await self.redis.lpush(self.key(queue), encode_job(job))
        return job.id

    async def enqueue_jobs(self, jobs: Sequence[Job]) -> None:
        """LPUSH many jobs in one pipelined round trip (FIFO order kept per queue)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.lpush(self.key(job.queue), encode_job(job))
            await pipe.execute()

    async def pop(self, queues: Sequence[str], timeout: float) -> tuple[str, bytes] | None:
        """BRPOP the first non-empty queue, in the given (priority) order: (queue, raw job).

        THE FLAW: once this returns, the job is no longer in Redis.
        """
        keys = {self.key(q): q for q in queues}
        reply = await self.redis.brpop(list(keys), timeout=timeout)
        if reply is None:
            return None
        key, raw = reply
        name = keys[key.decode() if isinstance(key, bytes) else key]
        return name, raw if isinstance(raw, bytes) else raw.encode()

    async def depth(self, queue: str) -> int:
        return int(await self.redis.llen(self.key(queue)))

    async def push_failed(self, queue: str, entry: FailedJob) -> None:
        await self.redis.lpush(self.failed_key(queue), msgspec.json.encode(entry))

    async def failed(self, queue: str) -> list[FailedJob]:
        """The failed list, most recent first."""
        rows = await self.redis.lrange(self.failed_key(queue), 0, -1)
        return [msgspec.json.decode(row, type=FailedJob) for row in rows]


class NaiveWorker:
    """``concurrency`` tasks, each: BRPOP one job, run it (retrying in place), repeat."""

    def __init__(
        self,
        queue: NaiveQueue,
        registry: Registry,
        *,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        concurrency: int = 1,
        poll_timeout: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.registry = registry
        self.queues = list(queues)
        self.concurrency = concurrency
        self.poll_timeout = poll_timeout  # how often an idle task notices request_stop()
        self.counts: Counter[str] = Counter(completed=0, failed=0, retried=0)
        self._stopping = asyncio.Event()
        self._log = get_logger(worker="naive")

    def request_stop(self) -> None:
        """Stop once the jobs in hand are finished (their retries included)."""
        self._stopping.set()

    async def run(self) -> dict[str, int]:
        """Run until ``request_stop()``; returns the completed/failed/retried counts."""
        tasks = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()  # only if run() itself was cancelled: the jobs in hand are lost
            await asyncio.gather(*tasks, return_exceptions=True)
        return dict(self.counts)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                popped = await self.queue.pop(self.queues, self.poll_timeout)
                if popped is not None:
                    await self._process(*popped)
            except RedisError as exc:  # a lost BRPOP reply, or an unrecorded failure: job lost
                self._log.warning("redis error", error=str(exc))
                await asyncio.sleep(0.5)

    async def _process(self, queue: str, raw: bytes) -> None:
        try:
            job = decode_job(raw)
        except PayloadDecodeError as exc:
            return await self._fail(queue, raw, str(exc), attempts=0)
        spec = self.registry.get(job.type)
        if spec is None:
            return await self._fail(queue, raw, f"unknown job type {job.type!r}", attempts=0)
        attempt, previous = 1, None
        while True:
            outcome = await self._attempt(job, spec, attempt)
            if outcome.ok:
                self.counts["completed"] += 1
                return None
            if outcome.kind is Kind.DEAD or attempt > self.registry.max_retries_for(job):
                return await self._fail(queue, raw, outcome.error, attempts=attempt)
            # THE OTHER FLAW: the retry waits here, in memory, holding this worker slot.
            delay = outcome.delay
            if delay is None:
                delay = spec.backoff.delay(attempt, previous)
            self.counts["retried"] += 1
            await asyncio.sleep(delay)
            attempt, previous = attempt + 1, delay

    async def _attempt(self, job: Job, spec: HandlerSpec, attempt: int) -> Outcome:
        timeout = spec.timeout_for(job)
        ctx = JobContext(job_id=job.id, type=job.type, attempt=attempt, timeout=timeout)
        if not spec.is_async:  # cooperative timeout: the handler calls ctx.check()
            return await asyncio.to_thread(call_sync, spec, job.payload, ctx)
        ctx.deadline = time.monotonic() + timeout
        args = (job.payload, ctx) if spec.takes_context else (job.payload,)
        try:
            async with asyncio.timeout(timeout):
                await spec.fn(*args)
        except Exception as exc:  # TimeoutError included
            return outcome_from_exception(exc)
        return OK

    async def _fail(self, queue: str, raw: bytes, error: str, *, attempts: int) -> None:
        """The naive dead-letter: LPUSH the job and its error to ``<queue key>:failed``."""
        self.counts["failed"] += 1
        self._log.warning("job failed", queue=queue, attempts=attempts, error=error)
        entry = FailedJob(job=raw.decode("utf-8", "replace"), error=error, attempts=attempts)
        await self.queue.push_failed(queue, entry)


async def serve_naive(settings: Settings) -> dict[str, int]:
    """Run a naive worker until SIGINT/SIGTERM, then finish the jobs in hand and return counts."""
    concurrency = settings.concurrency or 1
    registry = load_handlers(settings.imports)
    redis = async_redis(settings.redis_url, max_connections=concurrency + 2)  # one BRPOP each
    worker = NaiveWorker(
        NaiveQueue(redis, prefix=settings.prefix),
        registry,
        queues=settings.queues,
        concurrency=concurrency,
    )
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(concurrency, thread_name_prefix="naive"))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.request_stop)
    try:
        counts = await worker.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await redis.aclose()
    get_logger(worker="naive").info("stopped", **counts)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m jobrunner.lab.naive``: options win over ``JOBRUNNER_*`` / ``REDIS_URL``."""
    from jobrunner.worker.entry import run_event_loop

    parser = argparse.ArgumentParser(
        prog="python -m jobrunner.lab.naive",
        description="The naive (teaching-baseline) worker: it loses jobs.",
    )
    parser.add_argument("--redis-url", help="redis://host:port/db")
    parser.add_argument("--concurrency", type=int, help="jobs at once (default 1)")
    parser.add_argument("--queues", help="comma-separated, highest priority first")
    parser.add_argument("--import", dest="imports", action="append", help="handler module")
    parser.add_argument("--log-level")
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    try:
        settings = Settings.from_env(**given)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    try:
        run_event_loop(serve_naive(settings))
    except ConfigError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
