"""The simulated dependency: its model (capacity, load-driven latency, outages, errors, the call
count), the HTTP server that worker processes share, and the handlers that call it."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from jobrunner.backoff import Constant, DecorrelatedJitter, Exponential, FullJitter
from jobrunner.lab.dependency import (
    DependencyConfig,
    DependencyFailed,
    DependencyModel,
    DependencyServer,
    HttpDependency,
    InProcessDependency,
)
from jobrunner.registry import registry


def test_calls_beyond_the_capacity_of_a_window_fail_as_overloaded() -> None:
    model = DependencyModel(DependencyConfig(capacity=100, window=0.1))
    results = [model.call(5.0) for _ in range(30)]
    assert [r.reason for r in results].count("ok") == 10
    assert [r.reason for r in results].count("overloaded") == 20
    assert model.call(5.2).ok  # the window moved on: capacity is back
    assert model.total == 31
    assert model.stats()["outcomes"] == {"ok": 11, "overloaded": 20}


def test_latency_grows_with_load_up_to_its_cap() -> None:
    model = DependencyModel(DependencyConfig(capacity=100, base_latency=0.01, max_latency=0.2))
    latencies = [model.call(1.0).latency for _ in range(12)]
    assert latencies[0] == pytest.approx(0.01 / 0.9)  # one call in 0.1 s: 10% of capacity
    assert latencies == sorted(latencies)
    assert latencies[-1] == 0.2


def test_outages_fail_every_call_inside_them_then_it_recovers() -> None:
    model = DependencyModel(DependencyConfig(outages=((1.0, 2.0),)), start=100.0)
    assert model.call(100.5).ok
    assert model.call(101.0).reason == "outage"
    assert model.call(101.99).reason == "outage"
    assert model.call(102.0).ok


def test_the_error_rate_is_reproducible_under_a_seed() -> None:
    def run() -> list[bool]:
        model = DependencyModel(DependencyConfig(capacity=1e6, error_rate=0.3, seed=7))
        return [model.call(i / 1000).ok for i in range(1000)]

    first = run()
    assert first == run()
    assert 600 < first.count(True) < 800


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"capacity": 0}, "capacity"),
        ({"error_rate": 2}, "error_rate"),
        ({"outages": [[3, 1]]}, "outage"),
        ({"colour": "red"}, "unknown"),
        ({"base_latency": 2, "max_latency": 1}, "latencies"),
    ],
)
def test_a_bad_config_is_refused_with_the_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DependencyConfig.from_dict(data)


def test_a_config_survives_its_json_form() -> None:
    config = DependencyConfig(capacity=50, outages=((1, 2),), seed=3)
    assert DependencyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


async def test_in_process_dependency_raises_when_it_fails() -> None:
    dependency = InProcessDependency(DependencyConfig(capacity=10, window=0.1, base_latency=0))
    await dependency.call()
    with pytest.raises(DependencyFailed, match="overloaded"):
        await dependency.call()
    assert dependency.model.total == 2


async def test_the_http_server_answers_counts_and_resets() -> None:
    with DependencyServer(DependencyConfig(capacity=1000, base_latency=0.02)) as server:
        client = HttpDependency(server.url)
        try:
            await asyncio.gather(*(client.call() for _ in range(5)))
            stats = server.stats(times=True)
            assert stats["total"] == 5
            assert stats["outcomes"] == {"ok": 5}
            assert len(stats["times"]) == 5
            assert 1 < stats["peak_in_flight"] <= 5  # latency made the calls overlap
            assert stats["in_flight"] == 0
            server.reset(DependencyConfig(outages=((0, 60),)))
            with pytest.raises(DependencyFailed, match="outage"):
                await client.call()
            assert server.stats()["outcomes"] == {"outage": 1}
        finally:
            await client.close()


def test_the_http_server_refuses_a_bad_config_and_keeps_its_own() -> None:
    with DependencyServer(DependencyConfig(capacity=42)) as server:
        request = urllib.request.Request(f"{server.url}/reset", data=b'{"capacity": -1}')
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 422
        assert "capacity" in json.loads(refused.value.read())["detail"]
        refused.value.close()
        assert server.stats()["config"]["capacity"] == 42


async def test_an_unreachable_dependency_is_a_failure_too() -> None:
    server = DependencyServer()  # never started: nothing listens on its port
    client = HttpDependency(server.url, timeout=2)
    try:
        with pytest.raises(DependencyFailed, match="unreachable"):
            await client.call()
    finally:
        await client.close()


def test_one_handler_per_retry_strategy_with_that_strategy() -> None:
    import jobrunner.lab.handlers.dependency as handlers

    expected = {
        "none": Constant,
        "exponential": Exponential,
        "full_jitter": FullJitter,
        "decorrelated_jitter": DecorrelatedJitter,
    }
    for name, cls in expected.items():
        spec = registry.get(f"dependency.call.{name}")
        assert spec is not None
        assert isinstance(spec.backoff, cls)
        assert spec.max_retries == handlers.MAX_RETRIES
    assert registry.get("dependency.call.none").backoff.delay(5) == 0  # type: ignore[union-attr]
