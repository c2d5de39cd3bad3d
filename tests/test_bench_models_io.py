"""bench.models_io's context-switch count, read from /proc for every thread of a process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from bench.models_io import context_switches

CHILD = """
import sys, time
sys.stdin.readline()
for _ in range(50):
    time.sleep(0.001)
print("slept", flush=True)
sys.stdin.readline()
"""


def test_context_switches_count_the_waits_of_every_thread_and_child() -> None:
    """A thread that waits 20 times gives up its core at least 20 times, and so does a child
    50 times: both are counted, not just the main thread's."""
    waited, release = threading.Event(), threading.Event()

    def wait_twenty_times() -> None:
        for _ in range(20):
            release.wait(0.001)  # times out: a voluntary switch each time
        waited.set()
        release.wait()  # alive while it is counted: a thread that ended has no /proc entry

    before = context_switches(os.getpid())
    thread = threading.Thread(target=wait_twenty_times)
    thread.start()
    try:
        assert waited.wait(10)
        assert context_switches(os.getpid()) - before >= 20
    finally:
        release.set()
        thread.join()
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        start = context_switches(os.getpid())
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "slept\n"
        assert context_switches(os.getpid()) - start >= 50
    finally:
        child.communicate("")
