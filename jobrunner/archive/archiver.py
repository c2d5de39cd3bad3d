"""The archiver: reads every queue's history stream in the consumer group ``archiver`` and
writes the entries to PostgreSQL in batches, acknowledging (XACK) and deleting (XDEL) them
only after the COMMIT.

Delivery is at least once: an archiver that dies between the COMMIT and the XACK leaves its
entries pending; started again under the same consumer name it reads them first (XREADGROUP
from 0), another archiver claims them once they sit idle ``claim_idle`` seconds (XAUTOCLAIM),
and the write is idempotent by job id (``store.py``), so they land once. While PostgreSQL is
unreachable the archiver keeps its batch, reads nothing more, and retries with capped
exponential backoff; the streams meanwhile grow up to their bound (``Settings.history``), past
which the terminal scripts trim the oldest entries and count them (``history_trimmed``).

It runs beside the workers, not inside them (docs/history.md): a worker then needs no
PostgreSQL driver, no connection, and never waits on PostgreSQL; one archiver writes the
batches of all workers, which is what makes COPY pay.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from jobrunner.archive.metrics import ArchiverMetrics
from jobrunner.archive.store import HistoryStore, Incoming
from jobrunner.backoff import Backoff, Exponential
from jobrunner.calls import UNDECODABLE, text
from jobrunner.connection import is_cluster
from jobrunner.keys import PREFIX, QueueKeys, queues_key
from jobrunner.logs import get_logger

GROUP = "archiver"
Entry = tuple[bytes, dict[bytes, bytes] | None]


class _Spec(msgspec.Struct):
    """What the archive takes from a job's spec blob; the payload is kept as its JSON text."""

    type: str = UNDECODABLE
    payload: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


_spec = msgspec.json.Decoder(_Spec)


def _int(value: bytes | None) -> int | None:
    return int(value) if value is not None else None


def incoming(queue: str, fields: dict[bytes, bytes]) -> Incoming:
    """The row a stream entry stands for (see lua/_history.lua for its fields)."""
    try:
        spec = _spec.decode(fields.get(b"d", b""))
        payload = bytes(spec.payload)
        kind, shown = spec.type, None if payload == b"null" else payload.decode()
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        kind, shown = UNDECODABLE, None
    error, result = fields.get(b"e"), fields.get(b"r")
    return Incoming(
        id=text(fields[b"id"]), queue=queue, type=kind, state=text(fields[b"s"]),
        attempts=int(fields.get(b"a", 0)), error=text(error) if error is not None else None,
        payload=shown, result=text(result) if result is not None else None,
        enqueued_ms=_int(fields.get(b"eq")), started_ms=_int(fields.get(b"st")),
        finished_ms=int(fields[b"fi"]),
    )  # fmt: skip


class Archiver:
    """``run()`` until ``stop()``; ``counts`` says what it did (entries read, rows written,
    entries found trimmed while pending, PostgreSQL failures).

    ``consumer`` names this archiver in the group (default: the host name): an archiver started
    again under its name takes up its own pending entries at once.
    """

    def __init__(
        self,
        redis: Redis,
        pg_url: str,
        *,
        prefix: str = PREFIX,
        consumer: str | None = None,
        batch: int = 5000,
        block: float = 1.0,
        claim_idle: float = 60.0,
        queues_every: float = 1.0,
        retention_days: float = 30.0,
        retention_every: float = 3600.0,
        backoff: Backoff | None = None,
        metrics: ArchiverMetrics | None = None,
    ) -> None:
        self.redis = redis
        self.cluster = is_cluster(redis)
        self.pg_url = pg_url
        self.prefix = prefix
        self.consumer = consumer or socket.gethostname()
        self.batch = batch
        self.block = block
        self.claim_idle = claim_idle
        self.queues_every = queues_every
        self.retention_days = retention_days
        self.retention_every = retention_every
        self.backoff = backoff or Exponential(base=0.1, cap=5.0)
        self.counts: Counter[str] = Counter()
        self.metrics = metrics
        self.log = get_logger(archiver=self.consumer)
        self._store: HistoryStore | None = None
        self._streams: dict[str, str] = {}  # stream key -> queue, for those with our group
        self._stopping = asyncio.Event()
        self._pending = True  # our own pending entries come first (read from id 0)
        self._next_queues = self._next_claim = self._next_retention = 0.0

    def stop(self) -> None:
        self._stopping.set()

    def _count(self, event: str, n: int = 1) -> None:
        self.counts[event] += n
        if self.metrics is not None:
            self.metrics.events.labels(event).inc(n)

    async def run(self) -> Counter[str]:
        """Archive until ``stop()``; the batch in hand is finished first."""
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    await self.run_once()
                    failures = 0
                except RedisError as exc:  # its entries stay pending: read again once back
                    failures += 1
                    self._count("redis_errors")
                    self._pending = True
                    self.log.warning("archiver.redis_unavailable", error=str(exc))
                    await self._pause(self.backoff.delay(failures))
        finally:
            await self.aclose()
        return self.counts

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()
            self._store = None

    async def run_once(self) -> int:
        """One round: find new queues, claim idle entries, read a batch, write it, acknowledge
        it; returns the entries handled."""
        now = time.monotonic()
        if now >= self._next_queues:
            await self._find_streams()
            await self._sample_backlog()
            self._next_queues = now + self.queues_every
        if not self._streams:
            await self._pause(min(self.block, self.queues_every))
            return 0
        entries: dict[str, list[Entry]] = {}
        if now >= self._next_claim:
            entries = await self._claim()
            self._next_claim = now + self.claim_idle / 2
        if not entries:
            entries = await self._read()
        handled = sum(len(found) for found in entries.values())
        if handled:
            await self._archive(entries)
        if now >= self._next_retention and self.retention_days > 0:
            await self._retain()
            self._next_retention = now + self.retention_every
        return handled

    async def _find_streams(self) -> None:
        """Create the group on each queue's stream once it exists (from its first entry, id 0,
        so nothing written before the archiver first ran is skipped)."""
        for raw in await self.redis.smembers(queues_key(self.prefix)):
            queue = text(raw)
            stream = QueueKeys(queue, self.prefix).history
            if stream in self._streams:
                continue
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0")
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    continue  # no stream yet (history off, or nothing ended): look again later
            self._streams[stream] = queue

    async def _sample_backlog(self) -> None:
        """Each stream's length, for ``history_backlog_entries`` (once a second at most)."""
        if self.metrics is None or not self._streams:
            return
        async with self.redis.pipeline(transaction=False) as pipe:  # per node on a cluster
            for stream in self._streams:
                pipe.xlen(stream)
            lengths = await pipe.execute()
        for stream, length in zip(self._streams, lengths, strict=True):
            self.metrics.backlog.labels(self._streams[stream]).set(length)

    async def _read(self) -> dict[str, list[Entry]]:
        """A batch: our own pending entries first (from id 0), then new ones (``>``), waiting
        up to ``block`` for them. All streams in one XREADGROUP; on Redis Cluster, where the
        streams live in different slots, one call a stream, and a pause when all were empty."""
        start = "0" if self._pending else ">"
        block = None if self._pending else max(1, round(self.block * 1000))
        reply: Any = []
        if self.cluster:
            for stream in self._streams:
                reply += await self.redis.xreadgroup(
                    GROUP, self.consumer, {stream: start}, count=self.batch
                ) or []  # fmt: skip
        else:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, dict.fromkeys(self._streams, start), count=self.batch,
                block=block,
            )  # fmt: skip
        entries: dict[str, list[Entry]] = {
            text(stream): found for stream, found in reply or [] if found
        }
        if self._pending and not entries:
            self._pending = False  # our pending entries are done: new ones from now on
        elif self.cluster and not entries:
            await self._pause(self.block)
        return entries

    async def _claim(self) -> dict[str, list[Entry]]:
        """Entries another consumer read and left pending ``claim_idle`` seconds (it died)."""
        claimed: dict[str, list[Entry]] = {}
        for stream in self._streams:
            reply = await self.redis.xautoclaim(
                stream, GROUP, self.consumer, round(self.claim_idle * 1000), "0-0",
                count=self.batch,
            )  # fmt: skip
            if reply[1]:
                claimed[stream] = reply[1]
                self._count("claimed", len(reply[1]))
        return claimed

    async def _archive(self, entries: dict[str, list[Entry]]) -> None:
        rows: list[Incoming] = []
        for stream, found in entries.items():
            for _, fields in found:
                if fields:
                    rows.append(incoming(self._streams[stream], fields))
                else:  # trimmed while pending (the stream reached its bound): nothing to write
                    self._count("gone")
        written = await self._write(rows)
        if written is None:
            return  # stopping while PostgreSQL is down: the entries stay pending
        async with self.redis.pipeline(transaction=False) as pipe:  # per node on a cluster
            for stream, found in entries.items():
                ids = [entry_id for entry_id, _ in found]
                pipe.xack(stream, GROUP, *ids)
                pipe.xdel(stream, *ids)
            await pipe.execute()
        self._count("entries", sum(len(found) for found in entries.values()))
        self._count("written", written)
        self._count("batches")
        if self.metrics is not None:
            self.metrics.last_write.set_to_current_time()

    async def _write(self, rows: Sequence[Incoming]) -> int | None:
        """Write until it is written (PostgreSQL down: wait and retry, without limit);
        None when asked to stop meanwhile."""
        failures = 0
        delay: float | None = None
        while True:
            try:
                store = await self.store()
                written = await store.write(rows)
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                await self.aclose()
                failures += 1
                self._count("pg_errors")
                delay = self.backoff.delay(failures, delay)
                self.log.warning("archiver.postgres_unavailable", error=str(exc).strip(),
                                 failures=failures, retry_in=round(delay, 2))  # fmt: skip
                if await self._pause(delay):
                    return None
                continue
            if failures:
                self.log.info("archiver.postgres_back", failures=failures)
            return written

    async def store(self) -> HistoryStore:
        if self._store is None:
            self._store = await HistoryStore.connect(self.pg_url)
        return self._store

    async def _retain(self) -> None:
        try:
            deleted = await (await self.store()).delete_older_than(self.retention_days)
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError):
            await self.aclose()  # the next write finds it down and waits
            return
        self._count("expired", deleted)
        if deleted:
            self.log.info("archiver.retention", deleted=deleted, days=self.retention_days)

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` or until asked to stop; True when stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def archive_forever(redis: Redis, pg_url: str, **options: Any) -> Counter[str]:
    """Run an archiver until SIGINT/SIGTERM (for ``jobrunner archiver``)."""
    import signal

    archiver = Archiver(redis, pg_url, **options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, archiver.stop)
    return await archiver.run()
