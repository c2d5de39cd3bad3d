"""The ledger: append-only JSON-lines files, one per process, outside Redis.

Every process appends to ``<dir>/<role>-<host>-<pid>.jsonl`` with ``O_APPEND`` and one
``write`` per line, so threads of a process never interleave and a SIGKILL loses at most the line
being written (the kernel keeps what was written; nothing is buffered in the process). Reading
the directory back gives what the handlers ran and what the producer was told, whatever Redis
says or forgot.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

LEDGER_DIR_ENV = "JOBRUNNER_LEDGER_DIR"

_encode = msgspec.json.Encoder().encode


class LedgerFile:
    """One process's append-only file; reopened after a fork (the pid is part of its name)."""

    def __init__(self, directory: Path | str, role: str) -> None:
        self.directory = Path(directory)
        self.role = role
        self._fd: int | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.directory / f"{self.role}-{socket.gethostname()}-{os.getpid()}.jsonl"

    def append(self, record: dict[str, Any]) -> None:
        line = _encode(record) + b"\n"
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self.directory.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                self._fd = os.open(self.path, flags, 0o644)
                self._pid = os.getpid()
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


def read_records(directory: Path | str, role: str) -> Iterator[dict[str, Any]]:
    """Every record the processes of ``role`` wrote; a torn last line (SIGKILL) is skipped."""
    for path in sorted(Path(directory).glob(f"{role}-*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                record = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue
            if isinstance(record, dict):
                yield record
