"""Calling the experiments from a notebook: off the kernel's event loop, with progress lines.

Some experiments run an event loop of their own (``asyncio.run``), which cannot start on the
thread of a Jupyter kernel, where a loop is already running: ``off_the_loop`` calls them on a
thread of their own. The experiments in ``jobrunner.lab.experiments`` also loop over their cases
inside one call (``run_all``, ``run_live``) and say nothing until the end, which can be minutes
away in a notebook. Each step of those loops is a module-level function (``run_one``,
``run_strategy``) looked up in its module at every call, so ``each_call`` can wrap it for the
length of a ``with`` block: one line per finished step, with the seconds since the block began.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def off_the_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on a thread of its own: its result, or its exception raised
    here. The caller waits (and a notebook's cell with it); the thread is a daemon, so an
    interrupted cell does not keep the kernel from exiting."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller, not lost in the thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=getattr(fn, "__name__", "lab-call"),
                              daemon=True)  # fmt: skip
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


@contextlib.contextmanager
def each_call(
    owner: Any, name: str, describe: Callable[[Any], str], log: Callable[[str], None] = print
) -> Iterator[list[Any]]:
    """While the block runs, log ``describe(result)`` each time ``owner.<name>`` returns, and
    collect the results in the list yielded; the original function is put back on leaving."""
    original = getattr(owner, name)
    results: list[Any] = []
    started = time.monotonic()

    @functools.wraps(original)
    def reporting(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        results.append(result)
        log(f"{time.monotonic() - started:6.1f}s  {describe(result)}")
        return result

    setattr(owner, name, reporting)
    try:
        yield results
    finally:
        setattr(owner, name, original)
