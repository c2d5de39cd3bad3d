"""The handler registry: which function runs a job of a given type, with its per-type options.

Handlers are plain functions, sync or async, taking the payload and optionally a ``JobContext``
(declare a second parameter to receive it). Options set at registration (timeout, max_retries,
backoff) apply to every job of the type unless the job was enqueued with its own.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import os
import sys
import threading
import traceback
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from jobrunner.backoff import DEFAULT_BACKOFF, Backoff
from jobrunner.errors import HandlerImportError, JobCancelled, JobTimeout, UnknownJobType
from jobrunner.job import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    Job,
    check_queue_name,
    make_job,
)
from jobrunner.ratelimit.spec import LimitSpec, parse_limit


@dataclass
class JobContext:
    """What a running handler may know about its job, and the cooperative-cancellation flag.

    Thread-model handlers cannot be interrupted: a long one should call ``check()`` now and then
    (or test ``cancelled``), which raises ``JobTimeout`` once the deadline has passed.
    """

    job_id: str
    type: str
    attempt: int
    timeout: float
    deadline: float = 0.0  # time.monotonic() value; set when the handler starts
    worker_id: str = ""

    @property
    def cancelled(self) -> threading.Event:
        """Set once the job passed its deadline or the worker abandoned it."""
        # Made on first use: most jobs never look. dict.setdefault is atomic, so two threads
        # asking at once still share one Event.
        event: threading.Event = self.__dict__.setdefault("_cancelled", threading.Event())
        return event

    def cancel(self, reason: str) -> None:
        """Ask the handler to stop (``check()`` then raises ``JobCancelled``)."""
        self.__dict__["cancel_reason"] = reason
        self.cancelled.set()

    @property
    def cancel_reason(self) -> str | None:
        """Why the job was asked to stop on request; None when it was not (or it timed out)."""
        reason: str | None = self.__dict__.get("cancel_reason")
        return reason

    def is_cancelled(self) -> bool:
        """Like ``cancelled.is_set()``, without making the Event when nobody cancelled."""
        event = self.__dict__.get("_cancelled")
        return event is not None and event.is_set()

    def check(self) -> None:
        import time

        if self.cancel_reason is not None:
            raise JobCancelled(f"job {self.job_id}: {self.cancel_reason}")
        if self.is_cancelled() or (self.deadline and time.monotonic() > self.deadline):
            self.cancelled.set()
            raise JobTimeout(f"job {self.job_id} passed its {self.timeout}s timeout")


@dataclass(frozen=True)
class HandlerSpec:
    """A registered handler and its per-type options."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    takes_context: bool
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: Backoff = DEFAULT_BACKOFF
    limit: LimitSpec | None = None  # execution limit: over it, a job is deferred, not run
    queue: str | None = None  # where jobs of the type go unless enqueued to another queue
    payload_type: type | None = None  # a msgspec Struct or dataclass the payload must fit

    def timeout_for(self, job: Job) -> float:
        """The job's own timeout when it was enqueued with one, else this type's."""
        return job.timeout if job.timeout is not None else self.timeout


class Registry:
    """Maps job types to handlers. Usually the module-level ``registry``; tests make their own."""

    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}

    def handler(
        self,
        name: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: Backoff = DEFAULT_BACKOFF,
        limit: LimitSpec | str | None = None,
        queue: str | None = None,
    ) -> Callable[[Callable[..., Any]], Handler]:
        """Decorator: ``@registry.handler("email", timeout=10, limit="50/s", queue="emails")``.

        It returns a ``Handler``: the function, still called as before, with ``.enqueue(...)``
        (and ``.enqueue_sync(...)``) to make jobs of the type. A first parameter annotated with
        a msgspec ``Struct`` or a dataclass types the payload: it is checked where the job is
        made and the handler receives an instance.

        ``limit`` (``"gcra:50/s"``, ``"concurrency:4"``, see ``jobrunner.ratelimit``) caps how
        often or how many jobs of the type run across all workers; a job over it is deferred.
        ``queue`` is where a job of the type goes when the producer names no queue; it also
        declares that queue to an API that imports the handler.
        """
        if queue is not None:
            check_queue_name(queue)
        if isinstance(limit, str):
            limit = parse_limit(limit)
        if not 0 < timeout < math.inf:  # NaN fails this too
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")

        def register(fn: Callable[..., Any]) -> Handler:
            spec = HandlerSpec(
                name=name,
                fn=fn,
                is_async=inspect.iscoroutinefunction(fn),
                takes_context=_takes_context(fn),
                timeout=timeout,
                max_retries=max_retries,
                backoff=backoff,
                limit=limit,
                queue=queue,
                payload_type=_payload_type(fn),
            )
            self.add(spec)
            return Handler(spec, self)

        return register

    def add(self, spec: HandlerSpec) -> None:
        existing = self._handlers.get(spec.name)
        if existing is not None and existing.fn is not spec.fn:
            raise ValueError(f"a handler named {spec.name!r} is already registered")
        self._handlers[spec.name] = spec

    def get(self, name: str) -> HandlerSpec | None:
        return self._handlers.get(name)

    def max_retries_for(self, job: Job) -> int:
        """The job's own max_retries when given, else its type's option, else the default."""
        if job.max_retries is not None:
            return job.max_retries
        spec = self._handlers.get(job.type)
        return spec.max_retries if spec is not None else DEFAULT_MAX_RETRIES

    def queue_for(self, job_type: str) -> str:
        """The queue a job of this type goes to when the producer names none."""
        spec = self._handlers.get(job_type)
        return spec.queue if spec is not None and spec.queue else DEFAULT_QUEUE

    def queues(self) -> list[str]:
        """The queues the registered handlers name, in registration order."""
        return list(dict.fromkeys(s.queue for s in self._handlers.values() if s.queue))

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def new_job(
        self,
        type: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        job_id: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> Job:
        """The job a producer asks for, with its handler's defaults. An unknown type is refused
        when this process imported handlers (it knows the registry); one that imported none
        cannot tell, and a worker dead-letters the job instead."""
        if self._handlers and type not in self._handlers:
            raise UnknownJobType(f"no handler for {type!r}; known: {', '.join(self.names())}")
        return make_job(type, payload, queue=queue or self.queue_for(type), job_id=job_id,
                        max_retries=max_retries, timeout=timeout)  # fmt: skip

    def __contains__(self, name: object) -> bool:
        return name in self._handlers


class Handler:
    """What ``@handler`` returns: the function (calling it calls the function), its options,
    and the producer's idiom: ``await send_email.enqueue({...})`` or ``.enqueue_sync({...})``.

    The payload is checked here, where the job is made: it must be JSON as it is, and fit the
    handler's payload type if it has one. Without ``client=`` the job goes through a client on
    ``REDIS_URL``, made on first use (one per event loop for ``enqueue``).
    """

    def __init__(self, spec: HandlerSpec, registry: Registry) -> None:
        self.spec = spec
        self.registry = registry
        functools.update_wrapper(self, spec.fn)

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.spec.fn(*args, **kwargs)

    def payload(self, value: Any) -> Any:
        """The payload as stored: a typed payload checked against (and turned into) JSON."""
        kind = self.spec.payload_type
        if kind is None:
            return value
        try:
            checked = value if isinstance(value, kind) else msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            raise TypeError(f"payload does not fit {kind.__name__}: {exc}") from None
        return msgspec.to_builtins(checked)

    async def enqueue(self, payload: Any = None, *, client: Any = None, **options: Any) -> str:
        """Enqueue a job of this type (options as ``Client.enqueue``); returns its id."""
        from jobrunner.client import default_client

        target = client if client is not None else default_client()
        job_id: str = await target.enqueue(self.name, self.payload(payload), **options)
        return job_id

    def enqueue_sync(self, payload: Any = None, *, client: Any = None, **options: Any) -> str:
        """The same from blocking code (``SyncClient``)."""
        from jobrunner.sync_client import default_sync_client

        target = client if client is not None else default_sync_client()
        job_id: str = target.enqueue(self.name, self.payload(payload), **options)
        return job_id


def _payload_type(fn: Callable[..., Any]) -> type | None:
    """The first parameter's annotation, when it is a msgspec Struct or a dataclass."""
    params = list(inspect.signature(fn).parameters)
    if not params:
        return None
    try:
        hint = typing.get_type_hints(fn).get(params[0])
    except (NameError, TypeError):  # an annotation that does not resolve: no typed payload
        return None
    is_struct = isinstance(hint, type) and issubclass(hint, msgspec.Struct)
    if is_struct or (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
        return hint
    return None


def _takes_context(fn: Callable[..., Any]) -> bool:
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(params) >= 2


registry = Registry()
"""The default registry that ``@handler`` fills and the worker reads."""

handler = registry.handler


def load_handlers(modules: Iterable[str]) -> Registry:
    """Import the modules named (``--import``), which register their handlers on import.

    Nothing else is registered: a production worker or API knows only the job types its
    operator named, so no client can enqueue the lab's ``cpu_burn`` or ``sleep`` unless
    ``jobrunner.lab.handlers.demo`` was imported on purpose. The current directory is on the
    path, as Celery, RQ and uvicorn have it, so ``--import myapp.jobs`` works from the folder
    that holds ``myapp``. A module that cannot be imported is a ``HandlerImportError`` whose
    message is one line (where the failure happened, not the whole traceback).
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):  # the module named is absent
                raise HandlerImportError(
                    f"cannot import {name!r} (--import): no module named {exc.name!r} "
                    f"in {here} or on PYTHONPATH"
                ) from exc
            raise HandlerImportError(f"importing {name!r} failed: {_where(exc)}") from exc
        except Exception as exc:
            raise HandlerImportError(f"importing {name!r} failed: {_where(exc)}") from exc
    return registry


def _where(exc: BaseException) -> str:
    """``File:line: Kind: message`` of the innermost frame: the line to look at first."""
    frames = traceback.extract_tb(exc.__traceback__)
    place = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{place}{type(exc).__name__}: {exc}"
