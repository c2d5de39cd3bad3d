"""Reading a worker's JSON log as it grows: one line per job outcome, with its run time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class LogTail:
    """The ``job`` lines appended to a worker's log since the last ``read``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a half-written last line waits for the next read
        self.offset += end
        return job_lines(data[:end].decode(errors="replace"))


def job_lines(text: str) -> list[dict[str, Any]]:
    """The ``{"event": "job", ...}`` records in ``text`` (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == "job":
            out.append(record)
    return out
