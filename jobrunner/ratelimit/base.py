"""The one interface every limiter has, in Redis or in-process: ``acquire`` units, get a
``Decision``; ``release``/``renew`` matter only to the concurrency limit (no-ops elsewhere).

A caller asks for several units at once (one per job of a batch, named by the job ids): a
decision grants a prefix of them and says when the next unit is expected to fit
(``retry_after``) and how far apart the following ones will (``interval``), so a worker can
defer the rest to when capacity is expected instead of polling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from jobrunner.ratelimit.spec import LimitSpec


@dataclass(frozen=True)
class Decision:
    """What a limiter answered: the first ``granted`` of the ``requested`` units may go now."""

    granted: int
    requested: int
    retry_after: float  # seconds until the next unit is expected to fit (0 when all granted)
    interval: float  # expected seconds between admissions after that
    remaining: float  # tokens, window room or free slots left after this decision
    now: float  # the limiter's clock when it decided, in seconds (Redis TIME when distributed)

    @property
    def allowed(self) -> bool:
        return self.granted == self.requested

    def delay_for(self, index: int) -> float:
        """When the ``index``-th unit that was *not* granted (0-based) is expected to fit."""
        return self.retry_after + index * self.interval


class Limiter(Protocol):
    """A limit on one algorithm; ``key`` names the resource (one budget per key)."""

    spec: LimitSpec

    async def acquire(self, key: str, ids: Sequence[str], now: float | None = None) -> Decision:
        """Admit a prefix of ``ids`` (one unit each); ``now`` overrides the clock (tests, sims)."""
        ...

    async def release(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        """Give back what ``ids`` hold (concurrency slots); nothing for rate limits."""
        ...

    async def renew(self, key: str, ids: Sequence[str], now: float | None = None) -> None:
        """Extend the leases of held slots (concurrency); nothing for rate limits."""
        ...
