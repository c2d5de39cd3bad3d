"""The ``jobrunner.v1.Jobs`` service: enqueue, read, cancel and watch jobs over gRPC.

Every request is admitted as ``POST /jobs`` admits it: a job spec is written out as the JSON
body the HTTP API would have received and decoded by the same ``decode_jobs``, then checked by
the same ``Admission`` (types, declared queues, token queues, payload limits, depth bound), so
both APIs refuse the same requests with the same problem code and sentence. The refusal's gRPC
status follows the HTTP status (``STATUS``); the code and field go in the trailing metadata
(``jr-code``, ``jr-field``), the sentence is the status message.

Payloads are JSON text in ``bytes`` fields, not ``google.protobuf.Struct``: a Struct holds every
number as a double (an integer over 2**53 would change), cannot tell an int from a float, and
would be converted to Python objects before the limits are checked; JSON bytes are checked and
stored exactly as POST /jobs stores them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import grpc
import msgspec
from google.protobuf.message import DecodeError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobrunner.api.auth import EVERYTHING, Authenticator, Principal
from jobrunner.api.bodies import decode_jobs
from jobrunner.api.errors import AUTH_UNAVAILABLE, REDIS_FULL, REDIS_UNAVAILABLE, ApiError
from jobrunner.api.ingress import IngressLimiter
from jobrunner.api.jobs import Admission
from jobrunner.calls import FINAL_STATES
from jobrunner.errors import RedisFull, RedisUnavailable
from jobrunner.grpc.v1 import jobs_pb2 as pb
from jobrunner.grpc.v1 import jobs_pb2_grpc as pb_grpc
from jobrunner.job import JobRecord
from jobrunner.job import queue_of as queue_of_id
from jobrunner.logs import get_logger
from jobrunner.payload import MAX_DEPTH
from jobrunner.queue import ReliableQueue

SERVICE = pb.DESCRIPTOR.services_by_name["Jobs"].full_name  # "jobrunner.v1.Jobs"
WATCH_LIMIT = 3600.0  # the longest a WatchJob stream lasts
WATCH_FIRST_PAUSE, WATCH_MAX_PAUSE = 0.05, 1.0  # between reads of a watched job, doubling
BLOCKING_WATCHERS = 16  # watchers that block on Redis (BLPOP) at once; the others poll
NOTIFY_TTL_MS = 60_000

# The HTTP status of a refusal -> its gRPC status (docs/grpc.md)
STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_encode = msgspec.json.encode
_JSON_SPACE = b" \t\r\n"


def status_of(exc: ApiError) -> grpc.StatusCode:
    if exc.code == "redis_full":  # a certain refusal until workers drain: as a full queue
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return STATUS.get(exc.status, grpc.StatusCode.INTERNAL)


def json_value(data: bytes, field: str) -> msgspec.Raw:
    """One JSON value (empty: null), refused as POST /jobs refuses a body that is not JSON."""
    if not data.strip(_JSON_SPACE):
        return msgspec.Raw(b"null")
    try:
        return msgspec.json.decode(data, type=msgspec.Raw)
    except RecursionError:
        raise ApiError(422, "max_depth", f"{field} is nested deeper than {MAX_DEPTH}",
                       field=field) from None  # fmt: skip
    except msgspec.DecodeError as exc:
        raise ApiError(422, "invalid", f"{field} is not one JSON value (UTF-8 text): {exc}",
                       field=field) from None  # fmt: skip


def body_item(spec: pb.JobSpec, field: str) -> dict[str, Any]:
    """A job spec as the JSON object POST /jobs takes (unset optional fields left out)."""
    item: dict[str, Any] = {"type": spec.type, "data": json_value(spec.data, field)}
    if spec.delay:
        item["delay"] = spec.delay
    for name in ("queue", "max_retries", "timeout", "idempotency_key"):
        if spec.HasField(name):
            item[name] = getattr(spec, name)
    return item


def job_message(record: JobRecord) -> pb.Job:
    """GET /jobs/{id}'s view, with data and result as JSON text."""
    job = record.job
    return pb.Job(
        id=job.id, type=job.type, queue=job.queue, state=record.state.value,
        attempts=record.attempts, max_retries=job.max_retries, timeout=job.timeout,
        data=_encode(job.payload), last_error=record.last_error,
        enqueued_at=record.enqueued_at, started_at=record.started_at,
        finished_at=record.finished_at,
        result=_encode(record.result) if record.has_result else b"", has_result=record.has_result,
    )  # fmt: skip


def lenient(message: Any) -> Callable[[bytes], Any]:
    """A request parser that yields None for bytes that are not the message (the call then
    answers INVALID_ARGUMENT; grpcio's own answer would be UNKNOWN, naming the exception)."""

    def parse(raw: bytes) -> Any:
        try:
            return message.FromString(raw)
        except DecodeError:
            return None

    return parse


def serialize(message: Any) -> bytes:
    out: bytes = message.SerializeToString()
    return out


def add_jobs_service(service: JobsService, server: grpc.aio.Server) -> None:
    """The service's calls on ``server``, as the generated ``add_JobsServicer_to_server`` adds
    them but for the parsing of requests (``lenient``)."""
    unary, stream = grpc.unary_unary_rpc_method_handler, grpc.unary_stream_rpc_method_handler
    calls: dict[str, tuple[Any, Any, Any]] = {
        "Enqueue": (unary, service.Enqueue, pb.EnqueueRequest),
        "EnqueueBatch": (unary, service.EnqueueBatch, pb.EnqueueBatchRequest),
        "GetJob": (unary, service.GetJob, pb.GetJobRequest),
        "CancelJob": (unary, service.CancelJob, pb.CancelJobRequest),
        "WatchJob": (stream, service.WatchJob, pb.WatchJobRequest),
    }
    outputs = pb.DESCRIPTOR.services_by_name["Jobs"].methods_by_name
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: kind(call, request_deserializer=lenient(request), response_serializer=serialize)
        for name, (kind, call, request) in calls.items()
    }
    assert set(handlers) == set(outputs), "every call of jobs.proto is served"
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    """The first value of an (ASCII) metadata key, '' when absent."""
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return ""


def peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` -> ``127.0.0.1``; ``ipv6:[::1]:5000`` -> ``::1``."""
    address = peer.partition(":")[2] or peer
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host.strip("[]") or "-"


class JobsService(pb_grpc.JobsServicer):
    """The service's calls, on one ``ReliableQueue`` (the API's, pipelined)."""

    def __init__(
        self,
        admission: Admission,
        queue: ReliableQueue,
        authenticator: Authenticator,
        auth: bool = True,
        ingress: IngressLimiter | None = None,
    ) -> None:
        self.admission = admission
        self.ingress = ingress
        self.queue = queue
        self.authenticator = authenticator
        self.auth = auth
        self.log = get_logger(component="grpc")
        self._blocking = asyncio.Semaphore(BLOCKING_WATCHERS)

    # ------------------------------------------------------------ the calls

    async def Enqueue(  # the names of jobs.proto's calls
        self, request: pb.EnqueueRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EnqueueResponse:
        async with self.refusals(context):
            self.parsed(request, "EnqueueRequest")
            principal = await self.principal(context, "enqueue")
            done = await self.enqueue(_encode(body_item(request.job, "data")), principal)
            return pb.EnqueueResponse(id=done[0][0], created=done[1][0])

    async def EnqueueBatch(
        self, request: pb.EnqueueBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EnqueueBatchResponse:
        async with self.refusals(context):
            self.parsed(request, "EnqueueBatchRequest")
            principal = await self.principal(context, "enqueue")
            jobs = [body_item(spec, f"jobs.{i}.data") for i, spec in enumerate(request.jobs)]
            ids, created = await self.enqueue(_encode({"jobs": jobs}), principal)
            return pb.EnqueueBatchResponse(ids=ids, created=created)

    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Job:
        async with self.refusals(context):
            self.parsed(request, "GetJobRequest")
            principal = await self.principal(context, "read")
            name = self.queue_named(request, principal)
            record = await self.queue.get_job(request.id, name)
            if record is None:
                raise not_found(request.id)
            return job_message(record)

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CancelJobResponse:
        async with self.refusals(context):
            self.parsed(request, "CancelJobRequest")
            principal = await self.principal(context, "admin")  # as POST /jobs/{id}/cancel
            state = await self.queue.cancel(request.id, self.queue_named(request, principal))
            if not state:
                raise not_found(request.id)
            return pb.CancelJobResponse(id=request.id, state=state)

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Job]:
        """The job, then again each time its state changes, until a final state: the end is
        seen at once (the job is flagged as waited for, and its end pushed to its notify list,
        as for ``client.result``), a change in between within a read interval (50 ms doubling
        to 1 s)."""
        async with self.refusals(context):
            self.parsed(request, "WatchJobRequest")
            principal = await self.principal(context, "read")
            name = self.queue_named(request, principal)
            if not await self.queue.watch(request.id, name):
                raise not_found(request.id)
            limit = request.timeout if 0 < request.timeout < WATCH_LIMIT else WATCH_LIMIT
            deadline = time.monotonic() + limit
            notify = self.queue.keys(name).notify(request.id)
            last, pause = "", WATCH_FIRST_PAUSE
            while True:
                record = await self.queue.get_job(request.id, name)
                if record is None:
                    raise not_found(request.id)
                if record.state.value != last:
                    last, pause = record.state.value, WATCH_FIRST_PAUSE
                    yield job_message(record)
                if record.state in FINAL_STATES:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    ended = f"job {request.id!r} did not end within {limit:g}s"
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, ended)
                await self.wait_for_end(notify, min(pause, left))
                pause = min(pause * 2, WATCH_MAX_PAUSE)

    # ------------------------------------------------------------ the parts

    async def enqueue(self, body: bytes, principal: Principal) -> tuple[list[str], list[bool]]:
        items, single = decode_jobs(body)
        batch = self.admission.new_jobs(items, single, principal)
        done = await self.admission.enqueue(self.queue, batch)
        return done.ids, done.created

    def queue_named(self, request: Any, principal: Principal) -> str:
        """The queue a job id names (or the request's ``queue``), if the caller may see it."""
        name: str = request.queue if request.HasField("queue") else queue_of_id(request.id)
        if not self.admission.visible(principal, name):
            raise not_found(request.id)
        return name

    async def wait_for_end(self, notify: str, seconds: float) -> None:
        """Block on the job's notify list for up to ``seconds`` (or sleep, when enough watchers
        hold a connection already). A push taken is put back: ``client.result`` may wait on it
        too."""
        if self._blocking.locked():
            await asyncio.sleep(seconds)
            return
        async with self._blocking:
            if await self.queue.redis.blpop([notify], timeout=seconds) is not None:
                async with self.queue.redis.pipeline(transaction=False) as pipe:
                    pipe.lpush(notify, 1)
                    pipe.pexpire(notify, NOTIFY_TTL_MS)
                    await pipe.execute()

    @staticmethod
    def parsed(request: Any, kind: str) -> None:
        if request is None:
            raise ApiError(400, "malformed_message", f"the message is not a valid {kind}")

    async def principal(self, context: grpc.aio.ServicerContext[Any, Any], scope: str) -> Principal:
        """Who calls, from ``authorization: Bearer jrt_...``, if their token has ``scope``; then
        the caller's ingress budget, as POST /jobs checks the two."""
        principal = await self.authenticated(context, scope)
        if self.ingress is not None:
            named = metadata_value(context, self.ingress.header.lower())
            client = named or peer_host(context.peer())
            await self.ingress.check(self.queue.redis, client, bool(named))
        return principal

    async def authenticated(
        self, context: grpc.aio.ServicerContext[Any, Any], scope: str
    ) -> Principal:
        if not self.auth:
            return Principal(EVERYTHING)
        scheme, _, token = metadata_value(context, "authorization").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        try:
            record = await self.authenticator.bearer(self.queue.redis, token) if token else None
        except RedisError:
            raise ApiError(503, "redis_unavailable", AUTH_UNAVAILABLE) from None
        if record is None:
            raise ApiError(401, "unauthorized",
                           "this call needs a token: authorization: Bearer jrt_...")  # fmt: skip
        if scope not in record.scopes:
            raise ApiError(403, "forbidden", f"token {record.name!r} lacks the {scope} scope")
        return Principal(record)

    @asynccontextmanager
    async def refusals(self, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        """Answer an ApiError, Redis being unreachable or full, and any unexpected error, as
        POST /jobs would, with its gRPC status; no traceback leaves the server."""
        try:
            yield
        except ApiError as exc:
            await refuse(context, status_of(exc), exc.code, exc.detail, exc.field)
        except (RedisConnectionError, RedisTimeoutError, RedisUnavailable) as exc:
            self.log.warning("redis unavailable", error=str(exc))
            await refuse(context, grpc.StatusCode.UNAVAILABLE, "redis_unavailable",
                         REDIS_UNAVAILABLE)  # fmt: skip
        except RedisFull as exc:
            self.log.warning("redis full", error=str(exc))
            await refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "redis_full", REDIS_FULL)
        except (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            self.log.error("unexpected error", error=repr(exc))
            await refuse(context, grpc.StatusCode.INTERNAL, "internal",
                         "an unexpected error; it has been logged")  # fmt: skip


def not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no job {job_id!r} (or its result expired)")


async def refuse(
    context: grpc.aio.ServicerContext[Any, Any],
    status: grpc.StatusCode,
    code: str,
    detail: str,
    field: str | None = None,
) -> NoReturn:
    trailing: Sequence[tuple[str, str]] = (("jr-code", code),) + (
        (("jr-field", field),) if field else ()
    )
    await context.abort(status, detail, trailing_metadata=tuple(trailing))
    raise AssertionError("abort returns only by raising")  # pragma: no cover
