"""A regression on purpose, inside the worker: the handler the regression gate's own test
(tests/test_bench_gate.py) gives the drain benchmark instead of ``noop`` to make it slower.

``bench.spin`` holds the worker's event loop for ``us`` microseconds, as a worker that got
slower per job would: the extra cost is spent where a real regression's is, in the worker
process during the drain, so the Redis probe the gate divides by (timed in the benchmark's
process between rounds) sees the machine as a plain run leaves it. A cost injected in the
benchmark's own process instead slowed that probe too and hid up to a third of a 2x slowdown.
"""

from __future__ import annotations

import time
from typing import Any

from jobrunner.registry import handler

SPIN = "bench.spin"


@handler(SPIN, timeout=5)
async def spin(payload: Any) -> None:
    """Busy for ``payload["us"]`` microseconds without yielding (the worker's CPU, not a wait)."""
    until = time.perf_counter() + float(payload["us"]) / 1e6
    while time.perf_counter() < until:
        pass
