"""jobrunner: a Redis-backed background job system with at-least-once delivery."""

from __future__ import annotations

from jobrunner.client import Client
from jobrunner.errors import (
    DeadLetter,
    JobCancelled,
    JobFailed,
    JobrunnerError,
    Retry,
    UnknownJob,
    UnknownJobType,
)
from jobrunner.job import Job, JobRecord, JobState
from jobrunner.queue import ReliableQueue
from jobrunner.registry import Handler, JobContext, Registry, handler, registry
from jobrunner.sync_client import SyncClient

__all__ = [
    "Client",
    "DeadLetter",
    "Handler",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobRecord",
    "JobState",
    "JobrunnerError",
    "Registry",
    "ReliableQueue",
    "Retry",
    "SyncClient",
    "UnknownJob",
    "UnknownJobType",
    "handler",
    "registry",
]
__version__ = "0.1.0"
