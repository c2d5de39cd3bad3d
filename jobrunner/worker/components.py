"""Background loops of a worker, each a small component with the same shape: ``start``/``stop``.

``Periodic`` runs one ``tick`` every ``interval`` seconds and survives errors (Redis down: it logs
and tries again next tick). The worker composes them; none of them knows about the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from jobrunner.logs import get_logger


class Periodic:
    """Call ``tick`` every ``interval`` seconds until stopped."""

    def __init__(self, name: str, interval: float, tick: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self.interval = interval
        self._tick = tick
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._log = get_logger(component=name)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._loop(), name=self.name)
        return self._task

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self._tick()
            except (RedisError, OSError) as exc:
                self._log.warning("tick failed; will retry", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:  # a failure of its own was reported when it ended
            await asyncio.gather(self._task, return_exceptions=True)


def task_stacks() -> dict[str, str]:
    """Each asyncio task of this loop and the chain of awaits it is suspended in, innermost
    last (``function:line > ...``): what a stuck worker is waiting for, without a debugger."""
    out: dict[str, str] = {}
    for task in asyncio.all_tasks():
        chain = []
        coro: Any = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        out[task.get_name()] = " > ".join(chain) or repr(task)
    return out
