"""Notebook 4: latency against load, closed loop and open loop, and coordinated omission.

A closed loop (N clients, each sending its next request when the last one returns) can never
offer more than the system serves: when the system slows, so does the load, and the slow
moments are sampled only N times. An open loop sends at a fixed rate whatever happens, as real
users do, and measures each request from when it *should* have started. ``jobrunner.lab.loadgen``
does both; this module sweeps them and stalls the API on purpose to show the difference.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jobrunner.lab.loadgen.result import LoadResult
from jobrunner.lab.loadgen.run import run_load
from jobrunner.lab.loadgen.spec import LoadSpec, Loop, Model

QUANTILES = ("p50", "p90", "p99", "p99.9", "max")


def load(
    api_url: str, redis_url: str, *, loop: Loop, concurrency: int, duration: float,
    rate: float = 0.0, token: str = "", model: Model = "asyncio",
) -> LoadResult:  # fmt: skip
    """One HTTP load of ``POST /jobs`` (one no-op job per request) for ``duration`` seconds,
    from the load generator's ``model`` (asyncio tasks, threads or processes)."""
    spec = LoadSpec(
        target="http", url=api_url, token=token, model=model, concurrency=concurrency,
        loop=loop, rate=rate, total=None, duration=duration, wait_for_completion=60.0,
    )  # fmt: skip
    return run_load(spec, redis_url=redis_url, progress=False)


def _cpu_seconds() -> float:
    """This process's CPU time and that of its children that ended (the process model's)."""
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def load_sources(
    api_url: str, redis_url: str, models: Iterable[Model], clients: int, duration: float,
    repeats: int = 1, log: Callable[[str], None] = print, token: str = "",
) -> Any:  # fmt: skip
    """The same closed loop from each of the load generator's models, alternating: what each
    achieved, its latency, and what it cost the generator itself (CPU µs per request). A load
    source that spends more per request than the server is measuring itself."""
    import pandas as pd

    rows = []
    for repeat in range(repeats):
        for model in models:
            before = _cpu_seconds()
            result = load(api_url, redis_url, loop="closed", concurrency=clients,
                          duration=duration, token=token, model=model)  # fmt: skip
            spent = _cpu_seconds() - before
            rows.append(row(result, source=model, repeat=repeat))
            done = rows[-1]["requests"] or 1
            rows[-1]["generator_cpu_us"] = round(spent / done * 1e6, 1)
            log(f"{model:<8} x{clients}: {rows[-1]['achieved_rps']:>7.0f} req/s  "
                f"p99 {rows[-1]['ms_p99']:.1f} ms  generator {rows[-1]['generator_cpu_us']:.0f} "
                "µs CPU a request")  # fmt: skip
    return pd.DataFrame(rows)


def row(result: LoadResult, **labels: Any) -> dict[str, Any]:
    """The figures of one run: achieved rate, errors, enqueue and end-to-end percentiles."""
    s = result.summary()
    out: dict[str, Any] = dict(labels)
    out["requests"] = s["requests"]
    out["errors"] = s["requests"] - s["requests_ok"]
    window = s["send_seconds"]
    out["achieved_rps"] = round(s["requests_ok"] / window, 1) if window else math.nan
    for kind, prefix in (("enqueue", "ms"), ("end_to_end", "e2e_ms")):
        figures = s["latency_ms"].get(kind) or {}
        for q in QUANTILES:
            out[f"{prefix}_{q}"] = figures.get(q, math.nan)
    return out


def closed_sweep(
    api_url: str, redis_url: str, concurrencies: Iterable[int], duration: float,
    repeats: int = 1, log: Callable[[str], None] = print, token: str = "",
) -> Any:  # fmt: skip
    """Closed loops at rising client counts; one DataFrame row per run."""
    import pandas as pd

    rows = []
    for repeat in range(repeats):
        for clients in concurrencies:
            result = load(api_url, redis_url, loop="closed", concurrency=clients,
                          duration=duration, token=token)  # fmt: skip
            rows.append(row(result, loop="closed", clients=clients, offered_rps=math.nan,
                            repeat=repeat))  # fmt: skip
            log(f"closed x{clients:<4} {rows[-1]['achieved_rps']:>8.0f} req/s  "
                f"p99 {rows[-1]['ms_p99']:.1f} ms")  # fmt: skip
    return pd.DataFrame(rows)


def open_sweep(
    api_url: str, redis_url: str, rates: Iterable[float], duration: float, clients: int,
    repeats: int = 1, log: Callable[[str], None] = print, token: str = "",
) -> Any:  # fmt: skip
    """Open loops at each rate (requests per second) with up to ``clients`` in flight."""
    import pandas as pd

    rows = []
    for repeat in range(repeats):
        for rate in rates:
            result = load(api_url, redis_url, loop="open", concurrency=clients,
                          duration=duration, rate=rate, token=token)  # fmt: skip
            rows.append(row(result, loop="open", clients=clients, offered_rps=round(rate, 1),
                            repeat=repeat))  # fmt: skip
            log(f"open {rate:>8.0f}/s -> {rows[-1]['achieved_rps']:>8.0f} req/s  "
                f"p99 {rows[-1]['ms_p99']:.1f} ms")  # fmt: skip
    return pd.DataFrame(rows)


def rates_around(capacity: float, shares: Iterable[float]) -> list[float]:
    """Offered rates as shares of a measured capacity (so the sweep fits any machine)."""
    if capacity <= 0:
        raise ValueError("capacity must be positive")
    return [round(capacity * share, 1) for share in shares]


@contextlib.contextmanager
def stalled(pid: int, after: float, seconds: float) -> Iterator[threading.Thread]:
    """Freeze ``pid`` (SIGSTOP) ``after`` seconds into the block, for ``seconds``; it is
    always resumed (SIGCONT) by the time the block ends, even on error."""
    resume = threading.Event()

    def stall() -> None:
        if resume.wait(after):
            return  # the block ended before the stall was due
        os.kill(pid, signal.SIGSTOP)
        try:
            resume.wait(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=stall, name="stall", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        resume.set()  # a stall still due is skipped, one under way ends now
        thread.join()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def omission(
    api_url: str, redis_url: str, api_pid: int, *, rate: float, clients: int, duration: float,
    stall_at: float, stall_seconds: float, slow_ms: float = 100.0, token: str = "",
) -> tuple[dict[str, Any], Any]:  # fmt: skip
    """The same API stall under an open and a closed loop. Returns the HDR histograms to
    compare and a table of what each way of measuring recorded."""
    import pandas as pd

    with stalled(api_pid, stall_at, stall_seconds):
        opened = load(api_url, redis_url, loop="open", concurrency=clients, duration=duration,
                      rate=rate, token=token)  # fmt: skip
    with stalled(api_pid, stall_at, stall_seconds):
        closed = load(
            api_url, redis_url, loop="closed", concurrency=clients, duration=duration, token=token
        )
    curves = {
        "open loop, timed from the intended start (what users saw)": opened.histograms["enqueue"],
        "open loop, timed from the actual send (coordinated omission)":
            opened.histograms["service"],
        f"closed loop, {clients} clients (coordinated omission)": closed.histograms["enqueue"],
    }  # fmt: skip
    ok_open = [r for r in opened.samples.requests if r[4] == 202]
    ok_closed = [r for r in closed.samples.requests if r[4] == 202]
    true, omitted, closed_label = curves
    seconds = {
        true: [r[3] - r[1] for r in ok_open],
        omitted: [r[3] - r[2] for r in ok_open],
        closed_label: [r[3] - r[2] for r in ok_closed],
    }
    rows = []
    for label, hist in curves.items():
        rows.append({
            "measured as": label,
            "requests": hist.get_total_count(),
            f"slower than {slow_ms:g} ms": sum(1 for v in seconds[label] if v * 1000 > slow_ms),
            "p50_ms": hist.get_value_at_percentile(50) / 1000,
            "p99_ms": hist.get_value_at_percentile(99) / 1000,
            "p99.9_ms": hist.get_value_at_percentile(99.9) / 1000,
            "max_ms": hist.get_max_value() / 1000,
        })  # fmt: skip
    return curves, pd.DataFrame(rows)


def plot_knee(closed: Any, opened: Any, capacity: float) -> Any:
    """Latency percentiles against offered load (open loop) and against the throughput a
    closed loop reached, on one log scale."""
    import matplotlib.pyplot as plt

    from jobrunner.lab.charts import mean_with_range

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for q, colour in (("p50", "tab:blue"), ("p99", "tab:orange"), ("p99.9", "tab:red")):
        mean_with_range(left, opened.assign(q=q), "offered_rps", f"ms_{q}", "q", {q: colour})
    left.axvline(capacity, color="grey", linestyle="--", linewidth=1)
    left.annotate(" closed-loop capacity", (capacity, left.get_ylim()[0]), color="grey",
                  fontsize=8, rotation=90, va="bottom")  # fmt: skip
    left.set_yscale("log")
    left.set_xlabel("offered rate (requests per second, open loop)")
    left.set_ylabel("POST /jobs latency from intended start (ms)")
    left.set_title("open loop: latency explodes past the knee")
    left.legend(title="percentile", fontsize=8)
    for loop, frame, marker in (("open", opened, "o"), ("closed", closed, "s")):
        means = frame.groupby("offered_rps" if loop == "open" else "clients", sort=True)[
            ["achieved_rps", "ms_p99"]
        ].mean()
        right.plot(means["achieved_rps"], means["ms_p99"], marker=marker,
                   label=f"{loop} loop" + (" (points: client counts)" if loop == "closed"
                                           else " (points: offered rates)"))  # fmt: skip
    right.set_yscale("log")
    right.set_xlabel("throughput reached (requests per second)")
    right.set_ylabel("p99 latency (ms)")
    right.set_title("p99 against throughput: the closed loop never sees the cliff")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    return fig
