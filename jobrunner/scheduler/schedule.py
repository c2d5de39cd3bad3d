"""A periodic job's definition and the slot times it fires at.

A *slot* is one instant a schedule is due, in integer milliseconds since the epoch. Every
scheduler process must compute the same slots, because a slot's job id is built from its time
(the deterministic id is what makes an enqueue happen once per slot). So interval slots are
aligned to the Unix epoch (``every=30`` fires at :00 and :30 of every minute, whoever runs it),
and cron slots come from the expression in the schedule's time zone.

Cron expressions are evaluated by cronsim (5 fields, or 6 with seconds first), which follows
Debian cron across DST changes: a time that does not exist (spring forward) fires at the first
minute after the gap, a time that happens twice (fall back) fires once, at its first occurrence;
expressions with ``*`` in the minute or hour field keep firing in real time (hourly stays hourly).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cached_property
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from jobrunner.errors import ConfigError
from jobrunner.job import DEFAULT_QUEUE, check_queue_name, job_id_in
from jobrunner.payload import check_json

Misfire = Literal["skip", "fire_once"]
MISFIRE_POLICIES: tuple[str, ...] = get_args(Misfire)
DEFAULT_GRACE = 60.0  # seconds a slot may be late and still count as on time
MIN_EVERY = 0.001  # slots are whole milliseconds
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# Look-back windows (ms) for the latest cron slot before a time: small first, so a frequent
# expression costs a few steps and a yearly one still finds its slot.
_DAY_MS = 86_400_000
_WINDOWS_MS = (60_000, 3_600_000, _DAY_MS, 32 * _DAY_MS, 400 * _DAY_MS, 5 * 366 * _DAY_MS)
_MAX_CRON_STEPS = 200_000


class ScheduleError(ConfigError):
    """A schedule definition is invalid; the message names the schedule and the field."""


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds from a number or a string like ``"30s"``, ``"500ms"``, ``"5 m"``, ``"1h"``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ScheduleError(f"{what} must be seconds or a duration like '30s', not {value!r}")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ScheduleError(
                f"{what} {value!r} is not a duration: use seconds or e.g. '500ms', '30s', '5m', "
                "'1h', '1d'"
            )
        return float(match.group(1)) * _UNITS[match.group(2)]
    return float(value)


@dataclass(frozen=True)
class Schedule:
    """Enqueue a job of ``type`` with ``payload`` on ``queue`` every interval or cron slot.

    ``misfire`` decides what happens to slots the scheduler reached more than ``grace`` seconds
    late (no leader, system down): ``"skip"`` drops them, ``"fire_once"`` fires one job for the
    most recent of them and drops the rest. Slots reached within ``grace`` always fire, each once.
    """

    name: str
    type: str
    every: float | None = None
    cron: str | None = None
    payload: Any = None
    queue: str = DEFAULT_QUEUE
    timezone: str = "UTC"
    misfire: Misfire = "fire_once"
    grace: float = DEFAULT_GRACE
    max_retries: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        def bad(message: str) -> ScheduleError:
            return ScheduleError(f"schedule {self.name!r}: {message}")

        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise ScheduleError(
                f"schedule name {self.name!r} must be 1-100 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        if not isinstance(self.type, str) or not self.type:
            raise bad("needs a job type (a non-empty string)")
        try:
            check_queue_name(self.queue)
        except ValueError as exc:
            raise bad(str(exc)) from None
        if (self.every is None) == (self.cron is None):
            raise bad("give exactly one of 'every' (seconds) and 'cron' (an expression)")
        if self.every is not None:
            every = self.every
            if isinstance(every, bool) or not isinstance(every, int | float):
                raise bad(f"every must be a number of seconds, not {every!r}")
            if not MIN_EVERY <= every < math.inf:
                raise bad(f"every must be at least {MIN_EVERY} seconds, not {every!r}")
        if self.cron is not None:
            if not isinstance(self.cron, str):
                raise bad(f"cron must be a string, not {self.cron!r}")
            try:
                it = CronSim(self.cron, datetime.now(UTC))
            except CronSimError as exc:
                raise bad(f"cron {self.cron!r} is not a valid expression: {exc}") from exc
            try:
                next(it)
            except StopIteration:
                raise bad(f"cron {self.cron!r} never fires") from None
        if not isinstance(self.timezone, str):
            raise bad(f"timezone must be a string, not {self.timezone!r}")
        try:
            _zone(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise bad(f"unknown time zone {self.timezone!r} (use an IANA name)") from exc
        if self.misfire not in MISFIRE_POLICIES:
            raise bad(f"misfire must be one of {', '.join(MISFIRE_POLICIES)}, not {self.misfire!r}")
        if not _positive_number(self.grace):
            raise bad(f"grace must be a positive number of seconds, not {self.grace!r}")
        if self.max_retries is not None and (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise bad(f"max_retries must be a whole number >= 0, not {self.max_retries!r}")
        if self.timeout is not None and not _positive_number(self.timeout):
            raise bad(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        try:
            check_json(self.payload)
        except TypeError as exc:
            raise bad(str(exc)) from exc

    # ------------------------------------------------------------------ derived values

    @cached_property
    def every_ms(self) -> int | None:
        return None if self.every is None else max(1, round(self.every * 1000))

    @cached_property
    def grace_ms(self) -> int:
        return max(1, round(self.grace * 1000))

    @cached_property
    def zone(self) -> tzinfo:
        return _zone(self.timezone)

    def job_id(self, slot_ms: int) -> str:
        """The deterministic id of the job for one slot: the same slot always names one job."""
        return job_id_in(self.queue, f"sched:{self.name}:{slot_ms}")

    # ------------------------------------------------------------------ slots

    def next_after(self, after_ms: int) -> int | None:
        """The first slot strictly after ``after_ms`` (None: a cron that never fires again)."""
        if self.every_ms is not None:
            return (after_ms // self.every_ms + 1) * self.every_ms
        return next(self._cron_slots(after_ms), None)

    def slots_between(self, after_ms: int, until_ms: int, limit: int) -> list[int]:
        """Slots in ``(after_ms, until_ms]``, oldest first, at most ``limit`` of them."""
        out: list[int] = []
        if until_ms <= after_ms or limit <= 0:
            return out
        if self.every_ms is not None:
            first = (after_ms // self.every_ms + 1) * self.every_ms
            stop = min(until_ms, first + (limit - 1) * self.every_ms)
            return list(range(first, stop + 1, self.every_ms))
        for slot in self._cron_slots(after_ms):
            if slot > until_ms:
                break
            out.append(slot)
            if len(out) >= limit:
                break
        return out

    def count_between(self, after_ms: int, until_ms: int, cap: int = 10_000) -> int:
        """How many slots fall in ``(after_ms, until_ms]`` (a cron count stops at ``cap``)."""
        if until_ms <= after_ms:
            return 0
        if self.every_ms is not None:
            return until_ms // self.every_ms - after_ms // self.every_ms
        return len(self.slots_between(after_ms, until_ms, cap))

    def latest_between(self, after_ms: int, until_ms: int) -> int | None:
        """The most recent slot in ``(after_ms, until_ms]``, or None."""
        if until_ms <= after_ms:
            return None
        if self.every_ms is not None:
            slot = until_ms // self.every_ms * self.every_ms
            return slot if slot > after_ms else None
        # Forward iteration only (cronsim's reverse mode does not apply the same DST fix-ups),
        # from a window before ``until_ms`` that grows until it holds a slot.
        for window in _WINDOWS_MS:
            start = max(after_ms, until_ms - window)
            latest = None
            for steps, slot in enumerate(self._cron_slots(start)):
                if slot > until_ms or steps >= _MAX_CRON_STEPS:
                    break
                latest = slot
            if latest is not None or start == after_ms:
                return latest
        return None

    def _cron_slots(self, after_ms: int) -> Iterator[int]:
        """Cron slots after ``after_ms``, strictly increasing in real time.

        Around a fall-back change cronsim may give a wall time whose instant is before the one
        it gave last (it keeps the first occurrence of a repeated hour); such a time is passed
        over, so slots never go back.
        """
        assert self.cron is not None
        start = datetime.fromtimestamp(after_ms / 1000, self.zone)
        last = after_ms
        for moment in CronSim(self.cron, start):
            slot = round(moment.timestamp() * 1000)
            if slot > last:
                last = slot
                yield slot


def _positive_number(value: object) -> bool:
    """A real number (not a bool), above zero and finite."""
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value < math.inf


def _zone(name: str) -> tzinfo:
    """UTC as datetime's own zone (cronsim does no DST work for it), else an IANA zone."""
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    return ZoneInfo(name)
