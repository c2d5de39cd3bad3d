"""Notebook 1, a tour of a running stack: talk to the API, follow jobs through their states,
read ``/metrics`` as a table, and draw each job's life as a timeline."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

FINAL_STATES = frozenset({"done", "dead"})
STATE_COLOURS = {
    "scheduled": "tab:purple",
    "ready": "tab:orange",
    "reserved": "tab:blue",
    "done": "tab:green",
    "dead": "tab:red",
}


def call(
    url: str, method: str = "GET", body: Any = None, timeout: float = 10.0, token: str = ""
) -> Any:
    """One JSON request with the API token; returns ``(status, decoded body)`` for any status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers(token))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def headers(token: str) -> dict[str, str]:
    """JSON, and ``Authorization: Bearer <token>`` (``stack.api_token``) when there is one."""
    out = {"content-type": "application/json"}
    if token:
        out["authorization"] = f"Bearer {token}"
    return out


def follow(
    api_url: str, ids: Iterable[str], timeout: float = 30.0, interval: float = 0.02,
    token: str = "",
) -> Any:  # fmt: skip
    """Poll ``GET /jobs/{id}`` for each job until all are done or dead; returns a DataFrame of
    every state seen (t seconds since the first poll, id, state, attempts, last error)."""
    import pandas as pd

    pending = list(ids)
    rows: list[dict[str, Any]] = []
    last: dict[str, tuple[str, int]] = {}
    started = time.monotonic()
    while pending:
        t = time.monotonic() - started
        for job_id in list(pending):
            status, view = call(f"{api_url}/jobs/{job_id}", token=token)
            if status != 200:
                raise RuntimeError(f"GET /jobs/{job_id} answered {status}: {view}")
            state, attempts = view["state"], int(view.get("attempts") or 0)
            if last.get(job_id) != (state, attempts):
                last[job_id] = (state, attempts)
                rows.append({"t": t, "id": job_id, "state": state, "attempts": attempts,
                             "error": view.get("last_error")})  # fmt: skip
            if state in FINAL_STATES:
                pending.remove(job_id)
        if pending and t > timeout:
            raise TimeoutError(f"jobs not finished after {timeout}s: {pending}")
        time.sleep(interval)  # the polling period: each poll is one GET per pending job
    return pd.DataFrame(rows, columns=["t", "id", "state", "attempts", "error"])


def segments(events: Any, final_span: float | None = None) -> Any:
    """Per job, (state, start, duration) spans from ``follow``'s events; the final state gets
    a short span (default 2 % of the time shown) so it shows without filling the line."""
    import pandas as pd

    rows = []
    if final_span is None:
        final_span = max(0.02 * float(events["t"].max()), 0.005)
    for job_id, group in events.groupby("id", sort=False):
        times = group["t"].tolist()
        states = group["state"].tolist()
        for i, state in enumerate(states):
            start = times[i]
            stop = times[i + 1] if i + 1 < len(times) else start + final_span
            rows.append({"id": job_id, "state": state, "start": start, "duration": stop - start})
    return pd.DataFrame(rows, columns=["id", "state", "start", "duration"])


def plot_lives(events: Any, labels: dict[str, str], ax: Any = None) -> Any:
    """A timeline per job: one coloured bar per state, in the order the jobs were given."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    spans = segments(events)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.6 * len(labels) + 1.5))
    order = list(labels)
    for row in spans.itertuples():
        y = order.index(row.id)
        ax.broken_barh([(row.start, row.duration)], (y - 0.35, 0.7),
                       color=STATE_COLOURS.get(row.state, "grey"))  # fmt: skip
    ax.set_yticks(range(len(order)), [labels[i] for i in order])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the jobs were enqueued (as seen by polling GET /jobs/{id})")
    ax.set_title("a job's life: the state its record is in, over time")
    ax.legend(handles=[Patch(color=c, label=s) for s, c in STATE_COLOURS.items()],
              fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    return ax


def metrics_frame(text: str, prefixes: tuple[str, ...] = ("jobs_", "queue_", "job_")) -> Any:
    """Prometheus text -> DataFrame (metric, labels, value), only samples whose name starts
    with one of ``prefixes`` (the job system's own metrics, not the process collector's)."""
    import pandas as pd

    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefixes) and not sample.name.endswith("_created"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                rows.append({"metric": sample.name, "labels": labels, "value": sample.value})
    return pd.DataFrame(rows, columns=["metric", "labels", "value"])


def fetch_text(url: str, timeout: float = 10.0, token: str = "") -> str:
    request = urllib.request.Request(url, headers=headers(token))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()
