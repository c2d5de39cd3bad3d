"""Schedules, slots and misfire plans: pure logic over an injected clock, no Redis, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from jobrunner.clock import FakeClock
from jobrunner.registry import Registry
from jobrunner.scheduler.config import from_modules, from_toml, load_schedules, periodic
from jobrunner.scheduler.plan import plan_due
from jobrunner.scheduler.schedule import Schedule, ScheduleError, parse_duration

BERLIN = ZoneInfo("Europe/Berlin")


def ms(*args: int, tz: object = UTC) -> int:
    return round(datetime(*args, tzinfo=tz).timestamp() * 1000)  # type: ignore[arg-type,misc]


def utc(slot: int) -> str:
    return datetime.fromtimestamp(slot / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# ---------------------------------------------------------------- definitions


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"every": None}, "exactly one of 'every'"),
        ({"cron": "* * * * *"}, "exactly one of 'every'"),
        ({"every": 0}, "at least 0.001"),
        ({"every": True}, "number of seconds"),
        ({"every": None, "cron": "61 * * * *"}, "not a valid expression: Bad minute"),
        ({"every": None, "cron": "0 0 31 2 *"}, "not a valid expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"misfire": "catch_up"}, "misfire must be one of skip, fire_once"),
        ({"grace": 0}, "grace must be a positive number"),
        ({"name": "has space"}, "schedule name 'has space'"),
        ({"type": ""}, "needs a job type"),
        ({"payload": {1, 2}}, "payload is a set"),
        ({"max_retries": -1}, "max_retries must be a whole number"),
    ],
)
def test_an_invalid_schedule_is_refused_with_a_clear_message(
    fields: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"name": "job", "type": "noop", "every": 1.0}
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(")):
        Schedule(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), (0.5, 0.5), ("30s", 30.0), ("500ms", 0.5), ("5 m", 300.0), ("1h", 3600.0),
     ("1d", 86400.0), ("2", 2.0)],
)  # fmt: skip
def test_durations_accept_seconds_and_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5 minutes", "-1s", True, None])
def test_a_bad_duration_says_what_is_accepted(text: object) -> None:
    with pytest.raises(ScheduleError, match=r"duration|seconds"):
        parse_duration(text, "every")


# ---------------------------------------------------------------- slots


def test_interval_slots_are_aligned_to_the_epoch_whoever_computes_them() -> None:
    s = Schedule(name="s", type="noop", every=0.25)
    assert s.next_after(1_000_010) == 1_000_250
    assert s.next_after(1_000_250) == 1_000_500  # strictly after
    assert s.slots_between(1_000_000, 1_001_000, 10) == [1_000_250, 1_000_500, 1_000_750,
                                                         1_001_000]  # fmt: skip
    assert s.slots_between(1_000_000, 1_001_000, 2) == [1_000_250, 1_000_500]
    assert s.count_between(1_000_000, 1_001_000) == 4
    assert s.latest_between(1_000_000, 1_000_999) == 1_000_750
    assert s.latest_between(1_000_750, 1_000_999) is None
    assert s.job_id(1_000_250) == "sched:s:1000250"


def test_cron_in_a_time_zone_skips_into_the_gap_of_spring_forward_like_debian_cron() -> None:
    # Europe/Berlin, 2024-03-31: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    s = Schedule(name="s", type="noop", cron="30 2 * * *", timezone="Europe/Berlin")
    slots = s.slots_between(ms(2024, 3, 29, 12), ms(2024, 4, 2, 12), 10)
    assert [utc(x) for x in slots] == [
        "2024-03-30 01:30:00Z",  # 02:30 CET
        "2024-03-31 01:00:00Z",  # the missing 02:30 fires at 03:00 CEST, once
        "2024-04-01 00:30:00Z",  # 02:30 CEST
        "2024-04-02 00:30:00Z",
    ]


def test_cron_fires_once_in_the_repeated_hour_of_fall_back() -> None:
    # 2024-10-27: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice, fires at the first.
    s = Schedule(name="s", type="noop", cron="30 2 * * *", timezone="Europe/Berlin")
    slots = s.slots_between(ms(2024, 10, 25, 12), ms(2024, 10, 29, 12), 10)
    assert [utc(x) for x in slots] == [
        "2024-10-26 00:30:00Z",
        "2024-10-27 00:30:00Z",  # 02:30 CEST; not again at 02:30 CET
        "2024-10-28 01:30:00Z",
        "2024-10-29 01:30:00Z",
    ]
    # Starting inside the repeated hour (02:40 CET, after the first 02:30) goes to the next day,
    # never back in time.
    assert utc(s.next_after(ms(2024, 10, 27, 1, 40))) == "2024-10-28 01:30:00Z"


def test_an_hourly_cron_keeps_real_time_hours_across_fall_back() -> None:
    s = Schedule(name="s", type="noop", cron="30 * * * *", timezone="Europe/Berlin")
    slots = s.slots_between(ms(2024, 10, 26, 23), ms(2024, 10, 27, 3), 10)
    assert [utc(x) for x in slots] == [
        "2024-10-26 23:30:00Z",  # 01:30 CEST
        "2024-10-27 00:30:00Z",  # 02:30 CEST
        "2024-10-27 01:30:00Z",  # 02:30 CET: an hour later in real time
        "2024-10-27 02:30:00Z",
    ]


def test_the_same_cron_in_utc_and_in_new_york_fires_at_different_instants() -> None:
    at_utc = Schedule(name="a", type="noop", cron="0 9 * * MON-FRI")
    in_ny = Schedule(name="b", type="noop", cron="0 9 * * MON-FRI", timezone="America/New_York")
    friday = ms(2024, 7, 5)
    assert utc(at_utc.next_after(friday)) == "2024-07-05 09:00:00Z"
    assert utc(in_ny.next_after(friday)) == "2024-07-05 13:00:00Z"  # 09:00 EDT
    assert utc(in_ny.next_after(ms(2024, 7, 5, 14))) == "2024-07-08 13:00:00Z"  # Monday


def test_six_field_cron_has_seconds_and_latest_slot_looks_back_far_enough() -> None:
    every_20s = Schedule(name="a", type="noop", cron="*/20 * * * * *")
    assert every_20s.count_between(ms(2024, 1, 1), ms(2024, 1, 1, 0, 2)) == 6
    yearly = Schedule(name="b", type="noop", cron="0 0 1 1 *")
    assert utc(yearly.latest_between(0, ms(2024, 6, 1))) == "2024-01-01 00:00:00Z"  # type: ignore[arg-type]
    assert yearly.latest_between(ms(2024, 1, 1), ms(2024, 6, 1)) is None


# ---------------------------------------------------------------- plans with an injected clock


def test_on_time_slots_fire_each_once_and_the_mark_moves_past_them() -> None:
    clock = FakeClock(start=1_000.0)
    s = Schedule(name="s", type="noop", every=1.0, grace=5.0)
    mark = round(clock.time() * 1000)
    fired: list[int] = []
    for _ in range(10):
        clock.advance(0.7)
        plan = plan_due(s, mark, round(clock.time() * 1000))
        assert not any(f.late for f in plan.fires)
        assert plan.skipped == 0
        fired += [f.slot_ms for f in plan.fires]
        mark = plan.mark_ms
    assert fired == list(range(1_001_000, 1_007_001, 1000))
    assert plan.next_fire_ms == 1_008_000


def test_slots_within_grace_all_fire_after_a_short_gap() -> None:
    s = Schedule(name="s", type="noop", every=1.0, grace=10.0, misfire="skip")
    plan = plan_due(s, 1_000_000, 1_006_500)  # 6.5 s without a leader, grace 10 s
    assert [f.slot_ms for f in plan.fires] == [1_001_000 + 1000 * i for i in range(6)]
    assert plan.skipped == 0


@pytest.mark.parametrize("misfire", ["skip", "fire_once"])
def test_missed_slots_follow_the_misfire_policy(misfire: str) -> None:
    s = Schedule(name="s", type="noop", every=1.0, grace=2.0, misfire=misfire)  # type: ignore[arg-type]
    plan = plan_due(s, 1_000_000, 1_100_500)  # down for 100.5 s
    on_time = [f.slot_ms for f in plan.fires if not f.late]
    late = [f.slot_ms for f in plan.fires if f.late]
    assert on_time == [1_099_000, 1_100_000]  # at most 2 s old
    if misfire == "skip":
        assert late == []
        assert plan.skipped == 98
    else:
        assert late == [1_098_000]
        assert plan.skipped == 97
    assert plan.mark_ms == 1_100_000
    assert plan.next_fire_ms == 1_101_000
    assert len(on_time) + len(late) + plan.skipped == 100  # every slot accounted for once


def test_fire_once_for_a_cron_after_days_down_fires_the_latest_missed_slot() -> None:
    s = Schedule(name="s", type="noop", cron="0 3 * * *", timezone="Europe/Berlin", grace=60)
    plan = plan_due(s, ms(2024, 3, 20), ms(2024, 4, 2, 12))
    assert [(utc(f.slot_ms), f.late) for f in plan.fires] == [("2024-04-02 01:00:00Z", True)]
    assert plan.skipped == 13  # 14 slots missed (2024-03-20 .. 2024-04-02), the latest fires


def test_a_huge_on_time_backlog_is_worked_off_over_several_steps() -> None:
    s = Schedule(name="s", type="noop", every=0.001, grace=60)
    plan = plan_due(s, 0, 5000, max_fires=1000)
    assert len(plan.fires) == 1000
    assert plan.mark_ms == 1000
    assert plan.next_fire_ms == 1001


# ---------------------------------------------------------------- configuration


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedules.toml"
    path.write_text(text)
    return path


def test_a_toml_file_declares_schedules(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[schedule]]
name = "cleanup"
type = "noop"
every = "30s"
payload = { keep_days = 7 }

[[schedule]]
name = "report"
type = "email"
cron = "0 9 * * MON"
timezone = "Europe/Paris"
misfire = "skip"
grace = "5m"
queue = "low"
""")  # fmt: skip
    cleanup, report = from_toml(path)
    assert cleanup == Schedule(name="cleanup", type="noop", every=30.0,
                               payload={"keep_days": 7})  # fmt: skip
    assert (report.cron, report.timezone, report.misfire, report.grace, report.queue) == (
        "0 9 * * MON", "Europe/Paris", "skip", 300.0, "low")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[schedule]]\nname='a'\ntype='noop'\nevry=3\n", r"schedule #1 \('a'\): unknown field"),
        ("[[schedule]]\nname='a'\nevery=3\n", r"schedule #1 \('a'\): 'type' is required"),
        ("[[schedule]]\nname='a'\ntype='noop'\nevery='often'\n", "'often' is not a duration"),
        ("[[schedule]]\nname='a'\ntype='noop'\ncron='* * *'\n", "Wrong number of fields"),
        ("[[schedule]]\nname='a'\ntype='noop'\nevery=1\n[[schedule]]\nname='a'\ntype='x'\n"
         "every=2\n", "two schedules are named 'a'"),
        ("[schedule]\nname='a'\n", r"use \[\[schedule\]\]"),
        ("[jobs]\n", "unknown top-level key"),
        ("[[schedule]\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_toml_file_names_the_file_entry_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScheduleError, match=message) as info:
        from_toml(path)
    assert str(path) in str(info.value)


def test_periodic_registers_the_handler_and_the_schedule() -> None:
    handlers = Registry()

    @periodic(every="2s", name="tidy-up-test", registry=handlers, misfire="skip")
    def tidy_up_test(payload: object) -> None:
        return None

    assert "tidy_up_test" in handlers
    found = {s.name: s for s in from_modules([])}
    assert found["tidy-up-test"] == Schedule(name="tidy-up-test", type="tidy_up_test", every=2.0,
                                             misfire="skip")  # fmt: skip


def test_modules_list_schedules_and_a_clash_with_the_toml_file_is_refused(tmp_path: Path) -> None:
    found = load_schedules(["tests.scheduled_jobs"])
    assert {"every-second", "nightly"} <= {s.name for s in found}
    path = write(tmp_path, "[[schedule]]\nname='nightly'\ntype='noop'\nevery=1\n")
    with pytest.raises(ScheduleError, match="two schedules are named 'nightly'"):
        load_schedules(["tests.scheduled_jobs"], path)


def test_the_scheduler_command_refuses_a_bad_file_before_touching_redis(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from jobrunner.cli import main

    path = write(tmp_path, "[[schedule]]\nname='a'\ntype='noop'\nevery=1\nmisfire='later'\n")
    result = CliRunner().invoke(
        main, ["scheduler", "--redis-url", "redis://127.0.0.1:1/0", "--schedules", str(path)]
    )
    assert result.exit_code == 2
    assert "schedule #1 ('a'): misfire must be one of skip, fire_once, not 'later'" in result.output
