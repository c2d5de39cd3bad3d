"""Notebook 8: a burst of jobs drained live, with a worker added part-way.

``drain`` samples the queue a few times a second (depth, in flight, jobs finished, workers)
and redraws a three-panel figure in place: in Jupyter through one display handle, so the
picture moves; anywhere else (or with ``live=False``) only the final figure is drawn.
``slopes`` fits the drain rate before and after the new worker started.
"""

from __future__ import annotations

import importlib
import io
import threading
import time
from collections.abc import Callable
from typing import Any

from jobrunner.dev.stack import Stack
from jobrunner.keys import QueueKeys
from jobrunner.lab.figures import DPI, headless
from jobrunner.lab.running import track

RATE_WINDOW = 1.0  # seconds the throughput line averages over


class DrainSampler:
    """One row per call: depths, counters and the recent finishing rate of one queue."""

    def __init__(self, stack: Stack, queue: str = "default") -> None:
        self.stack = stack
        self.queue = queue
        self.keys = QueueKeys(queue)
        self.rows: list[dict[str, float]] = []
        self.started = time.monotonic()

    def sample(self) -> dict[str, float]:
        depth = self.stack.depth(self.queue)
        stats = self.stack.client.hgetall(self.keys.stats)
        row: dict[str, float] = {
            "t": time.monotonic() - self.started,
            "ready": depth["ready"],
            "scheduled": depth["scheduled"],
            "in_flight": depth["reserved"],
            "dead": depth["dead"],
            "processed": int(stats.get("processed", 0)),
            "enqueued": int(stats.get("enqueued", 0)),
            "workers": len(self.stack.worker_pids()),
        }
        row["finished"] = row["processed"] + row["dead"]
        row["rate"] = finishing_rate(self.rows, row)
        self.rows.append(row)
        return row


def finishing_rate(history: list[dict[str, float]], row: dict[str, float]) -> float:
    """Jobs finished per second over the last RATE_WINDOW seconds of samples (or since the
    previous sample, if that is older)."""
    window = [r for r in history if row["t"] - r["t"] <= RATE_WINDOW] or history[-1:] or [row]
    span = row["t"] - window[0]["t"]
    return (row["finished"] - window[0]["finished"]) / span if span > 0 else 0.0


def slopes(frame: Any, added_at: float | None, margin: float = 1.0) -> dict[str, float]:
    """Drain rate (jobs/s, least squares on jobs finished over time) while the queue had
    work, before and after ``added_at``; ``margin`` seconds around the change, the burst's
    arrival and the tail are left out."""
    import numpy as np

    busy = frame[(frame["ready"] > 0) & (frame["enqueued"] >= frame["enqueued"].max())]
    out: dict[str, float] = {}
    parts = {"before": busy, "after": busy.iloc[0:0]}
    if added_at is not None:
        parts = {
            "before": busy[busy["t"] < added_at],
            "after": busy[busy["t"] > added_at + margin],
        }
    for name, part in parts.items():
        if len(part) >= 3 and part["t"].iloc[-1] > part["t"].iloc[0]:
            out[name] = float(np.polyfit(part["t"], part["finished"], 1)[0])
    return out


def plot(frame: Any, added_at: float | None = None, fig: Any = None, title: str = "") -> Any:
    """Queue depth, jobs in flight and throughput over time, the new worker marked."""
    from matplotlib.figure import Figure

    fig = fig or Figure(figsize=(9, 6.5))
    fig.clear()
    depth, flight, rate = fig.subplots(3, 1, sharex=True)
    t = frame["t"]
    depth.plot(t, frame["ready"], label="ready (waiting)", color="tab:orange")
    depth.plot(t, frame["scheduled"], label="scheduled (retry back-off)", color="tab:purple")
    depth.plot(t, frame["dead"], label="dead", color="tab:red")
    depth.set_ylabel("jobs in the queue")
    flight.plot(t, frame["in_flight"], color="tab:blue", label="in flight (leased to a worker)")
    flight.set_ylabel("jobs in flight")
    rate.plot(t, frame["rate"], color="tab:green", label=f"finished per second ({RATE_WINDOW:g} s)")
    rate.set_ylabel("jobs/s")
    rate.set_xlabel("seconds since the burst was sent")
    if added_at is not None:
        for ax in (depth, flight, rate):
            ax.axvline(added_at, color="grey", linestyle="--", linewidth=1)
        rate.annotate(" +1 worker", (added_at, 0), color="grey", fontsize=8)
    for ax in (depth, flight, rate):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    depth.set_title(title or "a burst draining")
    fig.tight_layout()
    return fig


class LiveFigure:
    """Redraws a figure in place in Jupyter (as a PNG in one display slot, whatever the
    matplotlib backend); does nothing until ``final`` elsewhere."""

    def __init__(self, live: bool | None = None) -> None:
        from matplotlib.figure import Figure

        self.live = (not headless()) if live is None else live
        self.fig = Figure(figsize=(9, 6.5))
        self._handle: Any = None

    def _publish(self) -> None:
        display = importlib.import_module("IPython.display")
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=DPI)
        image = display.Image(data=buffer.getvalue(), format="png")
        if self._handle is None:
            self._handle = display.display(image, display_id=True)
        else:
            self._handle.update(image)

    def show(self, draw: Callable[[Any], None]) -> None:
        if self.live:
            draw(self.fig)
            self._publish()

    def final(self, draw: Callable[[Any], None]) -> Any:
        draw(self.fig)
        if self.live:
            self._publish()
        return self.fig


def drain(
    stack: Stack,
    send: Callable[[], None],
    total: int,
    *,
    add_worker_at: float = 0.4,
    refresh: float = 0.5,
    live: bool | None = None,
    timeout: float = 300.0,
    title: str = "",
    period: float = 0.1,
    on_added: Callable[[Stack], None] | None = None,
) -> tuple[Any, float | None, Any]:
    """Run ``send`` (which enqueues ``total`` jobs) in the background and watch the queue until
    they are all done or dead; one more worker starts once ``add_worker_at`` of them finished.
    Sampling (every ``period`` s) runs on its own thread, so a slow redraw delays no sample.
    ``on_added(stack)`` runs once the new worker is up (e.g. to have Prometheus scrape it).
    Returns (samples as a DataFrame, when the worker was added, the final figure)."""
    import pandas as pd

    sampler = DrainSampler(stack)
    view = LiveFigure(live)
    state: dict[str, Any] = {"added_at": None, "adder": None, "error": None}
    finished = threading.Event()

    def add_worker() -> None:
        stack.add_worker()
        if on_added is not None:
            on_added(stack)

    def watch() -> None:
        try:
            while True:
                row = sampler.sample()
                if state["adder"] is None and row["finished"] >= add_worker_at * total:
                    state["added_at"] = row["t"]
                    adder = threading.Thread(target=add_worker, name="add-worker")
                    state["adder"] = adder
                    adder.start()  # it waits for the heartbeat; sampling goes on
                if row["finished"] >= total:
                    return
                if row["t"] > timeout:
                    raise TimeoutError(f"{total - row['finished']:.0f} jobs unfinished")
                time.sleep(period)  # the sampling period
        except BaseException as exc:  # re-raised by the caller
            state["error"] = exc
        finally:
            finished.set()

    sender = threading.Thread(target=send, name="send-burst")
    watcher = threading.Thread(target=watch, name="sample-queue")
    watcher.start()
    sender.start()
    try:
        while not finished.wait(refresh):
            view.show(_drawer(pd.DataFrame(list(sampler.rows)), state["added_at"], title))
    finally:
        watcher.join()
        sender.join()
        if state["adder"] is not None:
            state["adder"].join()
            track(stack)
    if state["error"] is not None:
        raise state["error"]
    frame = pd.DataFrame(sampler.rows)
    fig = view.final(_drawer(frame, state["added_at"], title))
    return frame, state["added_at"], fig


def _drawer(frame: Any, added_at: float | None, title: str) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        plot(frame, added_at, fig, title)

    return draw
