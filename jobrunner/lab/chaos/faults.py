"""The faults, as actions on a running ``Stack``; each returns a ``FaultRecord`` for the report.

A fault that ends a worker first freezes it (SIGSTOP) and counts the jobs reserved at that
instant, so the duplicates it can cause are bounded by a number read before it struck.
Pausing a worker or keeping Redis down takes as long as the fault should last: that wait *is*
the fault, not a guess at when something else is ready.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import time

import psutil

from jobrunner.dev.redis_server import RedisServer
from jobrunner.dev.slot_move import SlotMove
from jobrunner.dev.stack import ManagedProcess, Stack, StackError
from jobrunner.keys import QueueKeys
from jobrunner.lab.chaos.report import FaultRecord


def in_flight(stack: Stack) -> int:
    """Jobs reserved (leased) in the stack's queues right now; 0 when Redis does not answer."""
    total = 0
    for queue in stack.queues:
        with contextlib.suppress(Exception):
            total += int(stack.client.zcard(QueueKeys(queue).reserved))
    return total


def _victim(stack: Stack, pid: int | None) -> ManagedProcess:
    live = [w for w in stack.workers if w.alive]
    if not live:
        raise StackError("no live worker")
    if pid is None:
        return random.choice(live)
    for proc in live:
        if proc.pid == pid:
            return proc
    raise StackError(f"pid {pid} is not a live worker of the stack")


def kill_worker(stack: Stack, pid: int | None = None, busy_within: float = 5.0) -> FaultRecord:
    """SIGKILL one worker (a random one unless ``pid``) mid-job; its children go with it.
    Frozen first (SIGSTOP), so what it holds cannot change any more; frozen at a moment no job
    is in flight, it is let go and frozen again a few milliseconds later, for up to
    ``busy_within`` seconds (under light load a kill timed right after progress often meets
    an idle worker, and a test of "mid-job" then proves nothing)."""
    proc = _victim(stack, pid)
    deadline = time.monotonic() + busy_within
    while True:
        proc.popen.send_signal(signal.SIGSTOP)
        held = in_flight(stack)
        if held or time.monotonic() > deadline:
            break
        proc.popen.send_signal(signal.SIGCONT)
        time.sleep(0.005)  # a retry period with a deadline: the next job comes within milliseconds
    started = time.time()
    stack.kill_worker(proc.pid, signal.SIGKILL)
    return FaultRecord("kill_worker", started, time.time(), held, str(proc.pid))


def job_children(pid: int) -> list[psutil.Process]:
    """A process-model worker's job-running children (not multiprocessing's tracker)."""
    out = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children():
            with contextlib.suppress(psutil.Error):
                if any("spawn_main" in part for part in child.cmdline()):
                    out.append(child)
    return out


def kill_child(stack: Stack, pid: int | None = None) -> FaultRecord:
    """SIGKILL one job-running child of a process-model worker; the worker must replace it."""
    proc = _victim(stack, pid)
    children = job_children(proc.pid)
    if not children:
        raise StackError(f"worker {proc.pid} has no job-running child (not the process model?)")
    child = random.choice(children)
    held = in_flight(stack)
    started = time.time()
    child.kill()
    with contextlib.suppress(psutil.Error):
        child.wait(10)
    return FaultRecord("kill_child", started, time.time(), held, str(child.pid))


def terminate_worker(
    stack: Stack, pid: int | None = None, *, second_signal_after: float | None = None
) -> tuple[FaultRecord, int]:
    """SIGTERM one worker (graceful drain); optionally a second SIGTERM ``second_signal_after``
    seconds later (the forced, fast exit). Returns the record and the worker's exit status."""
    proc = _victim(stack, pid)
    held = in_flight(stack)
    started = time.time()
    proc.popen.send_signal(signal.SIGTERM)
    if second_signal_after is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=second_signal_after)  # the drain, interrupted on purpose
        if proc.alive:
            proc.popen.send_signal(signal.SIGTERM)
    code = proc.popen.wait(timeout=stack.grace + 20)
    stack.remove_worker(proc.pid)  # already gone: only forgets it and reaps leftovers
    kind = "terminate_twice" if second_signal_after is not None else "terminate_worker"
    return FaultRecord(kind, started, time.time(), held, str(proc.pid)), code


def pause_worker(stack: Stack, seconds: float, pid: int | None = None) -> FaultRecord:
    """SIGSTOP one worker for ``seconds`` (a long GC pause, a stalled VM), then SIGCONT."""
    proc = _victim(stack, pid)
    proc.popen.send_signal(signal.SIGSTOP)
    held = in_flight(stack)
    started = time.time()
    time.sleep(seconds)  # the pause is the fault
    proc.popen.send_signal(signal.SIGCONT)
    return FaultRecord("pause_worker", started, time.time(), held, str(proc.pid))


def restart_redis(stack: Stack, down_for: float = 1.0) -> FaultRecord:
    """SIGKILL the embedded Redis, keep it down ``down_for`` seconds, restart it on its data."""
    held = in_flight(stack)
    started = time.time()
    stack.restart_redis(down_for=down_for)
    return FaultRecord("restart_redis", started, time.time(), held, stack.redis_url)


def kill_redis_node(stack: Stack, node: RedisServer) -> FaultRecord:
    """SIGKILL one node of a Redis Cluster (a master: its replica is promoted once the others
    have seen it fail); the jobs in flight are counted first."""
    held = in_flight(stack)
    started = time.time()
    node.kill()
    return FaultRecord("kill_redis_node", started, time.time(), held, f"port {node.port}")


def move_slot(stack: Stack, move: SlotMove, *, batch: int = 2, pause: float = 0.05) -> FaultRecord:
    """Reshard under load: move a slot of a Redis Cluster to another master, ``batch`` keys at
    a time, the job hashes first (``SlotMove.run``)."""
    held = in_flight(stack)
    started = time.time()
    moved = move.run(batch=batch, pause=pause)
    target = f"slot {move.slot}: {moved} keys, port {move.source_port} to {move.target_port}"
    return FaultRecord("move_slot", started, time.time(), held, target)


def replace_dead_workers(stack: Stack, count: int) -> int:
    """Start workers until ``count`` run, as a supervisor would; returns how many it started."""
    stack.take_dead_workers()
    started = 0
    while len(stack.workers) < count:
        stack.add_worker(wait=False)
        started += 1
    return started
