"""Periodic jobs: interval and cron schedules, fired by one elected leader, once per slot."""

from jobrunner.scheduler.config import declare, load_schedules, periodic
from jobrunner.scheduler.schedule import Schedule, ScheduleError
from jobrunner.scheduler.service import Scheduler

__all__ = ["Schedule", "ScheduleError", "Scheduler", "declare", "load_schedules", "periodic"]
