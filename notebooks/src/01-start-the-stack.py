# %% [markdown]
# # 1. Start the stack
#
# **The question.** What *is* a running job system? Which processes, which keys in Redis, and
# what happens to one job between `POST /jobs` and "done"?
#
# **The setup.** `jobrunner.dev.stack.Stack` starts a private `redis-server`, the HTTP API and
# worker processes from Python, each a real `python -m jobrunner.cli ...` subprocess. We enqueue
# jobs two ways (HTTP and the library), follow a few of them through their states, read the
# queues and `/metrics`, and stop everything cleanly.
#
# Everything this notebook calls lives in `jobrunner.lab` (here `jobrunner.lab.tour`), so the
# same code is tested by `tests/test_lab.py` and `tests/test_experiments.py`.

# %% tags=["parameters"]
# The defaults are the full run; CI injects small values (tests/test_notebooks.py).
results_dir = "../results"  # where figures are written
workers = 2  # worker processes
burst = 2000  # jobs in the burst at the end
email_latency = 0.2  # seconds an `email` job waits (a simulated SMTP round trip)

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd

from jobrunner.connection import async_redis
from jobrunner.lab import figures, running, tour
from jobrunner.queue import ReliableQueue

pd.set_option("display.width", 120)

# %% [markdown]
# ## Start it
#
# `start_stack` starts Redis, `workers` workers and the API, and waits until each worker has
# sent its first heartbeat and the API answers `/healthz`. The stack stays up across the cells
# below; the last cell stops it (and if a cell fails, the kernel's exit does).

# %%
started = time.monotonic()
stack = running.start_stack(workers=workers, model="asyncio", concurrency=20, keep_logs=True,
                            env={"JOBRUNNER_MAINTENANCE_INTERVAL": "0.05"})
print(f"up in {time.monotonic() - started:.1f}s\n")
print(stack.status())
api = stack.api_url
token = stack.api_token  # every request to the API carries it: Authorization: Bearer ...

# %% [markdown]
# Every piece is an ordinary process. `psutil` shows what each one is and how much memory it
# holds (resident set size):

# %%
import psutil

rows = []
for pid in sorted(stack.all_pids()):
    p = psutil.Process(pid)
    cmd = p.cmdline()
    role = cmd[3] if len(cmd) > 3 and cmd[1:3] == ["-m", "jobrunner.cli"] else p.name()
    rows.append({"pid": pid, "role": role, "rss_MiB": round(p.memory_info().rss / 2**20, 1)})
pd.DataFrame(rows)

# %% [markdown]
# ## Enqueue by HTTP and by library
#
# `POST /jobs` takes one job or a batch and answers `202` with the ids. The library,
# `ReliableQueue`, writes the same records straight to Redis; both go through the same Lua
# script, so a job is the same whichever way it came in.

# %% [markdown]
# To see jobs *wait*, we first freeze the workers (`SIGSTOP`, as a long GC pause would) and
# thaw them half a second after the jobs are in.

# %%
import threading

for pid in stack.worker_pids():
    stack.pause_worker(pid)
thaw = threading.Timer(0.5, lambda: [stack.resume_worker(p) for p in stack.worker_pids()])

status, one = tour.call(f"{api}/jobs", "POST", {"type": "email", "data": {"to": "ada@example.com",
                        "latency": email_latency}}, token=token)  # fmt: skip
print(status, one)
status, batch = tour.call(f"{api}/jobs", "POST", {"jobs": [
    {"type": "noop"},
    {"type": "resize_image", "data": {"size": 256}},
    {"type": "email", "data": {"latency": email_latency}, "delay": 1.0},  # runs in 1 s, not now
    {"type": "flaky", "data": {"p": 1.0}, "max_retries": 2},  # always fails: retried, then dead
]}, token=token)  # fmt: skip
print(status, batch)
status, bad = tour.call(f"{api}/jobs", "POST", {"type": "no_such_type"}, token=token)
print(status, bad)  # every error has one shape: code, field, detail

client = async_redis(stack.redis_url)
queue = ReliableQueue(client)
by_library = await queue.enqueue("email", {"to": "bob@example.com", "latency": email_latency})
await client.aclose()
print("enqueued by the library:", by_library)
thaw.start()

# %% [markdown]
# ## A job's life
#
# `GET /jobs/{id}` answers a job's state, attempts and last error. Polling it every 20 ms (from
# just after the enqueue, while the workers are still frozen) shows each job moving through
# the states of the README's diagram: `ready → reserved → done`; a delayed job starts in
# `scheduled`; a failing one goes `reserved → scheduled` (waiting out its backoff) and back,
# until it has no attempts left and is `dead`.

# %%
labels = {
    one["ids"][0]: "email (HTTP)",
    batch["ids"][0]: "noop",
    batch["ids"][1]: "resize_image",
    batch["ids"][2]: "email, delay 1 s",
    batch["ids"][3]: "flaky p=1, 2 retries",
    by_library: "email (library)",
}
events = tour.follow(api, labels, timeout=60, token=token)
events.assign(job=events["id"].map(labels)).drop(columns="id")

# %%
ax = tour.plot_lives(events, labels)
path = figures.save(ax.figure, results_dir, "01-job-lives")
plt.show()
print("saved", path)

# %% [markdown]
# Every job waited in `ready` until the workers thawed, then ran within milliseconds (the
# e-mails for their simulated round trip, in `reserved`). The delayed e-mail waited in
# `scheduled` for its second, and the flaky job spent most of its life there, between
# attempts: retries wait in a sorted set and never block a worker. Its last error is kept:

# %%
status, view = tour.call(f"{api}/jobs/{batch['ids'][3]}", token=token)
{k: view[k] for k in ("state", "attempts", "max_retries", "last_error")}

# %% [markdown]
# ## One job, stepped by hand
#
# What a worker does to a job is three calls, each one Lua script that Redis runs as one step
# (`jobrunner/lua/reserve.lua`, `start.lua`, `ack.lua`): nothing another worker does can land
# between its reads and its writes. Here they are called by hand, on a queue no worker serves,
# with the keys that matter read after each: the `ready` list, the `reserved` sorted set (id →
# lease deadline on Redis's clock) and the job's state. `reserve` hands out a *fencing token*
# with the lease: a later holder gets a larger one, and an ack under an older token is refused.

# %%
import redis as redis_sync

from jobrunner.keys import QueueKeys

hand_client = async_redis(stack.redis_url)
hand = ReliableQueue(hand_client)
keys, raw = QueueKeys("by-hand"), redis_sync.Redis.from_url(stack.redis_url)


async def look(step):
    record = await hand.get_job(job_id)
    seconds, micros = raw.time()
    now_ms = seconds * 1000 + micros // 1000
    leases = raw.zrange(keys.reserved, 0, -1, withscores=True)
    return {"step": step, "ready": raw.llen(keys.ready),
            "reserved: lease left (s)": [round((deadline - now_ms) / 1000) for _, deadline in leases],
            "state": record.state, "attempts": record.attempts}  # fmt: skip


job_id = await hand.enqueue("noop", {}, queue="by-hand")
steps = [await look("enqueue")]
[first] = await hand.reserve("by-hand", 1, lease=30.0)  # lease 30 s, token 1
steps.append(await look(f"reserve (token {first.token})"))
await hand.start("by-hand", [(first.id, first.token)])  # the attempt is charged now
steps.append(await look("start"))
await hand.release("by-hand", [(first.id, first.token, True)])  # as if its lease ran out
[second] = await hand.reserve("by-hand", 1, lease=30.0)
steps.append(await look(f"released, reserved again (token {second.token})"))
stale = await hand.ack("by-hand", [(first.id, first.token)])  # the first holder, too late
steps.append(await look(f"ack, token {first.token}: {'refused' if stale else 'accepted'}"))
stale_now = await hand.ack("by-hand", [(second.id, second.token)])
steps.append(await look(f"ack, token {second.token}: {'refused' if stale_now else 'accepted'}"))
await hand_client.aclose()
raw.close()
assert stale == [first.id], "the first holder's late ack was not refused by its token"
assert stale_now == [] and steps[-1]["state"] == "done", "the current holder's ack failed"
pd.DataFrame(steps)

# %% [markdown]
# **Try this.** Reserve with `lease=0.5`, wait a second, and call `await hand.reap("by-hand")`
# before the second reserve instead of `release`: expected, the reaper returns the job to
# `ready` on its own (the path a SIGKILLed worker's jobs take), and the old token is refused
# all the same.

# %% [markdown]
# ## The queues and the metrics
#
# A burst of `burst` e-mails, then `GET /queues` while they drain: depths (ready, scheduled,
# in flight, dead), lifetime counters and recent rates.

# %%
jobs = [{"type": "email", "data": {"latency": email_latency}} for _ in range(burst)]
status, _ = tour.call(f"{api}/jobs", "POST", {"jobs": jobs}, token=token)
assert status == 202, status
time.sleep(0.3)  # let the workers take their first batches, so "in flight" shows
status, queues = tour.call(f"{api}/queues", token=token)
pd.DataFrame(queues).drop(columns=["counters", "rates"])

# %%
stack.wait_idle(timeout=120)
status, queues = tour.call(f"{api}/queues", token=token)
pd.Series(queues[0]["counters"], name="lifetime counters of 'default'").to_frame()

# %% [markdown]
# `/metrics` is the Prometheus text format. The API counts what it enqueued and reads the depths
# at scrape time; each worker serves its own counters and histograms on its metrics port
# (`stack.metrics_urls()`). Parsed into a table:

# %%
api_metrics = tour.metrics_frame(tour.fetch_text(f"{api}/metrics", token=token))
api_metrics[api_metrics["value"] > 0]

# %%
frames = [tour.metrics_frame(tour.fetch_text(url)).assign(source=url.split(":")[-1].split("/")[0])
          for url in stack.metrics_urls()[1:]]  # fmt: skip
worker_metrics = pd.concat(frames)
processed = worker_metrics[worker_metrics["metric"] == "jobs_processed_total"]
processed.pivot_table(index="labels", columns="source", values="value", aggfunc="sum")

# %% [markdown]
# One column per worker (its metrics port). How the burst was shared depends on **prefetch**:
# a worker reserves up to `concurrency + prefetch` jobs in one round trip, so a small burst
# may go entirely to whichever worker polled first.
#
# ## Stop it
#
# `stop_all()` stops the API first (no new work), then the workers (each finishes what it holds
# within its grace period and exits 0), then Redis; then it checks that no process the stack
# ran is still alive. Each worker's last log line is its summary; `keep_logs=True` above keeps
# the logs after the stop (by default a stack removes its temporary log directory).

# %%
worker_logs = [w.log_path for w in stack.workers]
checked = running.stop_all()
print(f"stopped; {checked} processes checked, none left")
for log in worker_logs:
    print(log.read_text().strip().splitlines()[-1])
print(f"logs kept in {stack.log_dir}")

# %% [markdown]
# ## What it teaches
#
# - A job system is a handful of ordinary processes around one Redis; every state a job can be
#   in is a key you can read (`GET /jobs/{id}` reads its hash).
# - Enqueueing by HTTP or by library writes the same record through the same script.
# - Retries and delays are *data* (a sorted set by due time), not sleeping workers.
#
# **Noise.** Nothing here is a performance figure; the timeline's spans depend on the 20 ms
# polling period and the machine's load, not on the job system.
#
# **Try next.** Kill a worker mid-burst (`stack.kill_worker()`) and watch `GET /queues`: its
# jobs come back when their lease expires. Notebook 2 compares the concurrency models.
