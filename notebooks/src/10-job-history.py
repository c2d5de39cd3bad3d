# %% [markdown]
# # 10. Job history with pandas
#
# **The question.** Once finished jobs are archived in PostgreSQL (docs/history.md), what can
# a day of them tell us? Here: how long each job type waited and ran, hour by hour, and what
# the dead ones died of.
#
# **The setup.** A database of its own on the PostgreSQL at 127.0.0.1:5432, dropped at the
# end. A day of synthetic traffic (`jobs` jobs: 70 % e-mails around 80 ms, 25 % image resizes
# around 400 ms, 5 % reports around 3 s) arrives with a morning and an afternoon peak, and each
# job waits in the queue as an M/M/1 queue at that hour's load would. The rows go in through the
# archiver's own write path (`HistoryStore.write`: COPY, then the idempotent upsert), and come
# back with one SQL query into pandas.

# %% tags=["parameters"]
results_dir = "../results"
jobs = 200_000  # a day's traffic
pg_server = "postgresql://postgres@127.0.0.1:5432"

# %%
import time
from contextlib import ExitStack

import matplotlib.pyplot as plt
import pandas as pd

from jobrunner.lab import figures, history

day_start = (int(time.time()) // 86_400 - 1) * 86_400_000  # yesterday, 00:00 UTC
rows = history.synthetic_day(jobs, start_ms=day_start)
cleanup = ExitStack()  # closed in the last code cell: the scratch database is dropped
pg_url = cleanup.enter_context(history.scratch_database(pg_server, prefix="jr_lab"))
started = time.perf_counter()
history.write(pg_url, rows)
print(f"{len(rows):,} jobs written in {time.perf_counter() - started:.1f} s")

# %% [markdown]
# ## The day, read back
#
# One query: each job's type, state, hour, time in the queue and run time (milliseconds).

# %%
day = history.read(pg_url, """
    SELECT type, state, error,
           extract(hour FROM finished_at AT TIME ZONE 'UTC')::int AS hour,
           extract(epoch FROM started_at - enqueued_at) * 1000 AS wait_ms,
           extract(epoch FROM finished_at - started_at) * 1000 AS run_ms,
           extract(epoch FROM finished_at - enqueued_at) * 1000 AS latency_ms
    FROM job_history
    WHERE finished_at >= to_timestamp(%s) AND finished_at < to_timestamp(%s)
""", day_start / 1000, day_start / 1000 + 86_400)  # fmt: skip
day[["wait_ms", "run_ms", "latency_ms"]] = day[["wait_ms", "run_ms", "latency_ms"]].astype(float)
day.groupby("type")["latency_ms"].describe(percentiles=[0.5, 0.95, 0.99]).round(1)

# %% [markdown]
# ## Latency by type, hour by hour
#
# Latency (enqueued to finished) is the queue wait plus the run. The run does not depend on the
# hour; the wait does, and it grows much faster than the load near the peak.

# %%
by_hour = (day.groupby(["type", "hour"])["latency_ms"]
           .quantile([0.5, 0.95]).unstack().rename(columns={0.5: "p50", 0.95: "p95"}))  # fmt: skip
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharex=True)
for kind, frame in by_hour.groupby(level="type"):
    hours = frame.index.get_level_values("hour")
    axes[0].plot(hours, frame["p50"], marker="o", label=kind)
    axes[1].plot(hours, frame["p95"], marker="o", label=kind)
for ax, name in zip(axes, ["median", "95th percentile"], strict=True):
    ax.set(title=f"latency, {name}", xlabel="hour (UTC)", ylabel="ms", yscale="log")
    ax.grid(alpha=0.3)
axes[0].legend()
fig.tight_layout()
path = figures.save(fig, results_dir, "10-history-latency")

# %%
waits = day.groupby("hour")["wait_ms"].quantile(0.95).rename("p95 wait, ms").to_frame()
waits["jobs"] = day.groupby("hour").size()
waits.T.round(0)

# %% [markdown]
# ## What the dead ones died of
#
# The same question through the full-text index (`GET /history?error=...` runs this one).

# %%
dead = history.read(pg_url, """
    SELECT type, error, count(*) AS jobs
    FROM job_history
    WHERE state = 'dead' AND error_search @@ websearch_to_tsquery('simple', %s)
    GROUP BY type, error ORDER BY jobs DESC
""", "timed out or timeout or cannot")  # fmt: skip
cleanup.close()
dead

# %% [markdown]
# ## Claims, checked
#
# These fail when the data no longer supports the text: the run time is flat across the day,
# the latency is not, and the 95th percentile moves more than the median.

# %%
counted = day.groupby(["type", "hour"])["run_ms"]
runs = counted.median().where(counted.size() >= 50).unstack()  # an hour with few jobs is noise
busiest = int(waits["jobs"].idxmax())
quietest = int(waits["jobs"].idxmin())
emails = by_hour.loc["email"]
assert (runs.max(axis=1) / runs.min(axis=1)).max() < 1.5, "a type's run time moved with the hour"
assert runs.notna().sum().sum() > 0, "no hour had enough jobs to judge"
assert emails.loc[busiest, "p50"] > 2 * emails.loc[quietest, "p50"], "the peak did not slow it"
assert (emails.loc[busiest, "p95"] / emails.loc[quietest, "p95"]
        > emails.loc[busiest, "p50"] / emails.loc[quietest, "p50"]), "the tail moved less"  # fmt: skip
assert len(dead) > 0, "the full-text search found none of the dead"
print(f"busiest hour {busiest}, quietest {quietest}: e-mail p50 "
      f"{emails.loc[quietest, 'p50']:.0f} -> {emails.loc[busiest, 'p50']:.0f} ms")

# %% [markdown]
# ## What it teaches
#
# - The run time of a type is the same all day; its latency is not. At the peak the queue wait
#   (here at most 95 % load) outgrows the e-mails' run time several times over, so a latency
#   target is a statement about the busiest hour, not the average one.
# - The 95th percentile moves much more than the median: waits are long-tailed at high load.
# - With the history in PostgreSQL these are one SQL query and a pandas `groupby` away, for
#   any past day, long after Redis forgot the jobs.
#
# **Caveat.** The traffic is synthetic (a model of waits, not a measured queue): the notebook
# shows the queries and the shape, not this machine's figures.
