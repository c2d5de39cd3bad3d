"""Recent rates from counter samples: pure arithmetic over a fake timeline, then over HTTP."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis as AsyncRedis

from jobrunner.api.rates import RateTracker
from jobrunner.config import Settings
from jobrunner.queue import ReliableQueue
from tests.api_server import running_api
from tests.conftest import wait_until


async def test_rates_are_counter_differences_over_each_window(aredis: AsyncRedis) -> None:
    tracker = RateTracker(ReliableQueue(aredis), ["default"])
    assert tracker.rates("q") == {}
    for second in range(0, 61):  # 100 processed and 10 enqueued a second, for a minute
        tracker.add_sample("q", float(second), {"processed": 100 * second, "enqueued": 10 * second})
    rates = tracker.rates("q")
    assert rates["processed_per_s_10s"] == 100.0
    assert rates["processed_per_s_60s"] == 100.0
    assert rates["enqueued_per_s_10s"] == 10.0
    assert rates["dead_per_s_60s"] == 0.0
    for second in range(61, 71):  # then it stops
        tracker.add_sample("q", float(second), {"processed": 6000, "enqueued": 600})
    rates = tracker.rates("q")
    assert rates["processed_per_s_10s"] == 0.0
    assert 80 < rates["processed_per_s_60s"] < 90  # 5,000 over the last 60 s


def test_queues_route_reports_recent_rates(redis_url: str) -> None:
    with (
        running_api(Settings(redis_url=redis_url)) as base,
        httpx.Client(base_url=base, headers=base.headers) as api,
    ):
        api.post("/jobs", json={"jobs": [{"type": "noop"}] * 20})

        def rated() -> dict[str, float]:
            queues = api.get("/queues").json()
            return queues[0]["rates"] if queues else {}

        rates = wait_until(rated, what="two samples of the counters")
        assert isinstance(rates, dict)
        assert set(rates) >= {"enqueued_per_s_10s", "processed_per_s_60s"}
