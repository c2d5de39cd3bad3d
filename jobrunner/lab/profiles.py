"""Notebook 3: where the time goes. Profiles of the API and a worker while they work, read
back as tables so a notebook can point at a frame and predict what removing it is worth.

py-spy samples a process from outside (its SVG flamegraph names each frame with its sample
count); pyinstrument runs inside the API (``/debug/profile``, with ``--debug-routes``).
"""

from __future__ import annotations

import html
import json
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobrunner.dev.profiling import record
from jobrunner.errors import JobrunnerError

_TITLE = re.compile(r"<title>(.*?) \(([\d,]+) samples?, [\d.]+%\)</title>", re.S)
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*?)(?::\d+)?\)$")


def flamegraph_frames(svg: str) -> Any:
    """Every frame of a py-spy (inferno) SVG: name, file, samples, share of all samples. A
    function called from several places, or at several lines, is one row (samples summed)."""
    import pandas as pd

    rows = []
    total = 0
    for raw, count in _TITLE.findall(svg):
        title = html.unescape(raw)
        samples = int(count.replace(",", ""))
        if title == "all":
            total = samples
            continue
        match = _FRAME.match(title)
        if match is None:  # "process 123: ..." and "thread ..." rows
            continue
        rows.append({"function": match["name"], "file": match["where"], "samples": samples})
    if not total:
        raise JobrunnerError("no 'all' frame: not a py-spy flamegraph")
    frame = pd.DataFrame(rows, columns=["function", "file", "samples"])
    frame = frame.groupby(["function", "file"], as_index=False)["samples"].sum()
    frame["share"] = (frame["samples"] / total).clip(upper=1.0)
    return frame.sort_values("samples", ascending=False, ignore_index=True)


def share_of(frames: Any, function: str) -> float:
    """The share of samples spent in (or under) ``function`` (exact name, as py-spy shows it)."""
    return float(frames.loc[frames["function"] == function, "share"].sum())


def hot_frames(frames: Any, package: str, n: int = 12) -> Any:
    """The ``n`` biggest frames whose file is under ``package`` (e.g. ``jobrunner/``)."""
    mine = frames[frames["file"].str.startswith(package)]
    return mine.head(n).reset_index(drop=True)


def speedscope_top(profile: dict[str, Any], n: int = 15) -> Any:
    """Self time per function of a pyinstrument speedscope profile (evented or sampled)."""
    import pandas as pd

    names = [f.get("name", "?") + f" ({Path(f.get('file', '?')).name}:{f.get('line', '?')})"
             for f in profile["shared"]["frames"]]  # fmt: skip
    self_time: dict[str, float] = {}
    total = 0.0
    for prof in profile["profiles"]:
        if prof["type"] == "evented":
            stack: list[tuple[int, float]] = []
            for event in prof["events"]:
                if event["type"] == "O":
                    if stack:
                        parent, since = stack[-1]
                        self_time[names[parent]] = self_time.get(names[parent], 0.0) + (
                            event["at"] - since
                        )
                    stack.append((event["frame"], event["at"]))
                elif stack:
                    top, since = stack.pop()
                    self_time[names[top]] = self_time.get(names[top], 0.0) + event["at"] - since
                    if stack:
                        stack[-1] = (stack[-1][0], event["at"])
            total += prof["endValue"] - prof["startValue"]
        else:  # sampled
            for sample, weight in zip(prof["samples"], prof["weights"], strict=True):
                if sample:
                    self_time[names[sample[-1]]] = self_time.get(names[sample[-1]], 0.0) + weight
                total += weight
    rows = sorted(self_time.items(), key=lambda kv: kv[1], reverse=True)[:n]
    frame = pd.DataFrame(rows, columns=["function", "self"])
    frame["share"] = frame["self"] / total if total else 0.0
    return frame


def fetch(url: str, timeout: float = 180.0, token: str = "") -> bytes:
    auth = {"authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=auth), timeout=timeout
    ) as response:
        body: bytes = response.read()
    return body


def pyinstrument_api(api_url: str, seconds: float, out: Path, token: str = "") -> Path:
    """One profile of the API by its own ``/debug/profile`` route, as speedscope JSON (open it
    at speedscope.app; ``speedscope_top`` reads it). The route renders in the event loop, so
    the API answers nothing else meanwhile: keep the window short."""
    out.mkdir(parents=True, exist_ok=True)
    scope = out / "03-api-pyinstrument.speedscope.json"
    url = f"{api_url}/debug/profile?seconds={seconds}&format=speedscope"
    scope.write_bytes(fetch(url, token=token))
    return scope


def py_spy_svg(pid: int, seconds: float, path: Path) -> Path:
    """Attach py-spy to ``pid`` for ``seconds`` and write its flamegraph."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = record(path, pid=pid, seconds=seconds)
    if code != 0 or not path.exists():
        raise JobrunnerError(f"py-spy exited with {code} (it needs ptrace: root or CAP_SYS_PTRACE)")
    return path


def heap_frame(api_url: str, top: int = 15, token: str = "") -> Any:
    """The API's tracemalloc snapshot (``/debug/heap``) as a DataFrame."""
    import pandas as pd

    body = json.loads(fetch(f"{api_url}/debug/heap?top={top}", token=token))
    frame = pd.DataFrame(body["top"])
    frame["KiB"] = (frame["bytes"] / 1024).round(1)
    return frame[["where", "KiB", "blocks"]], body["traced_bytes"], body["peak_bytes"]


@contextmanager
def in_background(work: Callable[[], Any]) -> Iterator[dict[str, Any]]:
    """Run ``work`` in a thread for the block; its result (or error) is in the yielded box
    once the block ends."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="background-load", daemon=True)
    thread.start()
    try:
        yield box
    finally:
        thread.join()
    if "error" in box:
        raise box["error"]


def drain_rates(
    worker_args: list[str], jobs: int, repeats: int, run_times: bool, seed: int = 3
) -> list[float]:
    """Jobs per second of one default asyncio worker draining ``jobs`` no-ops, ``repeats``
    times (the same worker; a private Redis)."""
    import random

    from jobrunner.lab.concurrency import WORKLOADS, measure
    from jobrunner.lab.running import lab_stack
    from jobrunner.lab.worker_log import LogTail

    rng = random.Random(seed)
    rates = []
    with lab_stack(api=False, workers=1, model="asyncio", worker_metrics=False,
                   worker_args=worker_args) as stack:  # fmt: skip
        tail = LogTail(stack.workers[0].log_path)
        for _ in range(repeats):
            run = measure(stack, tail, WORKLOADS["noop"], jobs, 300.0, rng, run_times)
            rates.append(run.throughput)
    return rates
