"""bench.models_io's context-switch count (from /proc, every thread of a process), and
bench.models_variants: workers of any settings drained side by side."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.models_io import context_switches
from bench.models_variants import main, parse_variant

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


def test_a_variant_is_a_name_a_model_and_worker_options() -> None:
    assert parse_variant("thread-100=thread --concurrency 100") == (
        "thread-100", "thread", ("--concurrency", "100"),
    )  # fmt: skip
    assert parse_variant("asyncio=asyncio") == ("asyncio", "asyncio", ())
    for bad in ("thread", "=thread", "name="):
        with pytest.raises(argparse.ArgumentTypeError, match="name=model"):
            parse_variant(bad)


def test_variants_drain_side_by_side_against_the_first(tmp_path: Path) -> None:
    """A small real run: two workers, the second with options, ratios to the first."""
    assert main(["--jobs", "300", "--rounds", "1", "--out", str(tmp_path),
                 "--variant", "asyncio=asyncio",
                 "--variant", "thread-4=thread --concurrency 4"]) == 0  # fmt: skip
    report = json.loads((tmp_path / "bench-models-variants.json").read_text())
    assert report["variants"] == {"asyncio": "asyncio", "thread-4": "thread --concurrency 4"}
    for kind in ("redis round trip", "1 ms sleep"):
        rows = report["kinds"][kind]
        assert rows["asyncio"]["ratio_to_baseline"] == 1.0
        assert rows["thread-4"]["jobs_per_s"] > 0
        assert rows["thread-4"]["context_switches_per_job"] > 0  # its threads wait for work
