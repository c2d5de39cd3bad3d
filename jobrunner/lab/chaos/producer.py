"""The producer side of the ledger: send probe jobs, record what each enqueue was told.

Per probe, one line in ``producer-<host>-<pid>.jsonl``: ``ack`` (a 2xx, or the library call
returned: the job must never be lost), ``rejected`` (a clear refusal: 4xx, Redis out of memory,
the API unreachable before anything was sent) or ``unknown`` (a 5xx, a dropped connection, a
timeout: it may or may not have been written). The load runs on an event loop of its own in a
background thread, so a test or a notebook cell can inject faults while it flows.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
import msgspec
from redis.exceptions import OutOfMemoryError, RedisError

from jobrunner.connection import async_redis
from jobrunner.errors import RedisFull, RedisUnavailable
from jobrunner.job import Job, job_id_in
from jobrunner.lab.chaos.ledger import LedgerFile
from jobrunner.lab.chaos.probes import PROBE
from jobrunner.lab.naive import NaiveQueue
from jobrunner.queue import ReliableQueue

Status = Literal["ack", "rejected", "unknown"]
QueueKind = Literal["reliable", "naive"]


@dataclass(frozen=True)
class Probe:
    """What one probe job should do (see ``jobrunner.lab.chaos.probes``)."""

    do: str = "ok"
    ms: float = 10.0
    type: str = PROBE
    timeout: float | None = None
    max_retries: int | None = None
    pad: int = 0  # bytes of filler in the payload (memory pressure, oversized bodies)
    until_attempt: int | None = None  # misbehave only on the first attempts


@dataclass(frozen=True)
class Outcome:
    status: Status
    ids: list[str]  # job ids when acknowledged
    code: str  # the HTTP status or the error's class


class Sender(Protocol):
    async def send(self, jobs: list[Job]) -> Outcome: ...
    async def close(self) -> None: ...


class HttpSender:
    """POST /jobs, one batch per request."""

    def __init__(self, api_url: str, timeout: float = 5.0, token: str = "") -> None:
        self.url = api_url.rstrip("/") + "/jobs"
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, jobs: list[Job]) -> Outcome:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = io.BytesIO(msgspec.json.encode({"jobs": [_http_item(job) for job in jobs]}))
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        try:
            async with self._session.post(self.url, data=body, headers=headers) as response:
                payload = await response.json(content_type=None)
                if 200 <= response.status < 300:
                    return Outcome("ack", list(payload["ids"]), str(response.status))
                code = str(payload.get("code", ""))
                # A 4xx, or Redis refusing the script as a whole (full), wrote nothing; any other
                # 5xx may have written the jobs before the answer was lost.
                refused = response.status < 500 or code == "redis_full"
                status: Status = "rejected" if refused else "unknown"
                return Outcome(status, [], f"{response.status} {code}")
        except aiohttp.ClientConnectorError as exc:  # nothing was sent
            return Outcome("rejected", [], type(exc).__name__)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome("unknown", [], type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _http_item(job: Job) -> dict[str, Any]:
    item: dict[str, Any] = {"type": job.type, "data": job.payload, "queue": job.queue}
    if job.timeout is not None:
        item["timeout"] = job.timeout
    if job.max_retries is not None:
        item["max_retries"] = job.max_retries
    return item


class LibrarySender:
    """``ReliableQueue.enqueue_jobs`` (or the naive queue's ``LPUSH``) straight to Redis."""

    def __init__(
        self, redis_url: str, kind: QueueKind = "reliable", wait_replicas: int = 0
    ) -> None:
        self.redis = async_redis(redis_url, max_connections=4)
        self.kind = kind
        # with wait_replicas, an enqueue the replicas did not confirm is not acknowledged
        self.queue = ReliableQueue(self.redis, wait_replicas=wait_replicas)
        self.naive = NaiveQueue(self.redis)

    async def send(self, jobs: list[Job]) -> Outcome:
        try:
            if self.kind == "naive":
                await self.naive.enqueue_jobs(jobs)
            else:
                await self.queue.enqueue_jobs(jobs)
        except (RedisFull, OutOfMemoryError) as exc:  # refused whole: nothing written
            return Outcome("rejected", [], type(exc).__name__)
        except (RedisUnavailable, RedisError, OSError) as exc:
            return Outcome("unknown", [], type(exc).__name__)
        return Outcome("ack", [job.id for job in jobs], "ok")

    async def close(self) -> None:
        await self.queue.aclose()
        await self.redis.aclose()


async def _call(function: Callable[[], None]) -> None:
    function()


class Producer:
    """Sends probes (steady load or on demand) and writes one ledger line per probe."""

    def __init__(
        self, ledger_dir: Path | str, sender: Sender, *, queue: str = "default",
        thread_setup: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """``thread_setup`` runs first on the load's thread (``Host.enter``: the producer on
        another network host, every connection it opens there)."""
        self.ledger = LedgerFile(ledger_dir, "producer")
        self.sender = sender
        self.queue = queue
        self.tag = uuid.uuid4().hex[:6]
        self.counts: Counter[str] = Counter()
        self._seq = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-producer",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        if thread_setup is not None:
            asyncio.run_coroutine_threadsafe(_call(thread_setup), self._loop).result(timeout=10)
        self._load: Future[None] | None = None
        self._stop_load = threading.Event()

    # ---- on demand ---------------------------------------------------------------------------

    def send(self, probes: Sequence[Probe]) -> Outcome:
        """Send one batch now and wait for its answer."""
        return asyncio.run_coroutine_threadsafe(self._send(list(probes)), self._loop).result()

    # ---- steady load ---------------------------------------------------------------------------

    def start_load(self, rate: float, batch: int = 10, probe: Probe = Probe()) -> None:
        """Send ``rate`` probes a second, ``batch`` per request, until ``stop_load``."""
        if rate <= 0 or batch < 1:
            raise ValueError("rate must be positive and batch at least 1")
        self._stop_load.clear()
        self._load = asyncio.run_coroutine_threadsafe(self._steady(rate, batch, probe), self._loop)

    def stop_load(self) -> None:
        self._stop_load.set()
        if self._load is not None:
            self._load.result(timeout=60)
            self._load = None

    async def _steady(self, rate: float, batch: int, probe: Probe) -> None:
        interval = batch / rate
        next_at = time.monotonic()
        while not self._stop_load.is_set():
            await self._send([probe] * batch)
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            else:
                next_at = time.monotonic()  # behind (an outage): do not burst to catch up

    # ---- both ------------------------------------------------------------------------------

    async def _send(self, probes: list[Probe]) -> Outcome:
        jobs = [self._job(p) for p in probes]
        outcome = await self.sender.send(jobs)
        now = time.time()
        for i, job in enumerate(jobs):
            record: dict[str, Any] = {"probe": job.payload["probe"], "s": outcome.status,
                                      "code": outcome.code, "t": now}  # fmt: skip
            if outcome.ids:
                record["job"] = outcome.ids[i]
            self.ledger.append(record)
        self.counts[outcome.status] += len(jobs)
        return outcome

    def _job(self, probe: Probe) -> Job:
        probe_id = f"p-{self.tag}-{next(self._seq):07d}"
        payload: dict[str, Any] = {"probe": probe_id, "do": probe.do, "ms": probe.ms}
        if probe.pad:
            payload["pad"] = "x" * probe.pad
        if probe.until_attempt is not None:
            payload["until_attempt"] = probe.until_attempt
        return Job(id=job_id_in(self.queue, probe_id), type=probe.type, payload=payload,
                   queue=self.queue, timeout=probe.timeout,
                   max_retries=probe.max_retries)  # fmt: skip

    def close(self) -> None:
        if self._load is not None:
            self.stop_load()
        with_loop = asyncio.run_coroutine_threadsafe(self.sender.close(), self._loop)
        with_loop.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self.ledger.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
