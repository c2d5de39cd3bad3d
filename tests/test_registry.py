"""The handler registry, JobContext's cancellation, and the demo handlers run as plain functions."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from jobrunner.backoff import DEFAULT_BACKOFF, Constant, Exponential
from jobrunner.errors import HandlerImportError, JobTimeout
from jobrunner.job import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, Job
from jobrunner.lab.handlers import demo
from jobrunner.registry import HandlerSpec, JobContext, Registry, load_handlers, registry

DEMO_TYPES = ("noop", "email", "sleep", "cpu_burn", "resize_image", "flaky")
TEST_TYPES = (
    "test.record",
    "test.record_async",
    "test.fail_times",
    "test.hang_async",
    "test.hang_cooperative",
    "test.hang_blocking",
    "test.long_first_time",
    "test.exit_process",
)


def context(**overrides: Any) -> JobContext:
    fields: dict[str, Any] = {"job_id": "j1", "type": "sleep", "attempt": 1, "timeout": 5.0}
    return JobContext(**(fields | overrides))


# ---------------------------------------------------------------- registration


def test_a_sync_handler_is_registered_with_its_options() -> None:
    reg = Registry()
    backoff = Constant(base=1.0, cap=1.0)

    @reg.handler("resize", timeout=12.5, max_retries=7, backoff=backoff)
    def resize(payload: Any) -> str:
        return f"resized {payload}"

    spec = reg.get("resize")
    assert spec == HandlerSpec(
        name="resize",
        fn=resize.__wrapped__,
        is_async=False,
        takes_context=False,
        timeout=12.5,
        max_retries=7,
        backoff=backoff,
    )
    assert resize("x") == "resized x"  # the Handler it hands back calls the function
    assert (resize.name, resize.__name__, resize.spec) == ("resize", "resize", spec)
    assert "resize" in reg
    assert reg.names() == ["resize"]


async def test_an_async_handler_is_registered_and_still_awaitable() -> None:
    reg = Registry()

    @reg.handler("fetch")
    async def fetch(payload: Any, ctx: JobContext) -> int:
        return int(payload) + ctx.attempt

    spec = reg.get("fetch")
    assert spec is not None
    assert spec.is_async is True
    assert spec.takes_context is True
    assert (spec.timeout, spec.max_retries, spec.backoff) == (
        DEFAULT_TIMEOUT,
        DEFAULT_MAX_RETRIES,
        DEFAULT_BACKOFF,
    )
    assert await fetch("41", context(attempt=1)) == 42


def payload_only(payload: Any) -> None: ...
def payload_and_context(payload: Any, ctx: JobContext) -> None: ...
def context_with_default(payload: Any, ctx: JobContext | None = None) -> None: ...
def keyword_only_context(payload: Any, *, ctx: JobContext | None = None) -> None: ...
def var_positional(*args: Any) -> None: ...
def positional_only(payload: Any, ctx: JobContext, /) -> None: ...
async def async_payload_only(payload: Any) -> None: ...
async def async_with_context(payload: Any, ctx: JobContext) -> None: ...


@pytest.mark.parametrize(
    ("fn", "is_async", "takes_context"),
    [
        (payload_only, False, False),
        (payload_and_context, False, True),
        (context_with_default, False, True),
        (keyword_only_context, False, False),
        (var_positional, False, False),
        (positional_only, False, True),
        (async_payload_only, True, False),
        (async_with_context, True, True),
    ],
)
def test_is_async_and_takes_context_are_detected(
    fn: Any, is_async: bool, takes_context: bool
) -> None:
    reg = Registry()
    reg.handler("t")(fn)
    spec = reg.get("t")
    assert spec is not None
    assert (spec.is_async, spec.takes_context) == (is_async, takes_context)


def test_a_lambda_can_be_registered() -> None:
    reg = Registry()
    reg.handler("double")(lambda payload: payload * 2)
    spec = reg.get("double")
    assert spec is not None
    assert spec.fn(21) == 42
    assert (spec.is_async, spec.takes_context) == (False, False)


def test_a_duplicate_name_with_another_function_raises() -> None:
    reg = Registry()
    reg.handler("email")(payload_only)
    with pytest.raises(ValueError, match="a handler named 'email' is already registered"):
        reg.handler("email")(payload_and_context)
    spec = reg.get("email")
    assert spec is not None
    assert spec.fn is payload_only  # the first registration stands


def test_registering_the_same_function_again_is_allowed() -> None:
    """A module imported twice (worker and test) registers the same function twice."""
    reg = Registry()
    reg.handler("email")(payload_only)
    reg.handler("email", timeout=3)(payload_only)
    spec = reg.get("email")
    assert spec is not None
    assert spec.fn is payload_only
    assert reg.names() == ["email"]


def test_one_function_may_serve_several_names() -> None:
    reg = Registry()
    reg.handler("a")(payload_only)
    reg.handler("b", max_retries=0)(payload_only)
    assert reg.names() == ["a", "b"]


def test_get_of_an_unknown_name_returns_none() -> None:
    reg = Registry()
    assert reg.get("nope") is None
    assert "nope" not in reg
    assert reg.names() == []


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.001])
def test_a_timeout_that_is_not_positive_raises(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        Registry().handler("t", timeout=timeout)


def test_negative_max_retries_raises() -> None:
    with pytest.raises(ValueError, match="max_retries must not be negative"):
        Registry().handler("t", max_retries=-1)


def test_zero_max_retries_is_allowed() -> None:
    reg = Registry()
    reg.handler("once", max_retries=0)(payload_only)
    spec = reg.get("once")
    assert spec is not None
    assert spec.max_retries == 0


def test_invalid_options_raise_before_anything_is_registered() -> None:
    reg = Registry()
    with pytest.raises(ValueError, match="timeout"):
        reg.handler("t", timeout=0)(payload_only)
    assert "t" not in reg


def test_per_type_options_apply_to_jobs_enqueued_without_their_own() -> None:
    reg = Registry()
    reg.handler("slow", timeout=90, max_retries=8)(payload_only)
    spec = reg.get("slow")
    assert spec is not None

    plain = Job(id="j1", type="slow")
    assert spec.timeout_for(plain) == 90
    assert reg.max_retries_for(plain) == 8

    own = Job(id="j2", type="slow", timeout=2.0, max_retries=0)
    assert spec.timeout_for(own) == 2.0
    assert reg.max_retries_for(own) == 0

    assert reg.max_retries_for(Job(id="j3", type="unregistered")) == DEFAULT_MAX_RETRIES


def test_load_handlers_registers_the_demo_and_the_test_handlers() -> None:
    loaded = load_handlers(["tests.jobs"])
    assert loaded is registry
    for name in DEMO_TYPES + TEST_TYPES:
        assert name in loaded, name
        spec = loaded.get(name)
        assert spec is not None
        assert callable(spec.fn)

    def spec_of(name: str) -> HandlerSpec:
        spec = loaded.get(name)
        assert spec is not None
        return spec

    assert (spec_of("noop").is_async, spec_of("noop").timeout) == (True, 5)
    assert (spec_of("email").is_async, spec_of("email").timeout) == (True, 10)
    assert (spec_of("sleep").is_async, spec_of("sleep").takes_context) == (False, True)
    assert (spec_of("cpu_burn").is_async, spec_of("cpu_burn").takes_context) == (False, False)
    assert (spec_of("flaky").max_retries, spec_of("flaky").timeout) == (5, 10)
    assert spec_of("test.fail_times").max_retries == 5
    assert spec_of("test.record_async").is_async is True
    assert spec_of("test.record").backoff == Constant(base=0.05, cap=0.05)
    assert spec_of("resize_image").backoff is DEFAULT_BACKOFF


def test_load_handlers_again_is_harmless() -> None:
    before = load_handlers(["tests.jobs"]).names()
    assert load_handlers(["tests.jobs", "tests.jobs"]).names() == before


def test_load_handlers_of_a_missing_module_raises_one_line_naming_it() -> None:
    with pytest.raises(
        HandlerImportError, match=r"cannot import 'tests\.no_such_module'"
    ) as caught:
        load_handlers(["tests.no_such_module"])
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_the_backoff_option_may_be_any_strategy() -> None:
    reg = Registry()
    backoff = Exponential(base=0.1, cap=2.0)
    reg.handler("t", backoff=backoff)(payload_only)
    spec = reg.get("t")
    assert spec is not None
    assert spec.backoff.delay(3) == pytest.approx(0.4)


# ---------------------------------------------------------------- JobContext


def test_a_fresh_context_is_not_cancelled_and_check_passes() -> None:
    ctx = context()
    assert ctx.is_cancelled() is False
    ctx.check()
    assert ctx.is_cancelled() is False
    assert ctx.cancelled.is_set() is False


def test_is_cancelled_turns_true_once_cancelled_is_set() -> None:
    ctx = context()
    assert ctx.is_cancelled() is False
    ctx.cancelled.set()
    assert ctx.is_cancelled() is True


def test_check_raises_job_timeout_once_cancelled() -> None:
    ctx = context(job_id="abc", timeout=2.5)
    ctx.check()
    ctx.cancelled.set()
    with pytest.raises(JobTimeout, match=r"job abc passed its 2.5s timeout"):
        ctx.check()


def test_check_raises_past_the_deadline_and_sets_cancelled() -> None:
    ctx = context(deadline=time.monotonic() - 0.001)
    with pytest.raises(JobTimeout):
        ctx.check()
    assert ctx.is_cancelled() is True
    assert ctx.cancelled.is_set() is True


def test_check_passes_before_the_deadline() -> None:
    ctx = context(deadline=time.monotonic() + 60)
    ctx.check()
    assert ctx.is_cancelled() is False


def test_a_zero_deadline_means_no_deadline() -> None:
    ctx = context(deadline=0.0)
    ctx.check()
    assert ctx.is_cancelled() is False


def test_cancelled_is_one_event_shared_by_all_threads() -> None:
    ctx = context()
    seen: list[threading.Event] = []
    threads = [threading.Thread(target=lambda: seen.append(ctx.cancelled)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(seen) == 8
    assert all(event is ctx.cancelled for event in seen)


def test_a_thread_waiting_on_cancelled_wakes_when_it_is_set() -> None:
    ctx = context()
    outcome: list[BaseException] = []

    def handler() -> None:
        ctx.cancelled.wait(30)
        try:
            ctx.check()
        except JobTimeout as exc:
            outcome.append(exc)

    thread = threading.Thread(target=handler)
    thread.start()
    ctx.cancelled.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], JobTimeout)


# ---------------------------------------------------------------- the demo handlers


async def test_noop_does_nothing() -> None:
    assert await demo.noop({}) is None


def test_cpu_burn_returns_an_int() -> None:
    result = demo.cpu_burn({"iterations": 1000})
    assert isinstance(result, int)
    assert result == sum(i * i % 7 for i in range(1000))


def test_cpu_burn_defaults_work_with_any_payload() -> None:
    assert demo.cpu_burn({"iterations": 0}) == 0
    assert isinstance(demo.cpu_burn(None), int)


def test_resize_image_downscales_by_four() -> None:
    assert demo.resize_image({"size": 64}) == [16, 16]
    assert demo.resize_image({"size": 8.0}) == [2, 2]


def test_flaky_always_fails_with_p_one() -> None:
    for _ in range(20):
        with pytest.raises(RuntimeError, match="flaky dependency failed"):
            demo.flaky({"p": 1.0})


def test_flaky_never_fails_with_p_zero() -> None:
    assert [demo.flaky({"p": 0.0}) for _ in range(20)] == ["ok"] * 20


async def test_email_is_async_and_reports_the_recipient() -> None:
    assert await demo.email({"latency": 0, "to": "ada@example.com"}) == {
        "sent_to": "ada@example.com"
    }
    assert await demo.email({"latency": 0}) == {"sent_to": "user@example.com"}


def test_sleep_returns_at_once_for_zero_seconds() -> None:
    assert demo.sleep({"seconds": 0}, context()) is None


def test_sleep_stops_with_job_timeout_when_cancelled() -> None:
    ctx = context()
    ctx.cancelled.set()
    started = time.monotonic()
    with pytest.raises(JobTimeout):
        demo.sleep({"seconds": 60}, ctx)
    assert time.monotonic() - started < 5


def test_sleep_stops_at_the_deadline() -> None:
    ctx = context(timeout=0.05, deadline=time.monotonic() + 0.05)
    with pytest.raises(JobTimeout):
        demo.sleep({"seconds": 60}, ctx)
    assert ctx.is_cancelled() is True
