"""``jobrunner up``: run the stack in the foreground and take commands on standard input.

Typing ``+`` adds a worker, ``-`` removes one gracefully, ``kill`` SIGKILLs a random one (for
the failure demos), ``scale N`` sets the count, ``status`` shows everything, ``q`` or Ctrl+C
stops it all. Without a terminal (stdin closed), it just runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from jobrunner.dev.stack import Stack, StackError

HELP = "commands: + (add worker)  - (remove)  kill [PID]  scale N  status  help  q (quit)"


class Controller:
    """Apply one text command to a running stack; returns what to print."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def handle(self, line: str) -> str | None:
        """The answer to ``line``; None means stop."""
        words = line.split()
        if not words:
            return ""
        command, args = words[0].lower(), words[1:]
        actions: dict[str, Callable[[list[str]], str | None]] = {
            "+": self._add, "add": self._add,
            "-": self._remove, "remove": self._remove,
            "kill": self._kill, "scale": self._scale,
            "status": lambda _: self.stack.status(), "s": lambda _: self.stack.status(),
            "help": lambda _: HELP, "?": lambda _: HELP,
            "q": lambda _: None, "quit": lambda _: None, "exit": lambda _: None,
        }  # fmt: skip
        action = actions.get(command)
        if action is None:
            return f"unknown command {command!r}; {HELP}"
        try:
            return action(args)
        except (StackError, ValueError) as exc:
            return f"error: {exc}"

    def _add(self, args: list[str]) -> str:
        pid = self.stack.add_worker(model=args[0] if args else None)
        return f"worker pid {pid} started ({len(self.stack.workers)} running)"

    def _remove(self, args: list[str]) -> str:
        pid = self.stack.remove_worker(int(args[0]) if args else None)
        return f"worker pid {pid} stopped gracefully ({len(self.stack.workers)} running)"

    def _kill(self, args: list[str]) -> str:
        pid = self.stack.kill_worker(int(args[0]) if args else None)
        return f"worker pid {pid} SIGKILLed ({len(self.stack.workers)} running)"

    def _scale(self, args: list[str]) -> str:
        if len(args) != 1:
            raise ValueError("usage: scale N")
        self.stack.scale(int(args[0]))
        return f"{len(self.stack.workers)} workers running"


def run_up(stack: Stack, stdin: IO[str], out: Callable[[str], Any]) -> None:
    """Start ``stack``, print where everything is, serve commands until told to stop.

    While the stack stops, further Ctrl+C and SIGTERM are ignored: an interrupted stop is how
    stray processes are made.
    """

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        stack.start()
        out(stack.status())
        if stack.api_url:
            out(f"\nTo see the dashboard, open this link (it signs you in):\n    "
                f"{stack.dashboard_url}\nAPI {stack.api_url}   docs {stack.api_url}/docs   "
                f"metrics {stack.api_url}/metrics")  # fmt: skip
            out(
                f"JOBRUNNER_TOKEN={stack.api_token}   "
                f"(curl -H 'Authorization: Bearer $JOBRUNNER_TOKEN' {stack.api_url}/queues)"
            )
        out(f"REDIS_URL={stack.redis_url}")
        _serve(Controller(stack), stdin, out)
    except KeyboardInterrupt:
        pass
    finally:
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.stop()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, previous)
    out("stack stopped")
    sys.stdout.flush()


def _serve(controller: Controller, stdin: IO[str], out: Callable[[str], Any]) -> None:
    out(HELP)
    for line in stdin:
        answer = controller.handle(line)
        if answer is None:
            return
        if answer:
            out(answer)
    out("no more input: running until Ctrl+C or SIGTERM")
    threading.Event().wait()  # until a signal raises KeyboardInterrupt
