"""The history notebook's helpers: a scratch database, a day of synthetic traffic written
through the archive's own write path, and the history read back as a DataFrame.

Also the tests' and benchmarks' scratch database (``scratch_database``): one of their own on a
PostgreSQL server, created empty and dropped after, connections and all.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg

from jobrunner.archive.store import HistoryStore, Incoming

SERVER = os.environ.get("JOBRUNNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
DAY_MS = 86_400_000
# type -> (share of the traffic, median run time in ms, share that dies, its error)
PROFILES = {
    "email": (0.70, 80.0, 0.03, "SMTPServerDisconnected: timed out after 30 s"),
    "resize_image": (0.25, 400.0, 0.01, "PIL.UnidentifiedImageError: cannot identify image"),
    "report": (0.05, 3000.0, 0.005, "psycopg.errors.QueryCanceled: statement timeout"),
}


@contextmanager
def scratch_database(server: str = SERVER, prefix: str = "jr_test") -> Iterator[str]:
    """The URL of a new, empty database ``<prefix>_<random>``; dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    def admin(sql: str) -> None:
        with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load(hour: float) -> float:
    """The day's load, 0 to 1: quiet at night, a peak at 11:00 and a smaller one at 15:00."""
    return (
        0.15 + 0.75 * math.exp(-((hour - 11) ** 2) / 4) + 0.45 * math.exp(-((hour - 15) ** 2) / 3)
    )


def synthetic_day(jobs: int, seed: int = 9, start_ms: int = 0) -> list[Incoming]:
    """``jobs`` jobs over 24 hours from ``start_ms``, arriving as ``load`` says; each waits in
    the queue as an M/M/1 queue at that load would (mean wait load/(1 - load) x 50 ms), then
    runs a lognormal time around its type's median."""
    rng = random.Random(seed)
    types = list(PROFILES)
    weights = [PROFILES[t][0] for t in types]
    rows: list[Incoming] = []
    while len(rows) < jobs:
        at = rng.random() * 24
        if rng.random() > load(at):  # thinning: arrivals follow the load curve
            continue
        kind = rng.choices(types, weights)[0]
        _, median, dies, error = PROFILES[kind]
        rho = min(load(at), 0.95)
        wait = rng.expovariate(1 / (50 * rho / (1 - rho)))
        run = median * math.exp(rng.gauss(0, 0.5))
        enqueued = start_ms + int(at * 3_600_000)
        started = enqueued + int(wait)
        dead = rng.random() < dies
        rows.append(Incoming(
            id=f"{kind}-{len(rows)}", queue="default", type=kind,
            state="dead" if dead else "done", attempts=4 if dead else 1,
            error=error if dead else None, payload='{"synthetic": true}', result=None,
            enqueued_ms=enqueued, started_ms=started, finished_ms=started + int(run),
        ))  # fmt: skip
    return rows


def write(pg_url: str, rows: list[Incoming], batch: int = 5000) -> None:
    """Through ``HistoryStore.write``: COPY and the upsert, as the archiver writes. Run on a
    thread of its own, so that it works where an event loop already runs (a notebook)."""

    async def go() -> None:
        async with await HistoryStore.connect(pg_url) as store:
            for i in range(0, len(rows), batch):
                await store.write(rows[i : i + batch])

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


def read(pg_url: str, sql: str, *params: Any) -> Any:
    """A query's rows as a pandas DataFrame (pandas is the lab's; this module loads it late)."""
    import pandas as pd

    with psycopg.connect(pg_url) as conn:
        cur = conn.execute(sql.encode(), params)
        columns = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)
