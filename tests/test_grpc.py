"""The gRPC API with a real grpcio client over loopback, against a private Redis: every call,
the token scopes, each error mapping (and its parity with POST /jobs), health, reflection, the
CLI as a process, and fuzzed messages that must each get a status without hurting the server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.config import Settings
from jobrunner.dev.redis_server import free_port
from jobrunner.grpc.server import GrpcServer
from jobrunner.grpc.v1 import jobs_pb2 as pb
from jobrunner.grpc.v1 import jobs_pb2_grpc as pb_grpc
from jobrunner.queue import ReliableQueue
from jobrunner.registry import load_handlers
from tests.api_server import make_token, running_api
from tests.conftest import wait_until

QUEUES = ["default", "high", "b"]


def api_settings(redis_url: str, **overrides: Any) -> Settings:
    options = {"redis_url": redis_url, "max_payload_bytes": 10_000, "max_queue_depth": 50,
               "queues": QUEUES, **overrides}  # fmt: skip
    return Settings(**options)


@dataclass
class Served:
    server: GrpcServer
    channel: grpc.aio.Channel
    stub: pb_grpc.JobsStub
    redis_url: str
    token: str

    def auth(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token or self.token}"),)


@pytest.fixture
async def served(redis_url: str) -> AsyncIterator[Served]:
    server = GrpcServer(api_settings(redis_url), load_handlers(["tests.jobs"]))
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(server, channel, pb_grpc.JobsStub(channel), redis_url, make_token(redis_url))
    finally:
        await channel.close()
        await server.stop(1)


def refusal(exc: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> tuple[Any, str, str | None]:
    """(status, jr-code, jr-field) of a refused call."""
    trailing = dict(exc.value.trailing_metadata() or ())
    return exc.value.code(), trailing.get("jr-code", ""), trailing.get("jr-field")


def spec(type: str = "noop", data: Any = None, **fields: Any) -> pb.JobSpec:
    return pb.JobSpec(type=type, data=json.dumps(data).encode(), **fields)


# ---------------------------------------------------------------- round trips


async def test_enqueue_then_get_keeps_the_json_exactly(served: Served) -> None:
    data = b'{"big": 1152921504606846977, "f": 1.5, "s": "\\u00e9", "l": [1, null]}'
    sent = pb.EnqueueRequest(job=pb.JobSpec(type="noop", data=data, queue="high"))
    done = await served.stub.Enqueue(sent, metadata=served.auth())
    assert done.created
    assert done.id.endswith("@high")
    job = await served.stub.GetJob(pb.GetJobRequest(id=done.id), metadata=served.auth())
    assert (job.id, job.type, job.queue, job.state, job.attempts) == (
        done.id, "noop", "high", "ready", 0,
    )  # fmt: skip
    assert json.loads(job.data) == json.loads(data)  # an int over 2**53 unchanged
    assert job.enqueued_at > 0
    assert not job.HasField("started_at")
    assert not job.has_result


async def test_a_batch_is_written_whole_and_keys_name_earlier_jobs(served: Served) -> None:
    jobs = [spec(), spec("email", {"to": "a"}, delay=30), spec(queue="b", idempotency_key="k1")]
    done = await served.stub.EnqueueBatch(pb.EnqueueBatchRequest(jobs=jobs),
                                          metadata=served.auth())  # fmt: skip
    assert len(set(done.ids)) == 3
    assert list(done.created) == [True] * 3
    again = await served.stub.Enqueue(pb.EnqueueRequest(job=spec(queue="b", idempotency_key="k1")),
                                      metadata=served.auth())  # fmt: skip
    assert (again.id, again.created) == (done.ids[2], False)
    delayed = await served.stub.GetJob(pb.GetJobRequest(id=done.ids[1]), metadata=served.auth())
    assert delayed.state == "scheduled"
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # one bad job: nothing written
        await served.stub.EnqueueBatch(pb.EnqueueBatchRequest(jobs=[spec(), spec("nope")]),
                                       metadata=served.auth())  # fmt: skip
    assert refusal(refused) == (grpc.StatusCode.INVALID_ARGUMENT, "unknown_type", "jobs.1.type")


async def test_cancel_and_watch_stream_each_state_until_the_end(served: Served) -> None:
    done = await served.stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=served.auth())
    stream = served.stub.WatchJob(pb.WatchJobRequest(id=done.id, timeout=20),
                                  metadata=served.auth())  # fmt: skip
    first = await stream.read()
    assert first.state == "ready"
    queue = served.server.queue
    [held] = await queue.reserve("default", 1, lease=30, start=1)
    assert (await stream.read()).state == "reserved"
    await queue.ack("default", [(held.id, held.token, b'{"ok": true}')])
    last = await stream.read()
    assert (last.state, json.loads(last.result), last.has_result) == ("done", {"ok": True}, True)
    assert await stream.read() is grpc.aio.EOF

    other = await served.stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=served.auth())
    watch = served.stub.WatchJob(pb.WatchJobRequest(id=other.id), metadata=served.auth())
    assert (await watch.read()).state == "ready"
    cancelled = await served.stub.CancelJob(pb.CancelJobRequest(id=other.id),
                                            metadata=served.auth())  # fmt: skip
    assert cancelled.state == "cancelled"
    assert (await watch.read()).state == "cancelled"  # woken by the notify list, not a poll
    assert await watch.read() is grpc.aio.EOF


async def test_a_watch_ends_at_its_timeout_and_leaves_the_notify_push(served: Served) -> None:
    done = await served.stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=served.auth())
    stream = served.stub.WatchJob(pb.WatchJobRequest(id=done.id, timeout=0.3),
                                  metadata=served.auth())  # fmt: skip
    assert (await stream.read()).state == "ready"
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await stream.read()
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_calls_past_the_cap_are_refused_at_once_while_the_ones_in_flight_go_on(
    redis_url: str,
) -> None:
    """max_connections bounds gRPC calls in flight, WatchJob streams included: one client
    cannot hold the server's slots with streams that never end."""
    server = GrpcServer(api_settings(redis_url, max_connections=2), load_handlers(["tests.jobs"]))
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub, auth = pb_grpc.JobsStub(channel), (("authorization",
                                                  f"Bearer {make_token(redis_url)}"),)  # fmt: skip
        done = await stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=auth)
        watches = [stub.WatchJob(pb.WatchJobRequest(id=done.id, timeout=30), metadata=auth)
                   for _ in range(2)]  # fmt: skip
        for watch in watches:
            assert (await watch.read()).state == "ready"  # both in flight
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetJob(pb.GetJobRequest(id=done.id), metadata=auth, timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for watch in watches:
            watch.cancel()
        again = await eventually_answered(stub, done.id, auth)
        assert again.state == "ready"  # the slots came back when the streams ended
    finally:
        await channel.close()
        await server.stop(1)


async def test_every_call_is_counted_by_method_and_code_and_timed(served: Served) -> None:
    registry = served.server.metrics.registry

    def handled(method: str, code: str) -> float:
        labels = {"grpc_service": "jobrunner.v1.Jobs", "grpc_method": method, "grpc_code": code}
        return registry.get_sample_value("grpc_server_handled_total", labels) or 0.0

    assert registry.get_sample_value("grpc_server_handled_total", {
        "grpc_service": "jobrunner.v1.Jobs", "grpc_method": "WatchJob", "grpc_code": "OK",
    }) == 0.0  # every method's OK series exists before its first call  # fmt: skip
    done = await served.stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=served.auth())
    with pytest.raises(grpc.aio.AioRpcError):
        await served.stub.GetJob(pb.GetJobRequest(id="nope"), metadata=served.auth())
    with pytest.raises(grpc.aio.AioRpcError):
        await served.stub.Enqueue(pb.EnqueueRequest(job=spec()))  # no token
    stream = served.stub.WatchJob(pb.WatchJobRequest(id=done.id, timeout=0.2),
                                  metadata=served.auth())  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in stream:
            pass
    assert handled("Enqueue", "OK") == 1
    assert handled("Enqueue", "UNAUTHENTICATED") == 1
    assert handled("GetJob", "NOT_FOUND") == 1
    assert handled("WatchJob", "DEADLINE_EXCEEDED") == 1
    watched = registry.get_sample_value("grpc_server_handling_seconds_sum", {
        "grpc_service": "jobrunner.v1.Jobs", "grpc_method": "WatchJob"})  # fmt: skip
    assert watched is not None
    assert watched >= 0.2  # a stream is timed to its end
    enqueued = registry.get_sample_value("jobs_enqueued_total", {"type": "noop",
                                                                  "queue": "default"})  # fmt: skip
    assert enqueued == 1


async def eventually_answered(stub: Any, job_id: str, auth: Any) -> Any:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            return await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=auth, timeout=5)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            assert asyncio.get_running_loop().time() < deadline, "the slots never came back"
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------- tokens and scopes


async def test_calls_need_a_valid_token_with_the_scope(served: Served) -> None:
    one = pb.EnqueueRequest(job=spec())
    for metadata in [(), served.auth("jrt_nope_nope"), (("authorization", "Basic x"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.Enqueue(one, metadata=metadata)
        assert refusal(refused)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
    reader = make_token(served.redis_url, scopes=["read"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Enqueue(one, metadata=served.auth(reader))
    assert refusal(refused)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "forbidden")
    assert "lacks the enqueue scope" in (refused.value.details() or "")
    enqueuer = make_token(served.redis_url, scopes=["enqueue", "read"])
    done = await served.stub.Enqueue(one, metadata=served.auth(enqueuer))
    got = await served.stub.GetJob(pb.GetJobRequest(id=done.id), metadata=served.auth(reader))
    assert got.state == "ready"
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # cancel needs admin, as over HTTP
        await served.stub.CancelJob(pb.CancelJobRequest(id=done.id), metadata=served.auth(enqueuer))
    assert refusal(refused)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "forbidden")


async def test_a_token_bound_to_queues_uses_and_sees_only_those(served: Served) -> None:
    bound = make_token(served.redis_url, queues=["b"])
    ok = await served.stub.Enqueue(pb.EnqueueRequest(job=spec(queue="b")),
                                   metadata=served.auth(bound))  # fmt: skip
    assert ok.created
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Enqueue(pb.EnqueueRequest(job=spec(queue="high")),
                                  metadata=served.auth(bound))  # fmt: skip
    assert refusal(refused) == (grpc.StatusCode.PERMISSION_DENIED, "forbidden_queue", "queue")
    elsewhere = await served.stub.Enqueue(pb.EnqueueRequest(job=spec(queue="high")),
                                          metadata=served.auth())  # fmt: skip
    for call in (served.stub.GetJob(pb.GetJobRequest(id=elsewhere.id), metadata=served.auth(bound)),
                 served.stub.CancelJob(pb.CancelJobRequest(id=elsewhere.id),
                                       metadata=served.auth(bound))):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call
        assert refusal(hidden)[:2] == (grpc.StatusCode.NOT_FOUND, "not_found")


# ---------------------------------------------------------------- error mapping

BAD = [
    (spec("nope"), grpc.StatusCode.INVALID_ARGUMENT, "unknown_type", "type"),
    (spec(queue="elsewhere"), grpc.StatusCode.INVALID_ARGUMENT, "unknown_queue", "queue"),
    (spec(queue="bad name!"), grpc.StatusCode.INVALID_ARGUMENT, "invalid", "queue"),
    (spec(type=""), grpc.StatusCode.INVALID_ARGUMENT, "invalid", "type"),
    (spec(delay=-1), grpc.StatusCode.INVALID_ARGUMENT, "invalid", "delay"),
    (spec(delay=float("nan")), grpc.StatusCode.INVALID_ARGUMENT, "invalid", "delay"),
    (spec(timeout=0), grpc.StatusCode.INVALID_ARGUMENT, "invalid", "timeout"),
    (spec(max_retries=-2), grpc.StatusCode.INVALID_ARGUMENT, "invalid", "max_retries"),
    (pb.JobSpec(type="noop", data=b"{"), grpc.StatusCode.INVALID_ARGUMENT, "invalid", "data"),
    (pb.JobSpec(type="noop", data=b'1, "jobs": []'), grpc.StatusCode.INVALID_ARGUMENT,
     "invalid", "data"),
    (pb.JobSpec(type="noop", data=b"[" * 70 + b"]" * 70), grpc.StatusCode.INVALID_ARGUMENT,
     "max_depth", "data"),
    (pb.JobSpec(type="noop", data=b"[" + b"0," * 100_001 + b"0]"),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "", None),  # over the message bound (HTTP's 413)
]  # fmt: skip


@pytest.mark.parametrize(("job", "status", "code", "field"), BAD)
async def test_a_bad_job_is_refused_with_the_mapped_status(
    served: Served, job: pb.JobSpec, status: grpc.StatusCode, code: str, field: str | None
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Enqueue(pb.EnqueueRequest(job=job), metadata=served.auth())
    assert refusal(refused) == (status, code, field)
    assert "Traceback" not in (refused.value.details() or "")


async def test_a_full_queue_is_resource_exhausted_and_unknown_jobs_not_found(
    served: Served,
) -> None:
    await served.stub.EnqueueBatch(pb.EnqueueBatchRequest(jobs=[spec()] * 50),
                                   metadata=served.auth())  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=served.auth())
    assert refusal(refused) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "queue_full", "queue")
    for call in (served.stub.GetJob(pb.GetJobRequest(id="nope"), metadata=served.auth()),
                 served.stub.CancelJob(pb.CancelJobRequest(id="nope"), metadata=served.auth()),
                 served.stub.WatchJob(pb.WatchJobRequest(id="nope"),
                                      metadata=served.auth()).read()):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert refusal(missing)[:2] == (grpc.StatusCode.NOT_FOUND, "not_found")
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await served.stub.EnqueueBatch(pb.EnqueueBatchRequest(), metadata=served.auth())
    assert refusal(empty) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid", "jobs")


async def test_unreachable_redis_is_unavailable_and_not_serving() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = GrpcServer(api_settings(url, auth=False), load_handlers(["tests.jobs"]))
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pb_grpc.JobsStub(channel).Enqueue(pb.EnqueueRequest(job=spec()))
            assert refusal(refused)[:2] == (grpc.StatusCode.UNAVAILABLE, "redis_unavailable")
            assert "idempotency_key" in (refused.value.details() or "")
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await server.stop(1)


async def test_the_ingress_limit_holds_per_client_as_over_http(redis_url: str) -> None:
    """JOBRUNNER_INGRESS_RATE: a client named by x-client-id (else by its address) gets its
    own budget; over it, RESOURCE_EXHAUSTED `rate_limited`, and another client still gets in."""
    settings = api_settings(redis_url, ingress_rate="token_bucket:2/10s:burst=2")
    server = GrpcServer(settings, load_handlers(["tests.jobs"]))
    port = await server.start("127.0.0.1", 0)
    token = make_token(redis_url)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.JobsStub(channel)
            mine = (("authorization", f"Bearer {token}"), ("x-client-id", "a"))
            for _ in range(2):
                await stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=mine)
            with pytest.raises(grpc.aio.AioRpcError) as limited:
                await stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=mine)
            assert refusal(limited) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited", "X-Client-Id",
            )  # fmt: skip
            other = (("authorization", f"Bearer {token}"),)  # by its address: another budget
            assert (await stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=other)).created
    finally:
        await server.stop(1)


PARITY = [
    ({"type": "nope"}, spec("nope")),
    ({"type": "noop", "queue": "elsewhere"}, spec(queue="elsewhere")),
    ({"type": "noop", "delay": -1}, spec(delay=-1)),
    ({"type": "noop", "data": json.loads("[" * 70 + "]" * 70)},
     pb.JobSpec(type="noop", data=b"[" * 70 + b"]" * 70)),
]  # fmt: skip


async def test_refusals_match_post_jobs_code_field_and_sentence(served: Served) -> None:
    """The same job refused by both APIs: one problem code, field and sentence."""
    settings = api_settings(served.redis_url)
    with running_api(settings) as base:
        async with httpx.AsyncClient(base_url=base, headers=base.headers) as http:
            for body, job in PARITY:
                answer = (await http.post("/jobs", json=body)).json()
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await served.stub.Enqueue(pb.EnqueueRequest(job=job), metadata=served.auth())
                _, code, field = refusal(refused)
                assert (code, field) == (answer["code"], answer["field"]), body
                if code != "max_depth":  # HTTP's depth is the body's, one level more
                    assert refused.value.details() == answer["detail"]


# ---------------------------------------------------------------- health and reflection


async def test_health_and_reflection_services(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    for name in ("", "jobrunner.v1.Jobs"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    asks = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="jobrunner.v1.Jobs"),
    ]
    answers = [a async for a in reflect.ServerReflectionInfo(iter(asks))]
    names = {s.name for s in answers[0].list_services_response.service}
    assert names == {"jobrunner.v1.Jobs", "grpc.health.v1.Health",
                     "grpc.reflection.v1alpha.ServerReflection"}  # fmt: skip
    assert answers[1].file_descriptor_response.file_descriptor_proto  # the .proto, for grpcurl


# ---------------------------------------------------------------- the CLI, and fuzzing


@pytest.fixture(scope="module")
def grpc_process(redis_server: Any) -> Iterator[tuple[str, str, str]]:
    """``jobrunner grpc`` as a real process (on uvloop); yields its address, a token and its
    metrics URL."""
    url = redis_server.url
    port, metrics_port = free_port(), free_port()
    argv = [sys.executable, "-m", "jobrunner.cli", "grpc", "--redis-url", url, "--port",
            str(port), "--queues", "default,high", "--import", "tests.jobs",
            "--log-format", "json", "--metrics-port", str(metrics_port)]  # fmt: skip
    proc = subprocess.Popen(argv, env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    address = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(address)
    health = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    try:
        wait_until(serving, 30, what="jobrunner grpc to serve")
        yield address, make_token(url), f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        channel.close()
        proc.terminate()
        code = proc.wait(20)
        if proc.stderr is not None:
            proc.stderr.close()
        assert code == 0  # SIGTERM: a graceful stop


def status(call: Any) -> grpc.StatusCode:
    """The status a blocking call ends with (OK when it answers)."""
    try:
        call()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


def test_the_cli_serves_and_stays_healthy_under_random_bytes(
    grpc_process: tuple[str, str, str],
) -> None:
    address, token, metrics_url = grpc_process
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        calls = {  # bytes in, bytes out; a stream is read to its end
            name: channel.unary_unary(f"/jobrunner.v1.Jobs/{name}")
            for name in ("Enqueue", "EnqueueBatch", "GetJob", "CancelJob")
        }
        watch = channel.unary_stream("/jobrunner.v1.Jobs/WatchJob")
        health = health_pb2_grpc.HealthStub(channel)
        stub = pb_grpc.JobsStub(channel)

        @settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(st.sampled_from([*calls, "WatchJob"]), st.binary(max_size=2048))
        def random_bytes(name: str, message: bytes) -> None:
            if name == "WatchJob":
                answer = status(lambda: list(watch(message, metadata=metadata, timeout=2)))
            else:
                answer = status(lambda: calls[name](message, metadata=metadata, timeout=10))
            assert answer in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
                              grpc.StatusCode.NOT_FOUND), (name, answer)  # fmt: skip

        floats = st.floats(allow_nan=True, allow_infinity=True)

        @settings(max_examples=150, deadline=None)
        @given(type=st.text(max_size=30) | st.sampled_from(["noop", "email"]),
               data=st.binary(max_size=300) | st.recursive(
                   st.none() | st.integers() | st.text(max_size=5),
                   lambda inner: st.lists(inner, max_size=3), max_leaves=10,
               ).map(lambda v: json.dumps(v).encode()),
               queue=st.none() | st.text(max_size=20) | st.just("high"), delay=floats,
               max_retries=st.none() | st.integers(-(2**31), 2**31 - 1),
               timeout=st.none() | floats, key=st.none() | st.text(max_size=250))  # fmt: skip
        def malformed_specs(**fields: Any) -> None:
            job = pb.JobSpec(type=fields["type"], data=fields["data"], delay=fields["delay"])
            fields["idempotency_key"] = fields.pop("key")
            for name in ("queue", "max_retries", "timeout", "idempotency_key"):
                if fields[name] is not None:
                    setattr(job, name, fields[name])
            sent = pb.EnqueueRequest(job=job)
            assert status(lambda: stub.Enqueue(sent, metadata=metadata, timeout=10)) in (
                grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )  # fmt: skip

        random_bytes()
        malformed_specs()
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        done = stub.Enqueue(pb.EnqueueRequest(job=spec()), metadata=metadata, timeout=10)
        assert done.created
    scraped = httpx.get(metrics_url).text  # every refusal above was counted, none as UNKNOWN
    assert 'grpc_code="INVALID_ARGUMENT"' in scraped
    assert 'grpc_code="UNKNOWN"' not in scraped


async def test_a_queue_made_by_the_grpc_api_is_the_http_apis(served: Served) -> None:
    """The same Redis keys: a job enqueued over gRPC is read by a ReliableQueue of its own."""
    done = await served.stub.Enqueue(pb.EnqueueRequest(job=spec(data={"a": 1})),
                                     metadata=served.auth())  # fmt: skip
    from jobrunner.connection import async_redis

    redis = async_redis(served.redis_url)
    queue = ReliableQueue(redis)
    try:
        record = await queue.get_job(done.id)
        assert record is not None
        assert record.job.payload == {"a": 1}
    finally:
        await queue.aclose()
        await redis.aclose()


def test_the_generated_modules_are_built_not_committed() -> None:
    """jobs_pb2*.py come from the package build (setup.py): present here, ignored by git."""
    root = Path(__file__).resolve().parents[1]
    tracked = subprocess.run(["git", "ls-files", "jobrunner/grpc/v1"], cwd=root,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert tracked == ["jobrunner/grpc/v1/__init__.py"]
    for name in ("jobs_pb2.py", "jobs_pb2.pyi", "jobs_pb2_grpc.py"):
        assert (root / "jobrunner/grpc/v1" / name).exists()
        ignored = subprocess.run(["git", "check-ignore", "-q", f"jobrunner/grpc/v1/{name}"],
                                 cwd=root)  # fmt: skip
        assert ignored.returncode == 0, name
