# %% [markdown]
# # 4. Latency under load
#
# **The question.** How long does `POST /jobs` take as the load rises, where is the knee of
# the curve, and why do many load tests get the answer wrong?
#
# **The setup.** A stack (Redis, the API, one asyncio worker) and `jobrunner.lab.loadgen` in this
# kernel, sending one no-op job per request. Two ways of loading it:
#
# - a **closed loop**: N clients, each sending its next request when its last one returned;
# - an **open loop**: requests at a fixed rate, each timed from when it *should* have started,
#   as users arrive whether or not the server kept up.
#
# Latencies are recorded in HDR histograms (`hdrhistogram`): every sample counts, to 0.1 %
# precision, so the tail (p99, p99.9) is measured rather than estimated. Load generator, API,
# worker and Redis share this machine's cores, so the figures are a lesson in shapes, not a
# benchmark of the API alone (`make bench` has that).

# %% tags=["parameters"]
results_dir = "../results"
duration = 3.0  # seconds per load run
clients = [1, 4, 16, 64]  # closed-loop client counts
shares = [0.1, 0.3, 0.5, 0.7, 0.85, 1.0, 1.15]  # open-loop rates, as shares of the capacity
open_clients = 128  # the open loop's most requests in flight
repeats = 2  # runs per point
stall_seconds = 1.0  # how long the API is frozen in the coordinated-omission experiment
stall_rate = 400.0  # requests per second offered during that experiment

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
import psutil

from jobrunner.lab import figures, latency, running
from jobrunner.lab.loadgen.plots import plot_percentiles

pd.set_option("display.width", 140)
print(f"{psutil.cpu_count()} CPUs; load average now {psutil.getloadavg()[0]:.1f}")

# %% [markdown]
# ## Closed loop: what the API serves
#
# More clients, more throughput, until the API (or the machine) is saturated; after that more
# clients only wait longer. The highest throughput reached is our estimate of the capacity.

# %%
with running.lab_stack(workers=1, model="asyncio") as stack:
    started = time.monotonic()
    closed = latency.closed_sweep(stack.api_url, stack.redis_url, clients, duration, repeats,
                                  token=stack.api_token)  # fmt: skip
    capacity = float(closed.groupby("clients")["achieved_rps"].mean().max())
    rates = latency.rates_around(capacity, shares)
    print(f"capacity ~ {capacity:.0f} requests/s; open-loop rates: {rates}")
    opened = latency.open_sweep(stack.api_url, stack.redis_url, rates, duration,
                                open_clients, repeats, token=stack.api_token)  # fmt: skip
    print(f"{len(closed) + len(opened)} runs in {time.monotonic() - started:.0f}s")
closed[["clients", "repeat", "achieved_rps", "ms_p50", "ms_p99", "ms_p99.9", "e2e_ms_p99"]]

# %% [markdown]
# ## Open loop: the knee
#
# At low rates the latency is the service time. As the offered rate nears the capacity,
# requests start to queue behind each other and the tail grows first; past the capacity the
# queue grows for as long as the load lasts, and so does every percentile.

# %%
opened[["offered_rps", "repeat", "achieved_rps", "errors", "ms_p50", "ms_p99", "ms_p99.9",
        "e2e_ms_p99"]]  # fmt: skip

# %%
fig = latency.plot_knee(closed, opened, capacity)
path = figures.save(fig, results_dir, "04-knee")
plt.show()

# %% [markdown]
# Left: the open loop's percentiles against the offered rate (bars: lowest and highest of the
# repeats). Right: both loops' p99 against the throughput they reached. The closed loop's
# curve stays low because its clients slow down with the server: it cannot offer more than
# is served, so it never shows the cliff a real arrival rate would hit.

# %% [markdown]
# ## Coordinated omission, shown
#
# Now we freeze the API (`SIGSTOP`) for `stall_seconds` in the middle of a run, once under an
# open loop at `stall_rate` requests per second and once under a closed loop with as many
# clients. Three ways of recording the same kind of event:
#
# 1. open loop, each request timed from its **intended** start: every request that should have
#    been sent during the stall waited for it, and counts;
# 2. the same run timed from the **actual send**: a client blocked on the frozen server did not
#    send its next requests, so their wait is never recorded (the load generator "coordinated"
#    with the server and omitted the bad samples);
# 3. a closed loop: only the requests in flight when the stall began were slow; then the
#    clients simply stopped sending.

# %%
with running.lab_stack(workers=1, model="asyncio") as stack:
    curves, recorded = latency.omission(
        stack.api_url, stack.redis_url, stack.api.pid, rate=stall_rate, clients=16,
        duration=max(duration, 2 * stall_seconds + 1), stall_at=1.0,
        stall_seconds=stall_seconds, token=stack.api_token,
    )  # fmt: skip
recorded.round(2)

# %%
ax = plot_percentiles(curves, title=f"the same {stall_seconds:g} s stall, measured three ways")
ax.set_yscale("log")
path = figures.save(ax.figure, results_dir, "04-coordinated-omission")
plt.show()

# %% [markdown]
# The stall is in all three runs. Timed from the intended start, a whole stall's worth of
# requests (about `stall_rate` x `stall_seconds`) is slow and the p99 says so. Timed from the
# send, or with a closed loop, only about 16 samples (the clients in flight) saw it: the p99
# looks healthy and only the max hints that something happened. A benchmark that reports
# percentiles from a closed loop (most do) hides exactly the stalls users notice.

# %%
print(f"{running.check_no_strays()} processes checked: none left running")

# %% [markdown]
# ## What it teaches
#
# - Latency is flat until utilisation is high, then rises steeply: leave headroom below the
#   knee (here, the rates above ~70-85 % of capacity).
# - A closed loop measures the server at the pace the server sets; to know what users see,
#   offer load at a rate and time each request from its intended start.
# - Look at the whole percentile curve (HDR), not the mean: the stall is invisible in a mean.
#
# **Noise.** Each point is the mean of `repeats` runs, the bars their range; the tail
# percentiles (p99.9) of a few-second run rest on a handful of samples and move most between
# runs. The capacity itself moves with what else runs on the machine, which is why the open
# loop's rates are set from the capacity measured in the same run.
#
# **Try next.** Batch requests (`LoadSpec(batch=100)`) and watch the capacity in jobs/s jump;
# compare `model="thread"` clients; bound the queue (`JOBRUNNER_MAX_QUEUE_DEPTH`) and watch
# 429s replace latency (notebook 6).
