"""Where schedules are declared: Python modules (``@periodic``, ``SCHEDULES``) and TOML files.

In Python, either decorate a function (it becomes the handler of the schedule's job type)::

    @periodic(every=30)                          # type and name: "cleanup"
    def cleanup(payload): ...

    @periodic(cron="0 3 * * *", timezone="Europe/Paris", name="nightly-report", type="report")
    async def report(payload): ...

or list ``Schedule`` objects in a module attribute ``SCHEDULES``. ``jobrunner scheduler
--import myapp.jobs`` imports the module and collects both. In TOML (``--schedules file.toml``)::

    [[schedule]]
    name = "cleanup"
    type = "noop"
    every = "30s"            # seconds, or a duration: "500ms", "30s", "5m", "1h", "1d"
    # cron = "*/5 * * * *"   # instead of every; 6 fields = seconds first
    timezone = "Europe/Paris"
    queue = "default"
    payload = { keep_days = 7 }
    misfire = "fire_once"    # or "skip"
    grace = "60s"

Every mistake is reported with the file, the entry and the field, and nothing starts.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from jobrunner.registry import Registry
from jobrunner.registry import registry as default_registry
from jobrunner.scheduler.schedule import (
    DEFAULT_GRACE,
    Misfire,
    Schedule,
    ScheduleError,
    parse_duration,
)
from jobrunner.scheduler.service import check_unique

F = TypeVar("F", bound=Callable[..., Any])

_declared: dict[str, Schedule] = {}
_TOML_FIELDS = {
    "name", "type", "every", "cron", "payload", "queue", "timezone", "misfire", "grace",
    "max_retries", "timeout",
}  # fmt: skip


def declare(schedule: Schedule) -> Schedule:
    """Add a schedule to the ones ``--import`` collects (same name twice: an error)."""
    existing = _declared.get(schedule.name)
    if existing is not None and existing != schedule:
        raise ScheduleError(f"two different schedules are named {schedule.name!r}")
    _declared[schedule.name] = schedule
    return schedule


def declared() -> list[Schedule]:
    """Every schedule declared with ``@periodic`` or ``declare`` in this process."""
    return list(_declared.values())


def periodic(
    *,
    every: float | str | None = None,
    cron: str | None = None,
    name: str | None = None,
    type: str | None = None,
    payload: Any = None,
    queue: str = "default",
    timezone: str = "UTC",
    misfire: Misfire = "fire_once",
    grace: float | str = DEFAULT_GRACE,
    max_retries: int | None = None,
    timeout: float | None = None,
    registry: Registry | None = None,
) -> Callable[[F], F]:
    """Decorator: run the function as a periodic job (it is registered as the type's handler
    unless one is registered already). ``type`` and ``name`` default to the function's name."""
    handlers = registry if registry is not None else default_registry

    def wrap(fn: F) -> F:
        job_type = type or fn.__name__
        schedule = Schedule(
            name=name or job_type, type=job_type, payload=payload, queue=queue, cron=cron,
            every=None if every is None else parse_duration(every, "every"),
            timezone=timezone, misfire=misfire, grace=parse_duration(grace, "grace"),
            max_retries=max_retries, timeout=timeout,
        )  # fmt: skip
        if job_type not in handlers:
            handlers.handler(job_type)(fn)
        declare(schedule)
        return fn

    return wrap


def from_modules(modules: Iterable[str]) -> list[Schedule]:
    """Import the modules; collect ``@periodic``/``declare`` schedules and ``SCHEDULES`` lists."""
    found: list[Schedule] = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        listed = getattr(module, "SCHEDULES", None)
        if listed is None:
            continue
        if not isinstance(listed, list | tuple) or not all(isinstance(s, Schedule) for s in listed):
            raise ScheduleError(f"{module_name}.SCHEDULES must be a list of Schedule objects")
        found.extend(listed)
    by_name = {s.name: s for s in declared()}
    for s in found:
        if by_name.get(s.name, s) != s:
            raise ScheduleError(f"two different schedules are named {s.name!r}")
        by_name[s.name] = s
    return list(by_name.values())


def from_toml(path: Path) -> list[Schedule]:
    """The ``[[schedule]]`` entries of a TOML file, each checked; errors name file and entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"schedule"}
    if unknown:
        raise ScheduleError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            "declare schedules as [[schedule]] tables"
        )
    entries = data.get("schedule", [])
    if not isinstance(entries, list):
        raise ScheduleError(f"{path}: 'schedule' must be an array of tables: use [[schedule]]")
    out = []
    for index, entry in enumerate(entries, start=1):
        where = f"{path}: schedule #{index}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            where += f" ({entry['name']!r})"
        try:
            out.append(_from_table(entry))
        except ScheduleError as exc:
            message = str(exc)
            if isinstance(entry, dict):  # the entry is named already: say it once
                message = message.removeprefix(f"schedule {entry.get('name')!r}: ")
            raise ScheduleError(f"{where}: {message}") from exc
    try:
        check_unique(out)
    except ScheduleError as exc:
        raise ScheduleError(f"{path}: {exc}") from exc
    return out


def _from_table(entry: object) -> Schedule:
    if not isinstance(entry, dict):
        raise ScheduleError("must be a table")
    unknown = set(entry) - _TOML_FIELDS
    if unknown:
        raise ScheduleError(
            f"unknown field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_TOML_FIELDS))}"
        )
    for required in ("name", "type"):
        if required not in entry:
            raise ScheduleError(f"'{required}' is required")
    fields = dict(entry)
    if "every" in fields:
        fields["every"] = parse_duration(fields["every"], "every")
    if "grace" in fields:
        fields["grace"] = parse_duration(fields["grace"], "grace")
    if "timeout" in fields:
        fields["timeout"] = parse_duration(fields["timeout"], "timeout")
    return Schedule(**fields)


def load_schedules(imports: Iterable[str] = (), toml_path: Path | None = None) -> list[Schedule]:
    """All schedules of a scheduler process: from its ``--import`` modules and TOML file."""
    schedules = from_modules(imports)
    if toml_path is not None:
        schedules += from_toml(toml_path)
    check_unique(schedules)
    return schedules
