"""Structured logs: JSON lines for machines, a readable console format for people.

Configured once by the process entry point (CLI), never at import. Log calls below the level
cost almost nothing: structlog's filtering bound logger turns them into no-ops.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import msgspec
import structlog

_json = msgspec.json.Encoder()


def _render_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> bytes:
    return _json.encode(event_dict)


def configure_logging(
    level: str = "info", fmt: Literal["json", "console", "auto"] = "auto", stream: Any = None
) -> None:
    """Set the level and format for every jobrunner logger in this process."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        structlog.configure(
            processors=[*shared, structlog.processors.format_exc_info, _render_json],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.BytesLoggerFactory(getattr(stream, "buffer", stream)),
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(
            processors=[*shared, structlog.dev.ConsoleRenderer(colors=stream.isatty())],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.PrintLoggerFactory(stream),
            cache_logger_on_first_use=True,
        )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("jobrunner").bind(**bound)
