"""Probe handlers: jobs whose every run is written to the ledger, whatever happens to Redis.

A worker imports this module (``--import jobrunner.lab.chaos.probes``) and finds the ledger
directory in ``JOBRUNNER_LEDGER_DIR`` (or in the payload's ``ledger_dir``). A probe's payload
says how to behave: ``{"probe": "p-000001", "ms": 10, "do": "ok"}``; ``do`` is one of

* ``ok``: work ``ms`` milliseconds, succeed;
* ``raise``: raise on every attempt (dead after its retries);
* ``hang``: wait far past its timeout, cooperatively (``ctx.cancelled``), as a stuck call would;
* ``exit``: end the process running it (a job that kills its worker every time);
* ``block_loop`` (``chaos.probe_async`` only): hold the worker's event loop for ``ms``, so its
  heartbeat and lease renewal stall while the job itself carries on.

``until_attempt: n`` limits the misbehaviour to the first ``n`` attempts (then it succeeds).
Each run appends a ``start`` line, then an ``end`` line with its outcome (none when the process
is killed mid-run).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobrunner.backoff import Constant
from jobrunner.lab.chaos.ledger import LEDGER_DIR_ENV, LedgerFile
from jobrunner.registry import JobContext, handler

PROBE = "chaos.probe"
PROBE_ASYNC = "chaos.probe_async"
PROBE_OPTIONS: dict[str, Any] = {"timeout": 5.0, "max_retries": 3, "backoff": Constant(0.05, 0.05)}

_files: dict[str, LedgerFile] = {}


def _ledger(payload: dict[str, Any]) -> LedgerFile:
    directory = os.environ.get(LEDGER_DIR_ENV) or payload.get("ledger_dir")
    if not directory:
        raise RuntimeError(f"a probe needs {LEDGER_DIR_ENV} (or ledger_dir in its payload)")
    found = _files.get(directory)
    if found is None:
        found = _files[directory] = LedgerFile(directory, "runs")
    return found


class ProbeRun:
    """The two ledger lines of one run: ``start`` now, ``end`` with its outcome."""

    def __init__(self, payload: dict[str, Any], ctx: JobContext) -> None:
        self.ledger = _ledger(payload)
        self.base = {"probe": payload["probe"], "job": ctx.job_id, "attempt": ctx.attempt,
                     "pid": os.getpid()}  # fmt: skip
        self.start = time.time()
        self.ledger.append({"e": "start", **self.base, "t": self.start})

    def end(self, outcome: str) -> None:
        self.ledger.append({"e": "end", **self.base, "start": self.start, "end": time.time(),
                            "outcome": outcome})  # fmt: skip


def _action(payload: dict[str, Any], ctx: JobContext) -> str:
    until = payload.get("until_attempt")
    return "ok" if until is not None and ctx.attempt > until else str(payload.get("do", "ok"))


def _misbehave(run: ProbeRun, payload: dict[str, Any], ctx: JobContext) -> None:
    """The behaviours a sync and an async probe share."""
    action = _action(payload, ctx)
    if action == "raise":
        run.end("raised")
        raise RuntimeError(f"probe {payload['probe']} raised on attempt {ctx.attempt}")
    if action == "hang":
        ctx.cancelled.wait(3600)
        run.end("timeout")
        ctx.check()
    if action == "exit":
        run.end("exit")
        os._exit(13)


@handler(PROBE, **PROBE_OPTIONS)
def probe(payload: dict[str, Any], ctx: JobContext) -> None:
    run = ProbeRun(payload, ctx)
    _misbehave(run, payload, ctx)
    if payload.get("ms"):
        time.sleep(payload["ms"] / 1000)
    run.end("ok")


@handler(PROBE_ASYNC, **PROBE_OPTIONS)
async def probe_async(payload: dict[str, Any], ctx: JobContext) -> None:
    run = ProbeRun(payload, ctx)
    if _action(payload, ctx) == "block_loop":
        time.sleep(payload.get("ms", 0) / 1000)  # noqa: ASYNC251 - on purpose: the loop stalls
        run.end("ok")
        return
    _misbehave(run, payload, ctx)
    if payload.get("ms"):
        await asyncio.sleep(payload["ms"] / 1000)
    run.end("ok")
