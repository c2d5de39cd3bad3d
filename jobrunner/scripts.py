"""Loads the Lua scripts in ``lua/`` (one per state transition) and binds them to a client.

redis-py's ``Script`` calls EVALSHA and falls back to loading the script when Redis answers
NOSCRIPT (after a restart or a SCRIPT FLUSH), so each script is sent once, then called by SHA.

Redis runs each script alone, so scripts cannot call one another; a definition two scripts share
(the new job's hash) is a fragment ``lua/_<name>.lua`` pasted in where a script's line reads
``--#include _<name>``.

On a cluster every call also declares ``keys.slot_guard`` of its first key, a key that never
exists: Redis then refuses the call whole while the slot moves between masters, instead of
running it until it meets a job hash already moved (the routed connections, which call scripts
by SHA, declare it themselves).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript, Script

from jobrunner.connection import is_cluster
from jobrunner.keys import slot_guard

INCLUDE = "--#include "


@cache
def script_source(name: str) -> str:
    """The text of ``lua/<name>.lua``, with its ``--#include`` lines replaced by the fragments."""
    text = files("jobrunner").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    return "\n".join(
        script_source(line.removeprefix(INCLUDE).strip()) if line.startswith(INCLUDE) else line
        for line in text.splitlines()
    )


class _GuardedScript(Script):
    """A script on a cluster: its calls declare the slot guard after the caller's keys."""

    def __call__(
        self, keys: Sequence[Any] | None = None, args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:  # fmt: skip
        keys = list(keys or [])
        return super().__call__([*keys, slot_guard(keys[0])], args, client)


class _GuardedAsyncScript(AsyncScript):
    """``_GuardedScript`` for an asyncio client."""

    async def __call__(
        self, keys: Sequence[Any] | None = None, args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:  # fmt: skip
        keys = list(keys or [])
        return await super().__call__([*keys, slot_guard(keys[0])], args, client)


class Scripts:
    """Every transition script, registered on one async client."""

    def __init__(self, redis: Redis) -> None:
        kind = _GuardedAsyncScript if is_cluster(redis) else AsyncScript

        def load(name: str) -> AsyncScript:
            return kind(redis, script_source(name))

        self.enqueue = load("enqueue")
        self.start = load("start")
        self.cancel = load("cancel")
        self.cancelled = load("cancelled")
        self.watch = load("watch")
        self.pause = load("pause")
        self.reserve = load("reserve")
        self.ack = load("ack")
        self.fail = load("fail")
        self.release = load("release")
        self.extend = load("extend")
        self.promote = load("promote")
        self.reap = load("reap")
        self.requeue = load("requeue")
        self.delete = load("delete")
        self.defer = load("defer")
        # the scheduler (jobrunner/scheduler): leader lock and fenced, once-per-slot enqueue
        self.leader_acquire = load("leader_acquire")
        self.leader_release = load("leader_release")
        self.schedule_fire = load("schedule_fire")


class SyncScripts:
    """The scripts a blocking producer calls (``SyncClient``), on a redis-py client."""

    def __init__(self, redis: SyncRedis) -> None:
        kind = _GuardedScript if is_cluster(redis) else Script

        def load(name: str) -> Script:
            return kind(redis, script_source(name))

        self.enqueue = load("enqueue")
        self.cancel = load("cancel")
        self.watch = load("watch")
        self.pause = load("pause")
        self.requeue = load("requeue")
        self.delete = load("delete")
