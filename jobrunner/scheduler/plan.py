"""What a leader does with one schedule at one moment: which slots fire, which are skipped.

Pure logic over integer milliseconds, so every rule is tested with an injected clock and no
Redis. The *mark* is the schedule's high-water mark: the latest slot already handled (fired or
skipped). Slots after the mark and at or before ``now`` are due:

- a due slot at most ``grace`` old is *on time* and fires, each one once;
- older due slots are *missed* (no leader for a while, the system was down): with
  ``misfire="skip"`` they are dropped, with ``"fire_once"`` the most recent of them fires once,
  as a catch-up, and the others are dropped.

The mark then moves past everything handled, so no slot is looked at twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobrunner.scheduler.schedule import Schedule

MAX_FIRES_PER_STEP = 1000  # a huge backlog of on-time slots is worked off over several steps


@dataclass(frozen=True)
class Fire:
    slot_ms: int
    late: bool  # a fire_once catch-up of missed slots


@dataclass(frozen=True)
class Plan:
    fires: tuple[Fire, ...]
    mark_ms: int  # the high-water mark once this plan is carried out
    skipped: int  # missed slots dropped by the misfire policy
    next_fire_ms: int | None  # the first slot after the new mark

    @property
    def changes_anything(self) -> bool:
        return bool(self.fires) or self.skipped > 0


def plan_due(
    schedule: Schedule, mark_ms: int, now_ms: int, max_fires: int = MAX_FIRES_PER_STEP
) -> Plan:
    """The fires and skips of ``schedule`` at ``now_ms``, given its high-water mark."""
    fires: list[Fire] = []
    skipped = 0
    mark = mark_ms
    cutoff = now_ms - schedule.grace_ms  # slots before this are missed
    latest_missed = schedule.latest_between(mark, min(cutoff - 1, now_ms))
    if latest_missed is not None:
        missed = schedule.count_between(mark, latest_missed)
        if schedule.misfire == "fire_once":
            fires.append(Fire(latest_missed, late=True))
            skipped = missed - 1
        else:
            skipped = missed
        mark = latest_missed
    on_time = schedule.slots_between(max(mark, cutoff - 1), now_ms, max_fires - len(fires))
    fires.extend(Fire(slot, late=False) for slot in on_time)
    if on_time:
        mark = on_time[-1]
    return Plan(
        fires=tuple(fires),
        mark_ms=mark,
        skipped=skipped,
        next_fire_ms=schedule.next_after(mark),
    )
