"""A module of schedules, as ``jobrunner scheduler --import tests.scheduled_jobs`` loads it."""

from jobrunner.scheduler import Schedule

SCHEDULES = [
    Schedule(name="every-second", type="noop", every=1.0),
    Schedule(name="nightly", type="noop", cron="0 3 * * *", timezone="Europe/Berlin"),
]
