"""The job queues that ``bench.compare_queues`` measures, one small module each.

Every module holds the no-op task of its library and the same few names:

* ``DISTRIBUTION``: the PyPI package, whose version goes into the report.
* ``enqueue(n) -> float``: enqueue ``n`` no-op jobs with the library's own client and return the
  seconds the enqueue calls took (the client is built and connected first, untimed).
* ``worker_command(variant) -> list[str]``: ONE worker process of the library, with its default
  settings (``variant`` picks the pool where a library has several, e.g. Celery's).
* ``HELD_KEYS``: the Redis keys that hold the waiting jobs; the harness renames them away while
  the worker starts and puts them back once it is ready (``()``: the jobs cannot be held back).
* ``ready(redis, output) -> bool``: whether the started worker is ready for work, from its own
  output or from Redis.
* ``done(redis) -> int``: how many jobs have completed, counted by the library's own state or
  by a counter the no-op task increments (``COMPLETION`` says which).
* ``ENQUEUE_PATH``, ``COMPLETION``, ``WORKER``: one line each for the report (``WORKER`` may be
  a dict by variant).

All of them read the private server's URL from ``BENCH_REDIS_URL``: the task modules are
imported by the workers too, where a library's app or broker object is built at import time.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URL_ENV = "BENCH_REDIS_URL"
COUNTER_KEY = "bench:done"  # INCRed by the no-op task of the libraries that keep no state
# ``--handler io`` (BENCH_HANDLER=io): every task does one Redis round trip, INCR of IO_KEY, the
# same work for every library (Celery's, Dramatiq's and Huey's tasks INCR COUNTER_KEY anyway).
HANDLER_ENV = "BENCH_HANDLER"
IO_KEY = "bench:io"


_io_clients: dict[int, Any] = {}


def io_client() -> Any:
    """An asyncio Redis client for the I/O task, one per process (built on first use)."""
    from redis.asyncio import Redis

    client = _io_clients.get(os.getpid())
    if client is None:
        client = _io_clients[os.getpid()] = Redis.from_url(redis_url())
    return client


def io_mode() -> bool:
    """Whether the tasks do I/O (``--handler io``), read by the harness and the workers alike."""
    return os.environ.get(HANDLER_ENV) == "io"


QUEUE = "default"
READY_MARK = "bench-compare: worker ready"  # printed by a library's documented start-up hook


def redis_url() -> str:
    """The private server the harness started (never a default one)."""
    url = os.environ.get(URL_ENV)
    if not url:
        raise RuntimeError(f"{URL_ENV} is not set: run this through python -m bench.compare_queues")
    return url


def console_script(name: str) -> str:
    """The path of a library's command next to this interpreter (the virtualenv's bin)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"no {name} command next to {sys.executable} nor on PATH")
    return found


def say_ready() -> None:
    """The marker line that the harness waits for, for libraries that log no ready line."""
    print(READY_MARK, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Spec:
    """One measured configuration: a library, and the worker variant where it has several."""

    key: str  # the name in the report and on the command line (--only)
    label: str
    module: str  # bench.competitors.<module>
    distribution: str  # what must be importable for the configuration to run
    import_name: str
    variant: str = ""
    jobs_divisor: int = 1  # a very slow worker gets N / divisor jobs (said in the report)


SPECS: tuple[Spec, ...] = (
    Spec("jobrunner", "jobrunner (asyncio)", "jobrunner", "jobrunner", "jobrunner"),
    Spec("rq", "RQ", "rq", "rq", "rq", jobs_divisor=20),
    Spec("arq", "arq", "arq", "arq", "arq", jobs_divisor=5),
    Spec("dramatiq", "Dramatiq", "dramatiq", "dramatiq", "dramatiq"),
    Spec("huey", "Huey", "huey", "huey", "huey"),
    Spec("celery-solo", "Celery (solo)", "celery", "celery", "celery", variant="solo"),
    Spec("celery-prefork", "Celery (prefork, 2)", "celery", "celery", "celery", variant="prefork"),
    Spec("saq", "SAQ", "saq", "saq", "saq"),
    Spec("taskiq", "taskiq (taskiq-redis)", "taskiq", "taskiq-redis", "taskiq_redis"),
)

BY_KEY = {spec.key: spec for spec in SPECS}
