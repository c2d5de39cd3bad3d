"""A simulated downstream service: what it answers to a call at a given time, and a count of
every call it received (so the work amplification of retries can be measured).

Pure logic on an injected clock value: the discrete-event simulation drives it with simulated
time, the HTTP server (``jobrunner.lab.dependency.server``) with the wall clock. Behaviour:

- **capacity**: at most ``capacity`` calls per second succeed, measured over a sliding
  ``window``; calls beyond that fail as ``overloaded`` (they still count as load);
- **latency grows with load**: ``base_latency / (1 - utilisation)``, capped at ``max_latency``,
  where utilisation is the arrival rate over the window divided by the capacity;
- **outages**: every call inside an outage ``[start, end)`` (seconds since the model started)
  fails as ``outage``; otherwise a call fails as ``error`` with probability ``error_rate``.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

MIN_HEADROOM = 0.02  # latency stops growing at 1/0.02 = 50x the base


@dataclass(frozen=True)
class DependencyConfig:
    capacity: float = 100.0  # successful calls per second it can serve
    base_latency: float = 0.005  # seconds, unloaded
    max_latency: float = 0.5  # seconds
    error_rate: float = 0.0  # failures at any load, 0..1
    outages: tuple[tuple[float, float], ...] = ()  # [start, end) seconds since the model started
    window: float = 0.1  # seconds over which load and capacity are measured
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.capacity > 0 or not math.isfinite(self.capacity):
            raise ValueError(f"capacity must be a positive number, not {self.capacity!r}")
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate must be within 0..1, not {self.error_rate!r}")
        if not 0 <= self.base_latency <= self.max_latency:
            raise ValueError("latencies must satisfy 0 <= base_latency <= max_latency")
        if not self.window > 0:
            raise ValueError(f"window must be positive, not {self.window!r}")
        for start, end in self.outages:
            if not 0 <= start < end:
                raise ValueError(f"an outage needs 0 <= start < end, not {(start, end)!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DependencyConfig:
        """From JSON: unknown fields are refused, outages given as ``[[start, end], ...]``."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown dependency settings: {', '.join(sorted(unknown))}")
        values = dict(data)
        if "outages" in values:
            values["outages"] = tuple((float(a), float(b)) for a, b in values["outages"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["outages"] = [list(o) for o in self.outages]
        return out


@dataclass(frozen=True)
class CallResult:
    ok: bool
    latency: float  # seconds until the answer
    reason: str  # "ok", "overloaded", "outage" or "error"


@dataclass
class DependencyModel:
    """One dependency's state; ``call(now)`` answers one call arriving at ``now`` (seconds)."""

    config: DependencyConfig
    start: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    outcomes: Counter[str] = field(default_factory=Counter)
    times: list[float] = field(default_factory=list)  # arrival of every call, seconds since start
    _arrivals: deque[float] = field(default_factory=deque)
    _successes: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.config.seed is not None:
            self.rng = random.Random(self.config.seed)

    def call(self, now: float) -> CallResult:
        c = self.config
        t = now - self.start
        self.times.append(t)
        horizon = now - c.window
        for recent in (self._arrivals, self._successes):
            while recent and recent[0] <= horizon:
                recent.popleft()
        self._arrivals.append(now)
        utilisation = len(self._arrivals) / c.window / c.capacity
        latency = min(c.max_latency, c.base_latency / max(MIN_HEADROOM, 1 - utilisation))
        if any(start <= t < end for start, end in c.outages):
            return self._answer(CallResult(False, c.base_latency, "outage"))
        if len(self._successes) + 1 > c.capacity * c.window:
            return self._answer(CallResult(False, latency, "overloaded"))
        if c.error_rate and self.rng.random() < c.error_rate:
            return self._answer(CallResult(False, latency, "error"))
        self._successes.append(now)
        return self._answer(CallResult(True, latency, "ok"))

    def _answer(self, result: CallResult) -> CallResult:
        self.outcomes[result.reason] += 1
        return result

    @property
    def total(self) -> int:
        return len(self.times)

    def stats(self) -> dict[str, Any]:
        return {"total": self.total, "outcomes": dict(self.outcomes),
                "config": self.config.to_dict()}  # fmt: skip
