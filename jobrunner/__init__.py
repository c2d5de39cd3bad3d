"""jobrunner: a Redis-backed background job system with at-least-once delivery."""

from __future__ import annotations

from jobrunner.errors import DeadLetter, JobrunnerError, Retry
from jobrunner.job import Job, JobRecord, JobState
from jobrunner.queue import ReliableQueue
from jobrunner.registry import JobContext, Registry, handler, registry

__all__ = [
    "DeadLetter",
    "Job",
    "JobContext",
    "JobRecord",
    "JobState",
    "JobrunnerError",
    "Registry",
    "ReliableQueue",
    "Retry",
    "handler",
    "registry",
]
__version__ = "0.1.0"
