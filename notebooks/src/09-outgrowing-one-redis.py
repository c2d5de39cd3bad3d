# %% [markdown]
# # 9. Outgrowing one Redis
#
# **The question.** Redis runs commands on one core. How many jobs a second can one queue move
# before that core is full, and what do shards on a Redis Cluster change?
#
# **The setup.** One queue on one Redis, against the same queue spread over `shards` shards on
# a Redis Cluster of 3 masters (each with a replica), all on this machine. Each gets the same
# work: `jobs` no-op jobs enqueued in batches of 100 by 8 callers, then drained by `workers`
# asyncio workers. We measure what a job costs each Redis node, from the node's own CPU time.
#
# **Read the rates with care.** On a laptop or a 2-core box, every Redis node, the producer and
# the workers share the same few cores: the cluster cannot be faster there. What carries over
# to a real deployment (a core per Redis node) is the *CPU a job costs each node*.

# %% tags=["parameters"]
results_dir = "../results"
jobs = 20_000  # per setup and round
shards = 3
workers = 2
rounds = 3  # the setups alternate; each figure is the median of its rounds
reshard_jobs = 10_000  # drained while their queue's slot moves to another master

# %%
import os
import subprocess

print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; commit",
      subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                     text=True).stdout.strip())  # fmt: skip

# %% [markdown]
# ## One queue, one slot, one node
#
# Every key of a queue carries the queue's name as a *hash tag* (`jr:{emails}:ready`): Redis
# Cluster hashes only the part between the braces, so all of a queue's keys land in one of the
# 16,384 slots, and each transition's Lua script may touch them together. The price: one queue
# lives on one master. A sharded queue is several queues (`emails`, `emails~1`, ...): several
# tags, several slots, and so, usually, several masters.

# %%
from redis.crc import key_slot

from jobrunner.keys import QueueKeys

for name in ["emails", "emails~1", "emails~2", "reports"]:
    keys = QueueKeys(name)
    slots = {key_slot(k.encode()) for k in (keys.ready, keys.reserved, keys.stats, keys.job("x"))}
    print(f"{name:<10} keys in slot(s) {sorted(slots)}")

# %% [markdown]
# A job goes to shard `crc32(its id) mod N`: fresh ids spread evenly, and a chosen id (or an
# idempotency key) always lands on the same shard, so "does this job exist already?" is still
# one question to one place.

# %%
from collections import Counter

from jobrunner.calls import NewJob
from jobrunner.job import make_job
from jobrunner.shards import place

spread = Counter(place(NewJob(make_job("noop", {}, queue="emails")), {"emails": shards}).job.queue
                 for _ in range(3000))  # fmt: skip
spread

# %% [markdown]
# ## Measure it
#
# `jobrunner.lab.scaling.single` and `.sharded` start the Redis (or the cluster), enqueue,
# drain with worker processes, and read each node's CPU time from `/proc` before and after.
# Progress prints as each setup finishes.

# %%
import time

from jobrunner.lab import running
from jobrunner.lab.progress import off_the_loop
from jobrunner.lab.scaling import median_of, redis_bound, sharded, single

ones, manys = [], []
began = time.monotonic()
with running.watching():
    for n in range(rounds):
        ones.append(off_the_loop(single, jobs, workers))
        print(f"{time.monotonic() - began:6.1f}s  round {n + 1}/{rounds}: one Redis done")
        manys.append(off_the_loop(sharded, jobs, workers, shards))
        print(f"{time.monotonic() - began:6.1f}s  round {n + 1}/{rounds}: cluster done")
one, many = median_of(ones), median_of(manys)
for setup in (one, many):
    setup["redis_bound_jobs_per_s"] = redis_bound(setup)

# %%
import pandas as pd

rows = ["enqueue_jobs_per_s", "drain_jobs_per_s", "enqueue_redis_cpu_us", "drain_redis_cpu_us",
        "enqueue_commands_per_job", "drain_commands_per_job", "worker_cpu_us",
        "redis_bound_jobs_per_s"]  # fmt: skip
table = pd.DataFrame({"one Redis": [one[r] for r in rows],
                      f"{shards} shards, 3 masters": [many[r] for r in rows]}, index=rows)
table["ratio"] = table.iloc[:, 1] / table.iloc[:, 0]
table.round(2)

# %% [markdown]
# ## Where the Redis CPU goes
#
# Left: what a job costs Redis, enqueue and drain, summed over the masters. Right: how that
# work is shared between the masters. One Redis carries all of it on one core; the cluster's
# masters each carry about a third.

# %%
import matplotlib.pyplot as plt

from jobrunner.lab import figures

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
labels = ["one Redis", f"{shards} shards"]
enq = [one["enqueue_redis_cpu_us"], many["enqueue_redis_cpu_us"]]
drn = [one["drain_redis_cpu_us"], many["drain_redis_cpu_us"]]
left.bar(labels, enq, label="enqueue")
left.bar(labels, drn, bottom=enq, label="drain")
left.set_ylabel("Redis CPU µs per job (all masters)")
left.legend()
shares = many["drain_master_shares"]
right.bar([f"master {i + 1}" for i in range(len(shares))], shares)
right.axhline(1 / len(shares), linestyle="--", color="grey", label="an even share")
right.set_ylabel("share of the queue's Redis CPU (drain)")
right.legend()
fig.tight_layout()
path = figures.save(fig, results_dir, "09-redis-cpu-per-master")

# %% [markdown]
# ## The limit, read off the CPU
#
# A Redis core is full when the jobs it serves a second times the CPU each costs it reaches one
# second. One Redis serves all of the queue; with shards, the busiest master serves its share.
# So, with a core per master:

# %%
print(f"one Redis is full near {one['redis_bound_jobs_per_s']:,.0f} jobs/s "
      f"({one['enqueue_redis_cpu_us'] + one['drain_redis_cpu_us']:.1f} µs of its core a job)")
print(f"with {shards} shards the busiest master is full near "
      f"{many['redis_bound_jobs_per_s']:,.0f} jobs/s: "
      f"{many['redis_bound_jobs_per_s'] / one['redis_bound_jobs_per_s']:.2f}x")

# %% [markdown]
# Not 3x: a cluster node spends more on each job than a lone Redis (it checks every key's slot,
# and feeds its replica the writes), so part of what the shards gain goes there. More shards
# than masters change nothing by themselves; more masters (and shards) do.

# %% [markdown]
# ## A slot on the move
#
# Adding a master helps only once slots move to it: *resharding*. Redis moves a slot key by
# key (`MIGRATE`), and meanwhile the slot's keys are split between two masters. A script whose
# keys are split must not run: one that began on the old master and met a job hash already
# moved would stop half-way (Lua has no rollback). So every jobrunner script call on a cluster
# declares one extra key that never exists, and Redis refuses the call whole (`TRYAGAIN`)
# until the move ends; the callers retry. What that looks like: `reshard_jobs` e-mail jobs
# draining on a cluster of their own, and a third of the way through, the queue's slot moves
# to another master, 200 keys every 50 ms, the job hashes first. Progress prints every second.

# %%
from jobrunner.lab.resharding import drain_through_a_move, longest_stall, rates

ticks = {"next": 0.0}
move_began = time.monotonic()


def progress(finished: int) -> None:
    elapsed = time.monotonic() - move_began
    if elapsed >= ticks["next"]:
        print(f"{elapsed:5.1f}s  {finished:>6,}/{reshard_jobs:,} jobs done")
        ticks["next"] = elapsed + 1.0


with running.watching():
    moved = off_the_loop(drain_through_a_move, reshard_jobs, batch=200, on_sample=progress)
phases = rates(moved)
print(f"slot moved from port {moved['from_port']} to {moved['to_port']} ({moved['keys_moved']:,} "
      f"keys) in {moved['move_end'] - moved['move_start']:.1f} s; now served by port "
      f"{moved['master_after']}")
for phase, rate in phases.items():
    print(f"{phase:>7} the move: {rate:8,.0f} jobs/s")
took = moved["move_end"] - moved["move_start"]
stall = longest_stall(moved)
print(f"no job finished for {stall:.1f} s of the move's {took:.1f} s")
print(f"done {moved['processed']:,}, dead {moved['dead']}, of {moved['jobs']:,}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.4))
ax.plot([t for t, _ in moved["samples"]], [n for _, n in moved["samples"]], color="tab:blue")
ax.axvspan(moved["move_start"], moved["move_end"], color="tab:orange", alpha=0.25,
           label="the queue's slot moving")  # fmt: skip
ax.set_xlabel("seconds since the drain began")
ax.set_ylabel("jobs done")
ax.set_title("A queue draining while its slot moves to another master")
ax.legend(loc="lower right")
fig.tight_layout()
path = figures.save(fig, results_dir, "09-slot-move")

# %% [markdown]
# The queue stands still while its slot moves, and picks up on the new master once the move
# ends: no job is lost or run half, but a queue's traffic waits as long as its keys take to
# copy, and those include the hashes of finished jobs kept for `result_ttl`. Move slots when a
# queue is quiet, or shard a busy one so that no single slot holds much.

# %% [markdown]
# ## Claims, checked
#
# These fail when the code or the measurement no longer supports the text above.

# %%
assert max(many["drain_master_shares"]) <= 0.45, "a master took more than its share"
assert abs(many["drain_commands_per_job"] / one["drain_commands_per_job"] - 1) < 0.25, \
    "sharding changed how many commands a job costs"  # fmt: skip
assert many["redis_bound_jobs_per_s"] > one["redis_bound_jobs_per_s"], \
    "shards did not move the limit"  # fmt: skip
assert moved["processed"] == moved["jobs"], "a job was lost or dead while its slot moved"
assert moved["master_after"] == moved["to_port"], "the slot is not on its new master"
assert stall >= 0.5 * took, "the queue did not stand still while its slot moved"
print(f"{running.check_no_strays()} processes checked: none left running")

# %% [markdown]
# ## What it teaches
#
# - One queue on one Redis is bounded by one core, whatever the number of workers: measure
#   what a job costs that core and you know the ceiling.
# - A cluster helps a queue only when the queue is spread over slots: shards do that, at the
#   price of ordering (first in, first out holds within a shard only).
# - Read a benchmark on a shared box by its costs, not its rates.
#
# **Try this.** Set `shards = 6`: the shares stay about a third per master (six shards over
# three masters), and the limit does not move further. Then read `docs/scaling.md` for the
# durability side: a master killed under load, with and without `--wait-replicas`.
