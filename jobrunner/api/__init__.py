"""The HTTP API: enqueue and inspect jobs, queues and dead letters (FastAPI on uvloop)."""

from __future__ import annotations

from jobrunner.api.app import create_app

__all__ = ["create_app"]
