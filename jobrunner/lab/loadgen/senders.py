"""The clients a load run sends through: HTTP (async with aiohttp, blocking with urllib3) and the
queue library directly. Each ``send`` enqueues one request's jobs and returns their ids, or
raises ``SendError`` with the HTTP status (0 when no answer came)."""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp
import msgspec
import urllib3
from redis.exceptions import RedisError

from jobrunner.connection import async_redis
from jobrunner.job import Job, new_job_id
from jobrunner.lab.loadgen.spec import JobFactory, LoadSpec
from jobrunner.queue import ReliableQueue

_encode = msgspec.json.Encoder().encode
_decode_ids = msgspec.json.Decoder(dict[str, Any]).decode


class SendError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status or 'no answer'}: {reason}")
        self.status = status


def http_body(factory: JobFactory, types: list[str]) -> bytes:
    payload = factory.payload()
    jobs = [{"type": t, "data": payload, "queue": factory.queue} for t in types]
    return _encode(jobs[0] if len(jobs) == 1 else {"jobs": jobs})


def _ids(status: int, body: bytes) -> list[str]:
    if status != 202:
        raise SendError(status, body[:200].decode(errors="replace"))
    return list(_decode_ids(body)["ids"])


class AsyncSender(Protocol):
    async def send(self, types: list[str]) -> list[str]: ...
    async def close(self) -> None: ...


class AsyncHttpSender:
    """POST /jobs through one aiohttp session (keep-alive, one connection per client)."""

    def __init__(self, spec: LoadSpec, factory: JobFactory, connections: int) -> None:
        self._url = spec.url.rstrip("/") + "/jobs"
        self._factory = factory
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            headers=spec.http_headers(),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def send(self, types: list[str]) -> list[str]:
        try:
            async with self._session.post(
                self._url, data=http_body(self._factory, types)
            ) as response:
                return _ids(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:  # a timeout is a failed request too
            raise SendError(0, type(exc).__name__) from exc

    async def close(self) -> None:
        await self._session.close()


class SyncHttpSender:
    """POST /jobs with a blocking urllib3 pool shared by the threads."""

    def __init__(self, spec: LoadSpec, connections: int) -> None:
        self._url = spec.url.rstrip("/") + "/jobs"
        self._headers = spec.http_headers()
        self._pool = urllib3.PoolManager(maxsize=connections, block=True, retries=False)

    def send(self, factory: JobFactory, types: list[str]) -> list[str]:
        try:
            response = self._pool.request(
                "POST", self._url, body=http_body(factory, types),
                headers=self._headers, timeout=30.0,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise SendError(0, type(exc).__name__) from exc
        return _ids(response.status, response.data)

    def close(self) -> None:
        self._pool.clear()


class AsyncQueueSender:
    """ReliableQueue.enqueue_jobs on an asyncio Redis client: the library, no HTTP."""

    def __init__(self, spec: LoadSpec, factory: JobFactory, connections: int) -> None:
        self._redis = async_redis(spec.url, max_connections=max(2, connections))
        self._queue = ReliableQueue(self._redis)
        self._factory = factory

    async def send(self, types: list[str]) -> list[str]:
        payload = self._factory.payload()
        queue = self._factory.queue
        jobs = [Job(id=new_job_id(queue), type=t, payload=payload, queue=queue)
                for t in types]  # fmt: skip
        try:
            await self._queue.enqueue_jobs(jobs)
        except RedisError as exc:
            raise SendError(0, f"{type(exc).__name__}: {exc}") from exc
        return [job.id for job in jobs]

    async def close(self) -> None:
        await self._redis.aclose()
