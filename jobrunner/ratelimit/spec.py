"""What a limit says, and its text form: ``"gcra:50/s"``, ``"token_bucket:100/m:burst=20"``,
``"sliding_window:50/s"``, ``"concurrency:4"``.

One ``LimitSpec`` describes a limit whatever enforces it (Redis or in-process), so the same
declaration serves the worker (execution limits), the API (ingress limits) and the experiments.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["token_bucket", "gcra", "sliding_window", "concurrency"]
ALGORITHMS: tuple[Algorithm, ...] = ("token_bucket", "gcra", "sliding_window", "concurrency")
# Algorithms that guarantee their bound in *every* window, not only on average.
STRICT: frozenset[str] = frozenset({"token_bucket", "gcra", "concurrency"})

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^(?P<limit>\d+)(?:/(?P<n>\d*\.?\d+)?(?P<unit>ms|s|m|h))?$")


@dataclass(frozen=True)
class LimitSpec:
    """``limit`` units per ``period`` seconds (or ``limit`` at once, for ``concurrency``).

    ``burst``: units that may pass back to back (token bucket and GCRA; default 1, which makes
    "50/s" mean at most 50 in *any* one-second window). ``key``: the shared resource the limit
    guards (default: the job type). ``lease``: seconds a concurrency slot is held unless renewed,
    so a dead worker's slot comes back.
    """

    algorithm: Algorithm = "gcra"
    limit: int = 1
    period: float = 1.0
    burst: int = 1
    key: str | None = None
    lease: float = 60.0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown limit algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
            )
        if self.limit < 1:
            raise ValueError(f"a limit must be at least 1, not {self.limit!r}")
        if not 0 < self.period < math.inf:
            raise ValueError(f"a limit's period must be a positive number, not {self.period!r}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst!r}")
        if not 0 < self.lease < math.inf:
            raise ValueError(f"lease must be a positive number of seconds, not {self.lease!r}")

    @property
    def rate(self) -> float:
        """Units per second."""
        return self.limit / self.period

    @property
    def strict(self) -> bool:
        return self.algorithm in STRICT

    def bound(self, window: float) -> int | None:
        """Most admissions this limit allows in any window of ``window`` seconds (None: no bound).

        Token bucket and GCRA: ``burst + ceil(window * rate) - 1`` (``limit`` for one period when
        ``burst`` is 1). The sliding-window counter only bounds its aligned windows (``limit``
        each), so a sliding window may see more: no bound is claimed. Concurrency limits bound
        jobs at once, not per window.
        """
        if self.algorithm in ("token_bucket", "gcra"):
            return self.burst + math.ceil(window * self.rate - 1e-9) - 1
        return None

    def describe(self) -> str:
        if self.algorithm == "concurrency":
            text = f"concurrency:{self.limit}"
            if self.lease != 60.0:
                text += f":lease={self.lease:g}"
        else:
            text = f"{self.algorithm}:{self.limit}/{self.period:g}s"
            if self.burst != 1:
                text += f":burst={self.burst}"
        if self.key:
            text += f":key={self.key}"
        return text


def parse_limit(text: str) -> LimitSpec:
    """``[algorithm:]N[/[x]unit][:burst=B][:key=K][:lease=S]``; the algorithm defaults to GCRA.

    Examples: ``50/s``, ``gcra:3000/m``, ``token_bucket:10/2s:burst=5``, ``concurrency:4:lease=30``.
    """
    parts = [p.strip() for p in text.strip().split(":")]
    if not parts or not parts[0]:
        raise ValueError(f"empty limit {text!r}")
    algorithm = "gcra"
    if parts[0] in ALGORITHMS:
        algorithm = parts.pop(0)
    if not parts:
        raise ValueError(f"limit {text!r} has no amount (e.g. 'gcra:50/s', 'concurrency:4')")
    match = _RATE.match(parts.pop(0))
    if match is None:
        raise ValueError(f"cannot read limit {text!r}: expected N/s, N/m, N/h, N/2.5s or N")
    options: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or name not in ("burst", "key", "lease") or not value:
            raise ValueError(f"unknown option {part!r} in limit {text!r} (burst=, key=, lease=)")
        options[name] = value
    unit = match["unit"]
    if algorithm == "concurrency" and unit:
        raise ValueError(f"a concurrency limit has no period: {text!r} (write 'concurrency:4')")
    if algorithm != "concurrency" and not unit:
        raise ValueError(f"a rate limit needs a period: {text!r} (e.g. '{match['limit']}/s')")
    period = float(match["n"] or 1) * _UNITS[unit] if unit else 1.0
    try:
        return LimitSpec(
            algorithm=algorithm,  # type: ignore[arg-type]
            limit=int(match["limit"]),
            period=period,
            burst=int(options.get("burst", 1)),
            key=options.get("key"),
            lease=float(options.get("lease", 60.0)),
        )
    except ValueError as exc:
        raise ValueError(f"invalid limit {text!r}: {exc}") from exc


def parse_limits(text: str) -> dict[str, LimitSpec]:
    """``"email=50/s;resize_image=concurrency:4"`` (the ``JOBRUNNER_LIMITS`` setting)."""
    out: dict[str, LimitSpec] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        name, sep, spec = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected type=limit in {item!r} (e.g. 'email=50/s')")
        out[name.strip()] = parse_limit(spec)
    return out
