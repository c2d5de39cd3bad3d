"""The load generator: closed- and open-loop load over HTTP or the library, in each concurrency
model, with HDR latency percentiles from enqueue to done. ``jobrunner loadgen`` is its CLI.

Names are imported on first use, so the CLI (which every worker starts through) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobrunner.lab.loadgen.result import LoadResult
    from jobrunner.lab.loadgen.run import run_load
    from jobrunner.lab.loadgen.spec import LoadSpec, parse_mix

__all__ = ["LoadResult", "LoadSpec", "parse_mix", "run_load"]

_HOMES = {"LoadResult": "result", "run_load": "run", "LoadSpec": "spec", "parse_mix": "spec"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"jobrunner.lab.loadgen.{_HOMES[name]}"), name)
