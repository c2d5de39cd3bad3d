"""Jobs that call the simulated dependency (``jobrunner.lab.dependency``), one type per retry
strategy, so the backoff experiment runs each strategy through the real worker and queue.

Types: ``dependency.call`` (full jitter) and ``dependency.call.<strategy>`` for ``none``
(retry at once), ``constant``, ``linear``, ``exponential``, ``full_jitter``, ``equal_jitter``
and ``decorrelated_jitter``. Read once, at import, from the environment:

- ``JOBRUNNER_DEPENDENCY_URL``: the dependency server every worker process shares; without it,
  each process calls an in-process model of its own;
- ``JOBRUNNER_DEPENDENCY_BACKOFF_BASE`` / ``_CAP`` (seconds, default 0.1 / 5) and
  ``JOBRUNNER_DEPENDENCY_MAX_RETRIES`` (default 100): the retry policy of every type here.

Execution limits for these types come from ``JOBRUNNER_LIMITS`` like any other type's.
"""

from __future__ import annotations

import os
from typing import Any

from jobrunner.backoff import STRATEGIES, Backoff, Constant, backoff_from_name
from jobrunner.lab.dependency.client import HttpDependency, InProcessDependency
from jobrunner.registry import handler

CALL = "dependency.call"
STRATEGY_NAMES = ("none", *STRATEGIES)


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None


BASE = _float_env("JOBRUNNER_DEPENDENCY_BACKOFF_BASE", 0.1)
CAP = _float_env("JOBRUNNER_DEPENDENCY_BACKOFF_CAP", 5.0)
MAX_RETRIES = int(_float_env("JOBRUNNER_DEPENDENCY_MAX_RETRIES", 100))
_url = os.environ.get("JOBRUNNER_DEPENDENCY_URL")
dependency: HttpDependency | InProcessDependency = (
    HttpDependency(_url) if _url else InProcessDependency()
)


def strategy(name: str) -> Backoff:
    """The retry strategy by name; ``none`` retries at once."""
    if name == "none":
        return Constant(base=0.0, cap=0.0)
    return backoff_from_name(name, base=BASE, cap=CAP)


async def call_dependency(payload: Any) -> str:
    """One call; a failure raises, and the job is retried with its type's strategy."""
    await dependency.call()
    return "ok"


handler(CALL, timeout=10, max_retries=MAX_RETRIES, backoff=strategy("full_jitter"))(call_dependency)
for _name in STRATEGY_NAMES:

    async def _call(payload: Any) -> str:
        return await call_dependency(payload)

    handler(f"{CALL}.{_name}", timeout=10, max_retries=MAX_RETRIES, backoff=strategy(_name))(_call)

# One carrier type per limiter algorithm for the limiter-accuracy experiment; their limits come
# from JOBRUNNER_LIMITS (e.g. "dependency.limited.gcra=gcra:50/s").
for _algorithm in ("token_bucket", "gcra", "sliding_window", "concurrency"):

    async def _limited(payload: Any) -> str:
        return await call_dependency(payload)

    handler(f"dependency.limited.{_algorithm}", timeout=10, max_retries=MAX_RETRIES)(_limited)
