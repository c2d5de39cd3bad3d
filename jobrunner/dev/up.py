"""``jobrunner up``: run the stack in the foreground and take commands on standard input.

Typing ``+`` adds a worker, ``-`` removes one gracefully, ``kill`` SIGKILLs a random one (for
the failure demos), ``scale N`` sets the count, ``status`` shows everything, ``q`` or Ctrl+C
stops it all. Without a terminal (stdin closed), it just runs until SIGINT or SIGTERM.

A ``Supervisor`` thread watches the workers: one that dies (a crash, the OOM killer, ``kill``)
is reported with its exit status and the last line of its log, and restarted after a back-off
that doubles while workers keep dying, as systemd's or Kubernetes' restart policies would.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from jobrunner.dev.stack import ManagedProcess, Stack, StackError

RESTART_FIRST_DELAY = 0.5  # seconds before the first restart; doubled per death in a row
RESTART_MAX_DELAY = 30.0
RESTART_CALM_AFTER = 60.0  # a minute without a death and the back-off starts over

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
        pid = self.stack.crash_worker(int(args[0]) if args else None)
        return f"worker pid {pid} SIGKILLed"

    def _scale(self, args: list[str]) -> str:
        if len(args) != 1:
            raise ValueError("usage: scale N")
        self.stack.scale(int(args[0]))
        return f"{len(self.stack.workers)} workers running"


def how_it_ended(proc: ManagedProcess) -> str:
    code = proc.popen.returncode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Supervisor:
    """Report workers that die and (``restart``) start one in each's place after a back-off."""

    def __init__(
        self,
        stack: Stack,
        out: Callable[[str], Any],
        *,
        restart: bool = True,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stack, self.out, self.restart = stack, out, restart
        self.interval, self.clock = interval, clock
        self.deaths_in_a_row = 0
        self.last_death = -RESTART_CALM_AFTER
        self.pending: list[float] = []  # when each owed restart is due
        self.restarted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def delay(self) -> float:
        """The back-off for the death just seen: 0.5 s, 1, 2, ... up to 30 s."""
        return float(min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2 ** (self.deaths_in_a_row - 1)))

    def check(self) -> None:
        """One look: report the dead, start the restarts that are due."""
        now = self.clock()
        for proc in self.stack.take_dead_workers():
            if now - self.last_death > RESTART_CALM_AFTER:
                self.deaths_in_a_row = 0
            self.deaths_in_a_row += 1
            self.last_death = now
            last = proc.log_tail(1).strip()
            line = f"worker {proc.name} (pid {proc.pid}) died: {how_it_ended(proc)}"
            line += f"; its last log line: {last[:200]}" if last else ""
            if self.restart:
                wait = self.delay()
                self.pending.append(now + wait)
                line += f"; restarting in {wait:.1f}s"
            self.out(line)
        due = [t for t in self.pending if t <= now]
        for t in due:
            self.pending.remove(t)
            try:
                pid = self.stack.add_worker()
            except StackError as exc:
                self.out(f"restart failed: {exc}")
                continue
            self.restarted += 1
            self.out(f"worker pid {pid} started in its place ({len(self.stack.workers)} running)")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.stack.start_timeout + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()


def run_up(
    stack: Stack, stdin: IO[str], out: Callable[[str], Any], *, restart: bool = True
) -> None:
    """Start ``stack``, print where everything is, serve commands until told to stop.

    While the stack stops, further Ctrl+C and SIGTERM are ignored: an interrupted stop is how
    stray processes are made.
    """

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    supervisor = Supervisor(stack, out, restart=restart)
    try:
        stack.start()
        supervisor.start()
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
            supervisor.stop()
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
