"""The whole system on one machine: Redis, the API, N workers and schedulers, as child processes.

``jobrunner up`` and the notebooks use it; so do the chaos tests. Every process it starts is a
real ``python -m jobrunner.cli ...`` subprocess in its own session, so a terminal's Ctrl+C
reaches only the stack, which then stops the others in order (API, schedulers, workers with
their grace period, Redis) and makes sure no descendant survives. It is synchronous on purpose:
a Jupyter cell already runs an event loop, and plain calls work there and in scripts alike.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import psutil
import redis

from jobrunner.connection import sync_redis
from jobrunner.dev.processes import end_process
from jobrunner.dev.redis_server import RedisServer, free_port
from jobrunner.errors import JobrunnerError
from jobrunner.keys import PREFIX, QueueKeys, worker_key, workers_key
from jobrunner.tokens import SCOPES, TokenRecord, encode_record, new_token, tokens_key

Role = Literal["api", "worker", "scheduler"]


class StackError(JobrunnerError):
    """A process of the stack did not start, or did not stop."""


@dataclass
class ManagedProcess:
    """One child process of the stack, with its log file."""

    role: Role
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]
    metrics_port: int | None = None
    started_at: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll ``condition`` until it holds, else raise StackError naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Stack:
    """Start it with ``with Stack(...) as stack:`` or ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        workers: int = 1,
        model: str = "asyncio",
        concurrency: int | None = None,
        api: bool = True,
        api_port: int | None = None,
        schedulers: int = 0,
        redis_url: str | None = None,
        redis_appendonly: bool = False,
        imports: Iterable[str] = ("jobrunner.lab.handlers.demo",),
        queues: Iterable[str] = ("default",),
        env: Mapping[str, str] | None = None,
        worker_args: Iterable[str] = (),
        api_args: Iterable[str] = (),
        scheduler_args: Iterable[str] = (),
        worker_metrics: bool = True,
        worker_command: Literal["worker", "naive-worker"] = "worker",
        log_dir: Path | None = None,
        keep_logs: bool = False,
        grace: float = 10.0,
        start_timeout: float = 30.0,
    ) -> None:
        self.initial_workers = workers
        self.model = model
        self.concurrency = concurrency
        self.with_api = api
        self.api_port = api_port
        self.initial_schedulers = schedulers
        self.external_redis_url = redis_url
        self.redis_appendonly = redis_appendonly
        self.imports = list(imports)
        self.queues = list(queues)
        self.env = dict(env or {})
        self.worker_args = list(worker_args)
        self.api_args = list(api_args)
        self.scheduler_args = list(scheduler_args)
        self.worker_metrics = worker_metrics
        # "naive-worker": the LPUSH/BRPOP teaching baseline, for side-by-side comparisons.
        self.worker_command = worker_command
        self.grace = grace
        self.start_timeout = start_timeout
        # A temporary log directory goes with the stack unless asked to stay (or start failed).
        self._own_log_dir = log_dir is None
        self.keep_logs = keep_logs
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="jobrunner-stack-"))
        self.redis_server: RedisServer | None = None
        self.redis_url = redis_url or ""
        self.api: ManagedProcess | None = None
        self.workers: list[ManagedProcess] = []
        self.schedulers: list[ManagedProcess] = []
        self._spawned: list[ManagedProcess] = []  # everything ever started, for cleanup
        self._counter = 0
        self._ports: set[int] = set()  # handed out: two free_port() calls may agree otherwise
        self._client: redis.Redis | None = None
        self.api_token = ""  # every scope; made in Redis when the stack starts
        self._lock = threading.RLock()  # the worker list: `up`'s supervisor thread reads it too
        self._token_record: TokenRecord | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Stack:
        """Redis, then workers and schedulers, then the API; waits until each is ready."""
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if not self.external_redis_url:
                self.redis_server = RedisServer(appendonly=self.redis_appendonly).start()
                self.redis_url = self.redis_server.url
            self.client.ping()
            self.api_token = self._make_token()
            for _ in range(self.initial_workers):
                self.add_worker(wait=False)
            for _ in range(self.initial_schedulers):
                self.add_scheduler()
            if self.with_api:
                self._start_api()
            for worker in self.workers:
                self._wait_worker_ready(worker)
        except BaseException:
            self.keep_logs = True  # the logs say why it failed: keep them
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """API first (no new work), schedulers, workers (graceful), then Redis; nothing left."""
        if self.api is not None:
            self._terminate(self.api, timeout=10)
            self.api = None
        for proc in self.schedulers:
            self._terminate(proc, timeout=10)
        self.schedulers.clear()
        for proc in self.workers:  # signal all first: they drain in parallel
            if proc.alive:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.workers:
            self._terminate(proc, timeout=self.grace + 10)
        self.workers.clear()
        for proc in self._spawned:
            self._reap_descendants(proc)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None
        if self._own_log_dir and not self.keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- what is running -------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis:  # decoded: str in, str out
        """A synchronous Redis client on the stack's Redis (for notebooks and checks)."""
        if self._client is None:
            # a cluster client where the URL names a Redis Cluster
            self._client = sync_redis(self.redis_url, socket_timeout=5, decode_responses=True)
        return self._client

    @property
    def api_url(self) -> str | None:
        return f"http://127.0.0.1:{self.api_port}" if self.api is not None else None

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.alive]

    def scheduler_pids(self) -> list[int]:
        return [s.pid for s in self.schedulers if s.alive]

    def metrics_urls(self) -> list[str]:
        """Prometheus endpoints: the API's and every worker's."""
        urls = [f"{self.api_url}/metrics"] if self.api_url else []
        urls += [f"http://127.0.0.1:{w.metrics_port}/metrics" for w in self.workers if w.alive
                 and w.metrics_port]  # fmt: skip
        return urls

    def all_pids(self) -> set[int]:
        """Every live process the stack started, with their descendants, and Redis."""
        pids: set[int] = set()
        for proc in self._spawned:
            pids |= _tree(proc.pid) | {p.pid for p in _session_members(proc.pid)}
        if self.redis_server is not None and self.redis_server.process is not None:
            pids.add(self.redis_server.process.pid)
        return pids

    def depth(self, queue: str = "default") -> dict[str, int]:
        """Jobs ready, scheduled, reserved (in flight) and dead in ``queue``, now."""
        keys = QueueKeys(queue)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(keys.ready)
            pipe.zcard(keys.scheduled)
            pipe.zcard(keys.reserved)
            pipe.zcard(keys.dead)
            pipe.llen(keys.claimed)
            ready, scheduled, reserved, dead, claimed = pipe.execute()
        ready += claimed  # ready too (see QueueKeys.claimed)
        return {"ready": ready, "scheduled": scheduled, "reserved": reserved, "dead": dead}

    def wait_idle(self, queue: str = "default", timeout: float = 60.0) -> None:
        """Until nothing is ready, scheduled or in flight in ``queue``."""

        def idle() -> bool:
            d = self.depth(queue)
            return d["ready"] + d["scheduled"] + d["reserved"] == 0

        wait_for(idle, timeout, f"queue {queue!r} to drain", interval=0.05)

    def status(self) -> str:
        lines = [f"{'redis':<10}{self.redis_url}"]
        if self.api_url:
            lines.append(f"{'api':<10}{self.api_url}  docs {self.api_url}/docs  pid {self.api.pid}")  # type: ignore[union-attr]
            lines.append(f"{'dashboard':<10}{self.dashboard_url}")
            lines.append(f"{'token':<10}{self.api_token}   (Authorization: Bearer ...)")
        for w in self.workers:
            metrics = f"  metrics :{w.metrics_port}" if w.metrics_port else ""
            state = "running" if w.alive else f"exited {w.popen.returncode}"
            lines.append(f"{w.name:<10}pid {w.pid}  {state}{metrics}")
        for s in self.schedulers:
            lines.append(f"{s.name:<10}pid {s.pid}  {'running' if s.alive else 'exited'}")
        lines.append(f"{'logs':<10}{self.log_dir}")
        return "\n".join(lines)

    # ---- changing it while it runs ---------------------------------------------------------

    def add_worker(
        self,
        *,
        model: str | None = None,
        concurrency: int | None = None,
        args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        wait: bool = True,
        launcher: Iterable[str] = (),
    ) -> int:
        """Start one more worker; returns its pid once it heartbeats (unless ``wait=False``).

        ``launcher`` is a command that execs the worker (``ip netns exec HOST``: the worker on
        another network host; ``taskset -c 1``), so the pid is still the worker's own."""
        concurrency = concurrency if concurrency is not None else self.concurrency
        argv = [self.worker_command, "--queues", ",".join(self.queues)]
        if concurrency:
            argv += ["--concurrency", str(concurrency)]
        port = None
        if self.worker_command == "worker":
            argv += ["--model", model or self.model]
            port = self._free_port() if self.worker_metrics else None
            if port:
                argv += ["--metrics-port", str(port)]
        argv += [*self.worker_args, *args]
        proc = self._spawn("worker", argv, env=env, launcher=launcher)
        proc.metrics_port = port
        with self._lock:
            self.workers.append(proc)
        if wait:
            self._wait_worker_ready(proc)
        return proc.pid

    def remove_worker(self, pid: int | None = None) -> int:
        """Stop one worker gracefully (the newest unless ``pid``); waits for it to exit."""
        with self._lock:
            proc = self._find(self.workers, pid)
            self.workers.remove(proc)
        self._terminate(proc, timeout=self.grace + 10)
        return proc.pid

    def scale(self, n: int) -> None:
        """Add or gracefully remove workers until ``n`` run."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._forget_dead_workers()
        while len(self.workers) < n:
            self.add_worker()
        while len(self.workers) > n:
            self.remove_worker()

    def kill_worker(self, pid: int | None = None, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to one worker (a random live one unless ``pid``): a crash, on purpose.

        Only the worker's own process gets the signal; a process-model worker's children
        notice their parent is gone. The stack forgets a worker that exits.
        """
        live = [w for w in self.workers if w.alive]
        if not live:
            raise StackError("no live worker to kill")
        proc = self._find(live, pid) if pid else random.choice(live)
        proc.popen.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=self.grace + 10)
            if not proc.alive:
                with self._lock:
                    if proc in self.workers:
                        self.workers.remove(proc)
                self._reap_descendants(proc)
        return proc.pid

    def crash_worker(self, pid: int | None = None) -> int:
        """SIGKILL one worker and leave it for whoever watches (``jobrunner up`` restarts it)."""
        live = [w for w in self.workers if w.alive]
        if not live:
            raise StackError("no live worker to kill")
        proc = self._find(live, pid) if pid else random.choice(live)
        proc.popen.kill()
        return proc.pid

    def take_dead_workers(self) -> list[ManagedProcess]:
        """Workers that exited without being asked to, forgotten (and their leftovers reaped)."""
        with self._lock:
            dead = [w for w in self.workers if not w.alive]
            for proc in dead:
                self.workers.remove(proc)
        for proc in dead:
            self._reap_descendants(proc)
        return dead

    def pause_worker(self, pid: int) -> None:
        """SIGSTOP: alive but silent, as a long GC pause or a stalled VM would look."""
        self._find(self.workers, pid).popen.send_signal(signal.SIGSTOP)

    def resume_worker(self, pid: int) -> None:
        self._find(self.workers, pid).popen.send_signal(signal.SIGCONT)

    def add_scheduler(self, args: Iterable[str] = ()) -> int:
        proc = self._spawn("scheduler", ["scheduler", *self.scheduler_args, *args])
        self.schedulers.append(proc)
        wait_for(lambda: proc.alive, 1, "the scheduler to start")
        return proc.pid

    def restart_redis(self, down_for: float = 0.0) -> None:
        """SIGKILL the embedded Redis and start it again on the same port and data directory.

        What survives depends on persistence: with ``redis_appendonly=True`` everything fsynced
        (each second) comes back; without it the queue starts empty (the stack's own token is
        written again, as an operator would after losing Redis).
        """
        server = self.redis_server
        if server is None:
            raise StackError("restart_redis needs the embedded Redis (no redis_url)")
        server.kill()
        if down_for:
            time.sleep(down_for)  # the outage itself is the point of the call
        server.start()
        self.restore_token()

    def restore_token(self) -> None:
        """Write the stack's token record again (a Redis that lost its data lost it too)."""
        if self._token_record is not None:
            self.client.hset(tokens_key(), self._token_record.id, encode_record(self._token_record))

    @property
    def api_headers(self) -> dict[str, str]:
        """What a client sends to this stack's API: its token, which has every scope."""
        return {"authorization": f"Bearer {self.api_token}"}

    @property
    def dashboard_url(self) -> str | None:
        """The dashboard, signed in by the link (the token leaves the URL at once)."""
        return f"{self.api_url}/dashboard?token={self.api_token}" if self.api_url else None

    # ---- internals -------------------------------------------------------------------------

    def _make_token(self) -> str:
        """A token with every scope for this stack's own use, as ``jobrunner token create``."""
        token, record = new_token("stack", SCOPES)
        self._token_record = record
        self.restore_token()
        return token

    def _spawn(
        self, role: Role, argv: list[str], env: Mapping[str, str] | None = None,
        launcher: Iterable[str] = (),
    ) -> ManagedProcess:  # fmt: skip
        self._counter += 1
        name = f"{role}-{self._counter}"
        log_path = self.log_dir / f"{name}.log"
        before = list(launcher)
        full_argv = [*before, sys.executable, "-m", "jobrunner.cli", *argv]
        if role in ("api", "worker", "scheduler"):
            at = len(before) + 4  # after the subcommand
            full_argv[at:at] = ["--redis-url", self.redis_url, "--log-format", "json"]
            for module in self.imports:
                full_argv += ["--import", module]
        full_env = {**os.environ, **self.env, **(env or {})}
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                full_argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=full_env,
                start_new_session=True,  # the terminal's Ctrl+C reaches the stack only
            )
        proc = ManagedProcess(role, name, popen, log_path, full_argv)
        self._spawned.append(proc)
        return proc

    def _start_api(self) -> None:
        self.api_port = self.api_port or self._free_port()
        queues = ["--queues", ",".join(self.queues)]
        self.api = self._spawn("api", ["api", "--port", str(self.api_port), *queues,
                                       *self.api_args])  # fmt: skip
        api = self.api
        url = f"http://127.0.0.1:{self.api_port}/healthz"

        def answering() -> bool:
            if not api.alive:
                raise StackError(f"the API exited with {api.popen.returncode}:\n{api.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(answering, self.start_timeout, f"the API on {url}", interval=0.05)

    def _wait_worker_ready(self, proc: ManagedProcess) -> None:
        def beating() -> bool:
            if not proc.alive:
                raise StackError(
                    f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}"
                )
            if self.worker_command == "naive-worker":
                # No heartbeat in the baseline: ready once as many clients block in BRPOP as
                # naive workers were started.
                blocked = [c for c in self.client.client_list() if c.get("cmd") == "brpop"]
                return len(blocked) >= len(self.workers)
            for worker_id in self.client.zrange(workers_key(PREFIX), 0, -1):
                if self.client.hget(worker_key(str(worker_id), PREFIX), "pid") == str(proc.pid):
                    return True
            return False

        wait_for(beating, self.start_timeout, f"{proc.name}'s first heartbeat", interval=0.05)

    def _terminate(self, proc: ManagedProcess, timeout: float) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; then its descendants."""
        if proc.alive:
            end_process(proc.popen, timeout)
        self._reap_descendants(proc)

    def _reap_descendants(self, proc: ManagedProcess) -> None:
        """Kill what is left in the process's session: children of a killed parent."""
        leftovers = [p for p in _session_members(proc.pid) if p.pid != proc.pid]
        for p in leftovers:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(leftovers, timeout=5)

    def _free_port(self) -> int:
        """A free port not yet given to another of the stack's processes (which may not have
        bound it yet)."""
        while (port := free_port()) in self._ports:
            pass
        self._ports.add(port)
        return port

    def _forget_dead_workers(self) -> None:
        self.take_dead_workers()

    @staticmethod
    def _find(procs: list[ManagedProcess], pid: int | None) -> ManagedProcess:
        if not procs:
            raise StackError("no such process is running")
        if pid is None:
            return procs[-1]
        for proc in procs:
            if proc.pid == pid:
                return proc
        raise StackError(f"pid {pid} is not one of the stack's processes")


def _tree(pid: int) -> set[int]:
    """``pid`` and its live descendants (empty when it is gone)."""
    try:
        parent = psutil.Process(pid)
        members = [parent, *parent.children(recursive=True)]
        return {p.pid for p in members if p.status() != psutil.STATUS_ZOMBIE}
    except psutil.Error:
        return set()


def _session_members(session_id: int) -> list[psutil.Process]:
    """Live processes whose session is ``session_id`` (children re-parented to init included)."""
    out = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(p.pid) == session_id and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out
