"""The job history's costs, in one run: how fast the archive takes rows, and what archiving
costs the workers' drain.

    python -m bench.archive_rate [--rows 200000] [--jobs 20000] [--rounds 5]

* write: ``HistoryStore.write`` of ``--rows`` synthetic rows in batches of 5,000 (COPY into a
  temporary table, then INSERT ... ON CONFLICT), into a scratch database on the PostgreSQL at
  127.0.0.1:5432 (dropped after): rows/s. Goal: >= 20,000.
* archiver: the same number of entries laid out on a history stream as the terminal scripts
  write them (not timed), then an ``Archiver`` drains it: XREADGROUP, decode, COPY, COMMIT,
  XACK + XDEL, timed until the stream is empty: rows/s end to end.
* drain: three asyncio workers, each on a private Redis of its own: history off; history on
  (``JOBRUNNER_HISTORY``) with nobody reading it; history on with ``jobrunner archiver``
  running. Round by round and alternating, ``--jobs`` noop jobs are parked and handed over
  (bench/parked.py) and the drain timed. Goal: with the archiver, within 10 % of history off.

Writes ``results/archive.json`` and ``results/archive.md`` with the commit and load average.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

from bench.parked import ROOT, drain_seconds, head_commit, park, worker_process
from jobrunner.archive.archiver import Archiver
from jobrunner.archive.store import HistoryStore, Incoming
from jobrunner.dev.redis_server import RedisServer
from jobrunner.job import Job, encode_job
from jobrunner.keys import QueueKeys
from jobrunner.lab.history import scratch_database

BATCH = 5000
HISTORY_BOUND = 1_000_000
SIDES = ("history off", "history on, no archiver", "history on, archiver running")


def synthetic(count: int) -> list[Incoming]:
    """Rows like a day's traffic: three types, a small payload, one in 20 dead with an error."""
    now = int(time.time() * 1000)
    types = ("email", "resize_image", "noop")
    return [
        Incoming(id=f"bench-{i}", queue="default", type=types[i % 3],
                 state="dead" if i % 20 == 0 else "done", attempts=1 + (i % 20 == 0) * 3,
                 error="SMTPServerDisconnected: timed out after 30 s" if i % 20 == 0 else None,
                 payload=f'{{"to": "user{i}@example.com", "n": {i}}}', result=None,
                 enqueued_ms=now - 900, started_ms=now - 400, finished_ms=now - i % 1000)
        for i in range(count)
    ]  # fmt: skip


async def write_rate(pg_url: str, rows: list[Incoming]) -> dict[str, float]:
    async with await HistoryStore.connect(pg_url) as store:
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            await store.write(rows[i : i + BATCH])
        seconds = time.perf_counter() - started
        replay_started = time.perf_counter()
        await store.write(rows[:BATCH])  # a batch replayed after a crash: written before
        replay = time.perf_counter() - replay_started
    rate = round(len(rows) / seconds)
    return {"rows": len(rows), "seconds": round(seconds, 3), "rows_per_s": rate,
            "replayed_batch_s": round(replay, 4)}  # fmt: skip


def lay_out_stream(client: redis.Redis, count: int) -> None:
    """Entries as lua/_history.lua writes them, straight onto the stream (not timed)."""
    stream = QueueKeys("default").history
    client.sadd("jr:queues", "default")
    now = int(time.time() * 1000)
    for start in range(0, count, 10_000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(count, start + 10_000)):
                spec = encode_job(Job(id=f"s{i}", type="email", payload={"to": f"u{i}@x"}))
                entry = {"id": f"s{i}", "s": "done", "fi": now, "d": spec, "a": 1,
                         "eq": now - 900, "st": now - 400, "r": '{"sent":true}'}  # fmt: skip
                pipe.xadd(stream, entry)  # type: ignore[arg-type]
            pipe.execute()


async def archiver_rate(redis_url: str, pg_url: str, count: int) -> dict[str, float]:
    client = AsyncRedis.from_url(redis_url)
    archiver = Archiver(client, pg_url, consumer="bench", batch=BATCH, block=0.05)
    stream = QueueKeys("default").history
    task = asyncio.create_task(archiver.run())
    started = time.perf_counter()
    # polled every 5 ms: the poll period bounds the timing error
    while await client.xlen(stream) > 0 or archiver.counts["entries"] < count:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - started
    archiver.stop()
    await task
    await client.aclose()
    return {"rows": count, "seconds": round(seconds, 3), "rows_per_s": round(count / seconds),
            "batches": archiver.counts["batches"]}  # fmt: skip


def drains(jobs: int, rounds: int, stack: ExitStack, pg_url: str) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    clients = {}
    for side in SIDES:
        server = stack.enter_context(RedisServer())
        env = {"JOBRUNNER_HISTORY": str(HISTORY_BOUND)} if side != "history off" else {}
        stack.enter_context(worker_process(server.url, extra_env=env))
        if side == SIDES[2]:
            archiver = subprocess.Popen(
                [sys.executable, "-m", "jobrunner.cli", "archiver", "--redis-url", server.url,
                 "--pg-url", pg_url, "--log-level", "warning"],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(archiver.wait, 30)
            stack.callback(archiver.terminate)
        clients[side] = redis.Redis.from_url(server.url)
    for _ in range(rounds):
        for side, client in clients.items():
            park(client, "noop", {}, jobs)
            rates[side].append(jobs / drain_seconds(client, jobs))
    return rates


def markdown(report: dict[str, Any]) -> str:
    w, a, d = report["write"], report["archiver"], report["drain"]
    lines = [
        "# Job history: archive rate and drain cost",
        "",
        f"Commit {report['commit']}, {report['date']}, load average "
        f"{', '.join(f'{x:.2f}' for x in report['load_average'])} (2 shared cores); "
        "`python -m bench.archive_rate`.",
        "",
        "| measure | figure | goal |",
        "|---|---|---|",
        f"| COPY + upsert, batches of {BATCH:,} | {w['rows_per_s']:,} rows/s | >= 20,000 |",
        f"| archiver end to end (stream to table) | {a['rows_per_s']:,} rows/s | |",
    ]
    for side in SIDES:
        lines.append(f"| drain, {side} | {d[side]['median_jobs_per_s']:,} jobs/s | |")
    lines += [
        f"| drain with archiver / history off | {d['ratio_archiver_vs_off']:.3f} | >= 0.90 |",
        f"| drain with history, no archiver / off | {d['ratio_history_vs_off']:.3f} | |",
        "",
        f"Drain: median of {report['rounds']} alternating rounds of {report['jobs']:,} noop "
        "jobs, one asyncio worker per side, each on its own Redis.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        write = asyncio.run(write_rate(stack.enter_context(scratch_database()),
                                       synthetic(args.rows)))  # fmt: skip
        print("write", write, flush=True)
        server = stack.enter_context(RedisServer())
        client = redis.Redis.from_url(server.url)
        lay_out_stream(client, args.rows)
        client.close()
        archived = asyncio.run(archiver_rate(server.url, stack.enter_context(scratch_database()),
                                             args.rows))  # fmt: skip
        print("archiver", archived, flush=True)
        rates = drains(args.jobs, args.rounds, stack, stack.enter_context(scratch_database()))
    medians = {side: round(statistics.median(r)) for side, r in rates.items()}
    drain: dict[str, Any] = {
        side: {"median_jobs_per_s": medians[side], "rounds": [round(x) for x in rates[side]]}
        for side in SIDES
    }
    drain["ratio_archiver_vs_off"] = round(medians[SIDES[2]] / medians[SIDES[0]], 3)
    drain["ratio_history_vs_off"] = round(medians[SIDES[1]] / medians[SIDES[0]], 3)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": head_commit(),
        "load_average": [round(x, 2) for x in os.getloadavg()], "rows": args.rows,
        "jobs": args.jobs, "rounds": args.rounds, "write": write, "archiver": archived,
        "drain": drain,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "archive.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "archive.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
