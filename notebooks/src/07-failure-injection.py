# %% [markdown]
# # 7. Failure injection
#
# **The question.** Workers crash (SIGKILL: the OOM killer, a lost host, a deploy that does not
# wait) and Redis restarts while jobs are flowing. Which jobs that the system *accepted* are
# never run? Which run twice?
#
# **The setup.** `jobrunner chaos` (`jobrunner.lab.chaos.runner.run_chaos`) on a stack of its own:
# a producer sends probe jobs at a steady rate (each works `job_ms` ms); every `kill_every`
# seconds a random worker is frozen, the jobs it holds are counted, and it is SIGKILLed, then a
# new worker replaces it (as a supervisor would); every `restart_redis_every` seconds Redis is
# killed and restarted on its data (append-only file, fsync every second) after
# `redis_down_for` s. Then the load stops, the system goes quiet and a **ledger kept outside
# Redis** is read back: the producer wrote down what each enqueue was told (acknowledged, or
# unknown when Redis was down), and every handler run wrote a start and an end line. From it:
#
# - **lost**: acknowledged, yet never completed (nor dead);
# - **interrupted**: handler runs that started and never ended (their worker was killed);
# - **duplicates**: extra successful runs of a job that already completed;
# - **phantoms**: jobs that ran without ever being sent.
#
# The same scenario runs on two queues:
#
# - the **naive** one (`jobrunner.lab.naive`): the textbook `LPUSH` / `BRPOP` list. `BRPOP`
#   removes a job from Redis before its handler runs, so from then on the only copy is in the
#   worker's memory;
# - the **reliable** one (`jobrunner.queue.ReliableQueue`): reserving a job leases it (its id
#   stays in Redis, in a reserved set, with a deadline, renewed while the worker lives); only
#   the ack removes it, and a job whose lease expires is given to another worker.

# %% tags=["parameters"]
results_dir = "../results"
duration = 15.0  # seconds of load per run
rate = 100.0  # jobs per second
job_ms = 50.0  # how long each job works
workers = 2  # asyncio worker processes (4 jobs at once each)
kill_every = 1.5  # seconds between SIGKILLs of a random worker
restart_redis_every = 5.0  # seconds between Redis restarts
redis_down_for = 1.0  # seconds Redis stays down each time
lease = 2.0  # seconds a reserved job stays leased without renewal
repeats = 3  # runs on each queue (alternating naive, reliable)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import psutil

from jobrunner.lab.chaos.runner import ChaosConfig
from jobrunner.lab import failures, figures, running, stats

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 16)
print(f"{psutil.cpu_count()} CPUs; load average now {psutil.getloadavg()[0]:.1f}")
config = ChaosConfig(workers=workers, duration=duration, rate=rate, job_ms=job_ms,
                     kill_every=kill_every, restart_redis_every=restart_redis_every,
                     redis_down_for=redis_down_for, lease=lease, appendonly=True)  # fmt: skip
config

# %% [markdown]
# ## The difference, by hand
#
# One job, one worker that dies after taking it, on each queue, with nothing in between: a
# private Redis, the queue's own calls, and the keys read back.

# %%
import asyncio

import redis

from jobrunner.connection import async_redis
from jobrunner.dev.redis_server import RedisServer
from jobrunner.queue import ReliableQueue


async def take_and_die(url):
    raw = redis.Redis.from_url(url)
    raw.lpush("naive:jobs", "job-1")  # the textbook queue: LPUSH ...
    raw.brpop(["naive:jobs"], timeout=1)  # ... BRPOP: the job is out of Redis, then we "die"
    naive_left = raw.llen("naive:jobs")
    client = async_redis(url)
    queue = ReliableQueue(client)
    job_id = await queue.enqueue("chaos.probe", {"probe": "p-by-hand", "ms": 1})
    [held] = await queue.reserve("default", 1, lease=0.2)  # leased for 0.2 s; we "die"
    during = (await queue.get_job(job_id)).state.value
    deadline = asyncio.get_running_loop().time() + 5
    while (await queue.reap("default"))[0] == 0:  # what any live worker's reaper does
        assert asyncio.get_running_loop().time() < deadline, "the lease never expired"
        await asyncio.sleep(0.05)
    after = (await queue.get_job(job_id)).state.value
    await queue.aclose()
    await client.aclose()
    raw.close()
    return {"naive: jobs left in Redis after the crash": naive_left,
            "reliable: state while leased": during, "reliable: state after the reaper": after}


with RedisServer() as server:
    by_hand = await take_and_die(server.url)
by_hand

# %% [markdown]
# The naive queue has nothing left to give anyone: the job existed only in the dead worker's
# memory. The reliable one kept the job's id in the reserved set with a deadline; once it
# passed, the reaper (every worker runs one) put it back in `ready`, and the next reserve runs
# it again: the job is not lost, and may run twice (that is at-least-once).
#
# **Try this.** Call `await queue.extend("default", [(job_id, held.token)], 0.2)` in the loop
# before the lease runs out, as a live worker's heartbeat does: expected, the reaper never
# takes it back (and the cell's own deadline fails it after 5 s).

# %% [markdown]
# ## Run it on both queues
#
# Each run prints its faults as they strike (with the jobs reserved at that instant: always 0
# on the naive queue, which keeps no record of what its workers hold) and ends with the
# ledger's counts line.

# %%
with running.watching():
    ledger = failures.chaos_runs(config, repeats=repeats)
ledger

# %% [markdown]
# ## The ledger's counts
#
# Mean over the runs of each queue, the lowest and highest run in brackets:

# %%
columns = ["sent", "acknowledged", "completed", "lost", "interrupted", "duplicates", "dead",
           "unknown", "unknown_completed", "phantoms", "faults", "in_flight_at_faults"]  # fmt: skip
stats.table(ledger, "queue", dict.fromkeys(columns, 0)).T

# %%
fig = failures.plot_ledger(ledger)
path = figures.save(fig, results_dir, "07-ledger")
plt.show()

# %% [markdown]
# **The naive queue loses jobs; the reliable one loses none.** Every SIGKILL on the naive
# queue takes with it the jobs its worker had taken off the list: those it was running (the
# interrupted runs) and a few more it had popped and not started yet. They are no longer in
# Redis and nothing says they ever existed, so they never run. The reliable queue
# had the same kills, and they cut as many runs short; but those jobs were still in the
# reserved set, their leases ran out after `lease` seconds, and another worker ran them again,
# from the start.
#
# **Running twice is the price (at-least-once delivery).** Each interrupted job ran again: its
# work, up to the kill, was done twice. A job can also run *to the end* twice: if its worker
# dies after the handler finished but before the ack reached Redis, the lease expires just the
# same and the job runs again, and the ledger has two successful runs of it (duplicates).
# Acks are sent in batches by a background task, and while Redis is down the completions wait
# in the worker, retried with a growing delay; so it is the kills that land just after a Redis
# restart that make most duplicates (in our trial runs, kills alone or restarts alone made
# none). Both are bounded by the jobs in flight when the faults struck (right panel), and both
# are why a handler must be idempotent (or deduplicate by job id) when running twice matters.
# The naive queue has no duplicates for the same reason it loses jobs: nothing is ever
# delivered again.
#
# **Redis restarts.** With the append-only file, a restarted Redis comes back with what it had
# acknowledged, on both queues, and the workers reconnect by themselves. While it is down, the
# producer's enqueues fail: those are the *unknown* answers (the enqueue may or may not have
# been written), not losses; `unknown_completed` counts the ones that had been written after
# all and ran. Without persistence a restart loses every queued job, on either queue: the
# reliable queue's guarantees assume a Redis that keeps what it acknowledged.

# %% [markdown]
# ## The claims, checked
#
# Each claim the prose above makes, as an assertion on this run's data: rerun on other code or
# another machine, a claim the data no longer support fails here instead of misleading.

# %%
assert by_hand["naive: jobs left in Redis after the crash"] == 0, "BRPOP left the job in Redis?"
assert by_hand["reliable: state after the reaper"] == "ready", "the reaper did not return it"
by_queue = ledger.groupby("queue")
assert by_queue["lost"].max()["reliable"] == 0, "the reliable queue lost an acknowledged job"
assert ledger["phantoms"].max() == 0, "a job ran that nobody enqueued"
reliable = ledger[ledger["queue"] == "reliable"]
assert (reliable["duplicates"] <= reliable["in_flight_at_faults"]).all(), \
    "more duplicates than jobs held at the faults"  # fmt: skip
if config.duration >= 10:  # the negative control needs faults to hit jobs in flight
    assert by_queue["lost"].min()["naive"] > 0, "the naive queue lost nothing: the faults missed"
print("claims hold:", dict(by_queue["lost"].sum()), "lost in all")

# %%
print(f"{running.check_no_strays()} processes checked: none left running")

# %% [markdown]
# ## What it teaches
#
# - A queue that removes a job when it hands it out (`BRPOP`, or `RPOPLPUSH` with nothing that
#   returns what a dead consumer held) loses whatever a crashed consumer held. Lease it
#   instead, and only forget it on the ack.
# - Leases give at-least-once delivery, never exactly-once: a crash between the work and the
#   ack runs the job again. Make handlers idempotent.
# - Count outside the system under test. The ledger is written by the producer and the handlers
#   to files of their own, so it sees what Redis forgot; a test that asked Redis how many jobs
#   it lost would be asking the one witness that cannot know.
#
# **Noise.** Which worker is killed, and what it holds at that instant, is random: the counts
# move between runs (the brackets), the conclusions (lost > 0 on naive, 0 on reliable,
# duplicates within the jobs in flight) do not.
#
# **Try next.** Turn persistence off (`ChaosConfig(appendonly=False)`) and watch the reliable
# queue lose the jobs queued when Redis died; pause a worker instead of killing it
# (`pause_every`, `pause_for` longer than `lease`) and see its jobs run twice while it is still
# alive; go through the API (`via="api"`) and see the 503s during the Redis outage; run
# `jobrunner chaos --help` for the command-line version.
