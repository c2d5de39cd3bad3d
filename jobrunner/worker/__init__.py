"""The worker: one core loop, and a runner per concurrency model (asyncio, thread, process)."""

from __future__ import annotations

from jobrunner.config import Settings
from jobrunner.worker.core import Worker, new_worker_id
from jobrunner.worker.runner import Runner
from jobrunner.worker.runner_asyncio import AsyncioRunner
from jobrunner.worker.runner_process import ProcessRunner
from jobrunner.worker.runner_thread import ThreadRunner

__all__ = ["Runner", "Worker", "make_runner", "new_worker_id"]


def make_runner(settings: Settings, worker_id: str) -> Runner:
    """The runner for ``settings.model``, sized by ``settings.effective_concurrency``."""
    n = settings.effective_concurrency
    if settings.model == "asyncio":
        return AsyncioRunner(n)
    if settings.model == "thread":
        return ThreadRunner(n)
    return ProcessRunner(
        n,
        imports=settings.imports,
        worker_id=worker_id,
        per_child_prefetch=settings.per_child_prefetch,
    )
