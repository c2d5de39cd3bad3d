"""Retry delay strategies: small pure objects, selectable by name.

Each strategy answers "how long to wait before attempt ``attempt + 1``" given the attempt that
just failed (1-based) and, for decorrelated jitter, the previous delay. Randomness comes from an
injected ``random.Random`` so tests and simulations are reproducible.

The jittered variants follow the AWS Architecture Blog's "Exponential Backoff and Jitter":
full jitter spreads retries uniformly over [0, exp], equal jitter over [exp/2, exp], and
decorrelated jitter grows from the previous delay instead of the attempt number.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol

_RNG = random.Random()


class Backoff(Protocol):
    """Delay, in seconds, before retrying after failed attempt number ``attempt`` (1-based)."""

    @property
    def cap(self) -> float: ...

    def delay(self, attempt: int, previous: float | None = None) -> float: ...


@dataclass(frozen=True)
class Constant:
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, previous: float | None = None) -> float:
        return min(self.cap, self.base)


@dataclass(frozen=True)
class Linear:
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, previous: float | None = None) -> float:
        return min(self.cap, self.base * max(1, attempt))


def _exp(base: float, cap: float, attempt: int) -> float:
    """min(cap, base * 2**(attempt - 1)), without overflowing for huge attempt numbers."""
    try:
        return min(cap, math.ldexp(base, max(attempt, 1) - 1))
    except OverflowError:
        return cap


@dataclass(frozen=True)
class Exponential:
    base: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int, previous: float | None = None) -> float:
        return _exp(self.base, self.cap, attempt)


@dataclass(frozen=True)
class FullJitter:
    base: float = 0.5
    cap: float = 60.0
    rng: random.Random = field(default=_RNG, compare=False, repr=False)

    def delay(self, attempt: int, previous: float | None = None) -> float:
        return self.rng.uniform(0.0, _exp(self.base, self.cap, attempt))


@dataclass(frozen=True)
class EqualJitter:
    base: float = 0.5
    cap: float = 60.0
    rng: random.Random = field(default=_RNG, compare=False, repr=False)

    def delay(self, attempt: int, previous: float | None = None) -> float:
        half = _exp(self.base, self.cap, attempt) / 2
        return half + self.rng.uniform(0.0, half)


@dataclass(frozen=True)
class DecorrelatedJitter:
    base: float = 0.5
    cap: float = 60.0
    rng: random.Random = field(default=_RNG, compare=False, repr=False)

    def delay(self, attempt: int, previous: float | None = None) -> float:
        last = self.base if previous is None else max(self.base, previous)
        return min(self.cap, self.rng.uniform(self.base, last * 3))


STRATEGIES: dict[
    str, type[Constant | Linear | Exponential | FullJitter | EqualJitter | DecorrelatedJitter]
] = {
    "constant": Constant,
    "linear": Linear,
    "exponential": Exponential,
    "full_jitter": FullJitter,
    "equal_jitter": EqualJitter,
    "decorrelated_jitter": DecorrelatedJitter,
}


def backoff_from_name(
    name: str,
    *,
    base: float | None = None,
    cap: float | None = None,
    rng: random.Random | None = None,
) -> Backoff:
    """Build a strategy by name, e.g. ``backoff_from_name("full_jitter", base=0.1, cap=10)``."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown backoff {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None
    kwargs: dict[str, object] = {}
    if base is not None:
        if not base >= 0:  # catches NaN too
            raise ValueError(f"base must be a number >= 0, not {base!r}")
        kwargs["base"] = base
    if cap is not None:
        if not cap >= 0:
            raise ValueError(f"cap must be a number >= 0, not {cap!r}")
        kwargs["cap"] = cap
    if rng is not None and cls in (FullJitter, EqualJitter, DecorrelatedJitter):
        kwargs["rng"] = rng
    strategy: Backoff = cls(**kwargs)  # type: ignore[arg-type]
    return strategy


DEFAULT_BACKOFF: Backoff = FullJitter(base=0.5, cap=60.0)
