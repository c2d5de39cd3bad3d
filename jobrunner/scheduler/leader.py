"""Leader election for schedulers: one lock in Redis, with a TTL and a fencing token.

The lock's TTL runs on Redis's clock; the leader renews it every third of the TTL. Each new
holder takes the next fencing token, so tokens only increase. A leader also keeps its own
conservative view of how long the lock is surely still its own (measured from the moment it
*sent* the renewal, minus a safety margin), and stops acting as leader once that passes: a
process paused past its TTL (SIGSTOP, a long GC, a partition) notices on waking, before it
enqueues again. Should it enqueue anyway (paused between that check and the write), the fire
script compares its token with the lock's and refuses the write atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobrunner.clock import SYSTEM_CLOCK, Clock
from jobrunner.scheduler.keys import SchedulerKeys
from jobrunner.scripts import Scripts

SAFETY = 0.1  # share of the TTL the leader gives up early, for clock drift between hosts


@dataclass(frozen=True)
class LockStatus:
    """One acquire-or-renew answer: who holds the lock, with which token, on Redis's clock."""

    held: bool  # by the caller
    token: int
    holder: str
    redis_now_ms: int
    ttl_ms: int  # left on the lock


@dataclass(frozen=True)
class LeaderView:
    """The current leader as readers (the API) see it."""

    id: str
    token: int
    ttl_seconds: float
    since_ms: int


class LeaderLock:
    """One scheduler's side of the lock: try to take it, renew it, know when it is surely held."""

    def __init__(
        self,
        redis: Redis,
        owner: str,
        ttl: float,
        *,
        keys: SchedulerKeys | None = None,
        scripts: Scripts | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"the lock ttl must be positive, not {ttl!r}")
        self.owner = owner
        self.ttl = ttl
        self.keys = keys or SchedulerKeys()
        self.clock = clock
        self._scripts = scripts or Scripts(redis)
        self._safe_until = float("-inf")  # monotonic time the lock is surely ours until
        self.token: int | None = None  # our token while we think we hold the lock

    async def refresh(self) -> LockStatus:
        """Take the lock if free, renew it if ours; returns who holds it now."""
        sent = self.clock.monotonic()
        reply = await self._scripts.leader_acquire(
            keys=[self.keys.leader, self.keys.epoch], args=[self.owner, round(self.ttl * 1000)]
        )
        status = LockStatus(
            held=bool(int(reply[0])),
            token=int(reply[1]),
            holder=_text(reply[2]),
            redis_now_ms=int(reply[3]),
            ttl_ms=int(reply[4]),
        )
        if status.held:
            self.token = status.token
            self._safe_until = sent + self.ttl * (1 - SAFETY)
        else:
            self.forget()
        return status

    def valid(self) -> bool:
        """True while the lock is surely ours (so enqueuing as leader is allowed)."""
        return self.token is not None and self.clock.monotonic() < self._safe_until

    def forget(self) -> None:
        """Stop acting as leader (the lock was lost, or is no longer surely ours)."""
        self.token = None
        self._safe_until = float("-inf")

    async def release(self) -> bool:
        """Free the lock if it is still ours, so a follower takes over without waiting."""
        if self.token is None:
            return False
        token, self.token = self.token, None
        self._safe_until = float("-inf")
        freed = await self._scripts.leader_release(
            keys=[self.keys.leader], args=[self.owner, token]
        )
        return bool(freed)


async def read_leader(redis: Redis, keys: SchedulerKeys) -> LeaderView | None:
    """The current leader and the time left on its lock, or None when nobody holds it."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.leader)
        pipe.pttl(keys.leader)
        fields, pttl = await pipe.execute()
    if not fields or pttl < 0:
        return None
    values = {_text(k): _text(v) for k, v in fields.items()}
    return LeaderView(
        id=values.get("id", ""),
        token=int(values.get("token", 0)),
        ttl_seconds=pttl / 1000,
        since_ms=int(values.get("since", 0)),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
