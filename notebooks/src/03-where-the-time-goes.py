# %% [markdown]
# # 3. Where the time goes
#
# **The question.** When the API serves `POST /jobs` and a worker drains no-op jobs, what are
# they actually doing with their CPU, and what is one change worth?
#
# **The setup.** Two profilers, both usable on a live service:
#
# - **pyinstrument**, inside the API: `jobrunner api --debug-routes` serves
#   `GET /debug/profile?seconds=N`, which samples the event loop while traffic flows;
# - **py-spy**, outside any process: it reads a running Python's stacks by its pid, no restart,
#   no code change. It needs ptrace: root, or `CAP_SYS_PTRACE` (in a container,
#   `--cap-add SYS_PTRACE`); without it the py-spy cells fail with "Permission denied" and
#   pyinstrument's view below is the one to read.
#
# Flamegraphs are written to `profiles/` (open the `.svg` in a browser to zoom, the
# `.speedscope.json` at speedscope.app). Then one frame that
# stands out, what the profile predicts removing it is worth, and what it is worth measured.

# %% tags=["parameters"]
results_dir = "../results"
profiles_dir = "../profiles"
seconds = 3.0  # each profile's window
clients = 32  # closed-loop clients sending POST /jobs while the API is profiled
worker_jobs = 200_000  # no-op jobs the profiled worker drains
drain_jobs = 30_000  # no-op jobs per before/after run
repeats = 3  # before/after runs each
quiet = True  # wait for a quiet machine first (the committed figures); CI's small run: False
pair_dir = "../profiles"  # where bench.profile_versus wrote the before/after profiles

# %%
import contextlib
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import SVG, display

from jobrunner.dev.stack import wait_for
from jobrunner.keys import QueueKeys
from jobrunner.lab import concurrency, figures, latency, profiles, provenance, running, stats

pd.set_option("display.width", 140)
pd.set_option("display.max_colwidth", 80)
out = Path(profiles_dir)
measured_on = provenance.record(quiet=quiet)

# %% [markdown]
# ## The API under load
#
# A closed loop of `clients` clients posts one no-op job per request, as fast as the API
# answers: the API runs at its capacity on this machine, as it would under real load. py-spy
# records it from outside, on an API started as the README deploys it (no debug routes: they
# turn on tracemalloc, which slows every allocation). Then a second API, with
# `--debug-routes`, under the same load: pyinstrument's window from inside, and a heap
# snapshot.

# %%
@contextlib.contextmanager
def under_load(stack, seconds):
    """The closed loop against the stack's API for ``seconds``, in the background; yields once
    jobs flow (a profile taken before would sample an idle API)."""
    with profiles.in_background(lambda: latency.load(
            stack.api_url, stack.redis_url, loop="closed", concurrency=clients,
            duration=seconds, token=stack.api_token)) as box:  # fmt: skip
        stats = QueueKeys("default").stats
        wait_for(lambda: int(stack.client.hget(stats, "processed") or 0) > 0, 30,
                 "the load to reach the worker")  # fmt: skip
        yield box


with running.lab_stack(workers=1) as stack:
    with under_load(stack, seconds + 2) as box:
        api_svg = profiles.py_spy_svg(stack.api.pid, seconds, out / "03-api-py-spy.svg")
load_summary = box["result"].summary()
api_rps = load_summary["requests_ok"] / load_summary["send_seconds"]
print(f"plain API: {load_summary['requests_ok']:,} requests in "
      f"{load_summary['send_seconds']:.1f}s ({api_rps:,.0f}/s) while py-spy recorded")  # fmt: skip

with running.lab_stack(workers=1, api_args=["--debug-routes"]) as stack:
    with under_load(stack, seconds + 2) as box:
        scope = profiles.pyinstrument_api(stack.api_url, seconds, out, token=stack.api_token)
    heap, traced, peak = profiles.heap_frame(stack.api_url, token=stack.api_token)
debug_summary = box["result"].summary()
debug_rps = debug_summary["requests_ok"] / debug_summary["send_seconds"]
print(f"API with --debug-routes: {debug_rps:,.0f}/s ({debug_rps / api_rps:.0%} of the plain "
      f"API's, tracemalloc and the profiler included); wrote {scope.name}, {api_svg.name}")  # fmt: skip

# %% [markdown]
# **py-spy's flamegraph of the API** (width = share of samples; read bottom-up: uvicorn's
# loop, the middleware stack, the route, the Redis call):

# %%
display(SVG(filename=str(api_svg)))

# %% [markdown]
# **pyinstrument's view, as a table**: the functions with the most *self* time (time in the
# function itself, not in what it calls) while the API served the load:

# %%
import json

profiles.speedscope_top(json.loads(scope.read_text()), n=12).round(4)

# %% [markdown]
# And where in our own code the API spends its samples (py-spy, inclusive: a frame counts the
# time of everything it calls):

# %%
api_frames = profiles.flamegraph_frames(api_svg.read_text())
profiles.hot_frames(api_frames, "jobrunner/", n=10).round(3)

# %% [markdown]
# **The heap.** `/debug/heap` answers tracemalloc's top lines: who holds the memory allocated
# since the API started. Read them with care: the snapshot is taken just after pyinstrument's
# window, so the profiler's own sample store can be the biggest line (a measurement of the
# measurement). A leak shows as a line that grows between two snapshots, not as a big line.

# %%
print(f"traced now {traced / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
owners = heap.assign(package=heap["where"].str.extract(r"site-packages/([^/]+)", expand=False)
                     .fillna("the standard library or the app"))  # fmt: skip
print("KiB by package:", owners.groupby("package")["KiB"].sum().sort_values(ascending=False)
      .round(0).to_dict())  # fmt: skip
heap

# %% [markdown]
# **Finding a leak.** A big line is not a leak; a line that grows is. The recipe, on a
# deliberate leak in this kernel: a handler that caches every rendered e-mail "for speed" and
# never evicts. Snapshot, serve a while, snapshot again, and diff the two: the leaking lines
# top the diff, with their source.

# %%
import linecache
import tracemalloc

rendered = {}  # the deliberate leak: a cache nobody evicts


def render(payload):
    key = json.dumps(payload, sort_keys=True)
    rendered[key] = f"<p>Welcome, {payload['to']}</p>" * 4  # kept forever
    return rendered[key]


def serve(start, n):
    for i in range(start, start + n):
        render({"to": f"user{i}@example.com", "template": "welcome"})


tracemalloc.start()
serve(0, 1_000)  # warm up: first allocations, caches of the interpreter's own
before = tracemalloc.take_snapshot()
serve(1_000, 20_000)
after = tracemalloc.take_snapshot()
tracemalloc.stop()
leak = pd.DataFrame([{"grew (KiB)": round(d.size_diff / 1024), "new blocks": d.count_diff,
                      "code": linecache.getline(d.traceback[0].filename,
                                                d.traceback[0].lineno).strip()}
                     for d in after.compare_to(before, "lineno")[:4]])  # fmt: skip
leak

# %% [markdown]
# The line that fills the cache tops the diff, megabytes in 20,000 calls; the next is inside
# `json`, where the cache's keys are made: grouped by line, the diff names where memory was
# allocated, not who keeps it (`compare_to(before, "traceback")` with `tracemalloc.start(10)`
# shows the callers too). Nothing else grew. On a live API, the same diff comes from two
# `/debug/heap` answers taken minutes apart under steady load.

# %% [markdown]
# ## A worker draining no-ops
#
# `worker_jobs` no-op jobs released at once to one default asyncio worker; py-spy records it
# for `seconds` while it drains.

# %%
with running.lab_stack(api=False, workers=1, worker_metrics=False) as stack:
    concurrency.park(stack.client, concurrency.WORKLOADS["noop"], worker_jobs,
                     concurrency.random.Random(1))  # fmt: skip
    stack.client.rename(concurrency.PARKED, concurrency.QUEUE.ready)
    worker_svg = profiles.py_spy_svg(stack.worker_pids()[0], seconds,
                                     out / "03-worker-py-spy.svg")  # fmt: skip
display(SVG(filename=str(worker_svg)))

# %%
worker_frames = profiles.flamegraph_frames(worker_svg.read_text())
profiles.hot_frames(worker_frames, "jobrunner/", n=12).round(3)

# %% [markdown]
# ## The frame that stands out
#
# A no-op job does nothing, so everything in this flamegraph is the job system's own cost. One
# cost is not about moving jobs at all: the structured log line each job writes at info level,
# made in `Worker._log_outcome` (JSON, buffered) and written out by `Worker._flush_logs` every
# 0.2 s. py-spy charges the time spent in C and in system calls to the Python frame that made
# them, so the two frames hold the whole cost. Their share of the samples predicts what
# switching the lines off is worth: if a fraction *s* of the time goes away, throughput rises
# by 1 / (1 - *s*).

# %%
share = sum(profiles.share_of(worker_frames, name)
            for name in ("Worker._log_outcome", "Worker._flush_logs"))  # fmt: skip
predicted = 1 / (1 - share)
print(f"Worker._log_outcome + Worker._flush_logs: {share:.1%} of the worker's samples -> "
      f"predicted speed-up {predicted:.2f}x with per-job lines off")  # fmt: skip

# %% [markdown]
# ## Measured before and after
#
# The same worker settings, `--log-level info` (the default: one line per job) against
# `--log-level warning` (only problems are logged), `repeats` drains of `drain_jobs` no-ops
# each, alternating so the machine's mood hits both alike.

# %%
rows = []
for repeat in range(repeats):
    for level in ("info", "warning"):
        rate = profiles.drain_rates(["--log-level", level], drain_jobs, 1, level == "info")[0]
        rows.append({"log level": level, "repeat": repeat, "jobs_per_s": rate})
drains = pd.DataFrame(rows)
summary = stats.spread(drains, ["log level"], "jobs_per_s").round(3)
change = stats.ratio_with_spread(drains.loc[drains["log level"] == "info", "jobs_per_s"].tolist(),
                                 drains.loc[drains["log level"] == "warning",
                                            "jobs_per_s"].tolist())  # fmt: skip
verdict = ("a real change: every pair of runs agrees" if change["low"] > 1 else
           "not told apart from noise: some pair of runs disagrees")  # fmt: skip
print(f"measured speed-up {change['ratio']:.2f}x (any pair of runs: {change['low']:.2f}x to "
      f"{change['high']:.2f}x), {verdict}; predicted {predicted:.2f}x")  # fmt: skip
summary

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for i, (level, group) in enumerate(drains.groupby("log level", sort=False)):
    ax.scatter([i] * len(group), group["jobs_per_s"], alpha=0.7, label="one run")
    ax.hlines(group["jobs_per_s"].mean(), i - 0.25, i + 0.25, color="black")
ax.set_xticks([0, 1], ["--log-level info\n(a JSON line per job)", "--log-level warning"])
ax.set_xlim(-0.6, 1.6)
ax.set_ylim(0, drains["jobs_per_s"].max() * 1.15)
ax.set_ylabel("no-op jobs drained per second")
ax.set_title(f"one worker, {drain_jobs:,} no-op jobs per run (bar: mean of {repeats})")
ax.grid(axis="y", alpha=0.3)
path = figures.save(fig, results_dir, "03-before-after")
plt.show()

# %% [markdown]
# ## An optimisation, before and after, in flamegraphs
#
# The README credits the worker's own pipelined connection (`jobrunner/pipelined.py`: one
# `asyncio.Protocol` with hiredis, replies matched by order) for much of the thread model's gain
# on jobs that do Redis I/O. Here is the evidence: the same thread-model worker draining the same
# jobs (`redis_incr`, one Redis round trip in the handler) on the commit before that change and
# on this one, py-spy recording 3 s from the middle of each drain, and the jobs done in that
# window counted. Recorded by
# `python -m bench.profile_versus --base 2162ec3a7dff --label pipelined` (it checks
# the old commit out into a temporary worktree); the collapsed stacks are in `profiles/`.
#
# **How to read a flamegraph.** Each box is a function; the one below it called it, so a stack
# of boxes is a call stack, the process's entry at the bottom. A box's width is its share of
# the samples: *inclusive* (it and everything it called). The x axis is **not time**: boxes are
# sorted by name, so neighbours did not run one after the other. Look for wide plateaus (wide
# boxes with nothing on top: *self* time, where the CPU actually was) and for wide towers of
# code you did not expect. Here the two runs went at different speeds, so each is drawn per
# job: the after flamegraph is as wide as its samples per job are of the before one's. In the
# differential flamegraph (the third), the after profile is drawn and each box coloured by
# how its cost per job moved: red grew, blue shrank. A frame that went away entirely has no box
# in the after profile to colour: the table below lists those.

# %%
from jobrunner.lab import flamediff

pair = json.loads((Path(pair_dir) / "versus-pipelined.json").read_text())
loop = "run_event_loop (jobrunner/worker/entry.py)"  # the worker's event loop thread
before_stacks, after_stacks = (
    flamediff.only(flamediff.read_collapsed(Path(pair_dir) / f"versus-pipelined-{side}.txt"), loop)
    for side in ("before", "after")
)
jobs_before = pair["before_drain"]["jobs_in_window"]
jobs_after = pair["after_drain"]["jobs_in_window"]
print(f"before ({pair['before']}): {pair['before_drain']['worker_cpu_us']} µs of worker CPU a job; "
      f"after ({pair['after'][:7]}): {pair['after_drain']['worker_cpu_us']} µs")  # fmt: skip
fig = flamediff.pair_figure(before_stacks, after_stacks, (pair["before"], pair["after"][:7]),
                           "the thread-model worker's event loop thread, draining redis_incr jobs",
                           jobs=(jobs_before, jobs_after))  # fmt: skip
path = figures.save(fig, results_dir, "03-flamegraph-pair")
fig

# %% [markdown]
# The shares alone mislead when two runs go at different speeds (the faster one spreads its
# samples over more jobs), so the table reads them per job: samples on the event loop thread
# per 1,000 jobs, at the same sampling rate, for the functions that moved most.

# %%
cost = pd.DataFrame({"before": flamediff.per_job(before_stacks, jobs_before),
                     "after": flamediff.per_job(after_stacks, jobs_after)}).fillna(0.0)  # fmt: skip
cost["change"] = cost["after"] - cost["before"]
moved = cost.reindex(cost["change"].abs().sort_values(ascending=False).index).head(14)
moved.round(2)

# %% [markdown]
# **Zoomed on the start marks**, the loop thread's part that writes each job's start mark
# before its handler runs, drawn to the same scale on both sides (samples a job), every box
# named:

# %%
width = (sum(after_stacks.values()) / jobs_after) / (sum(before_stacks.values()) / jobs_before)
crop = flamediff.crop_figure(
    before_stacks, after_stacks, "StartBuffer._run (jobrunner/worker/starts.py)",
    {"AsyncScript.__call__ (redis/commands/core.py)":
         "redis-py's asyncio script call: the pool,\nthe retry wrapper, a parser awaiting a stream",
     "PipelinedConnection._send (jobrunner/pipelined.py)":
         "the pipelined connection: write the command,\nthe reply matched by order"},
    "the start marks, before and after the pipelined connection", width=width,
)  # fmt: skip
path = figures.save(crop, results_dir, "03-flamegraph-crop")
crop

# %% [markdown]
# Read bottom-up: the loop thread's whole cost per job (the `run_event_loop` row) fell by about
# the share the blue towers held, and the frames that went are redis-py's asyncio client (the
# script object, `execute_command`, the retry wrapper, the pool, the stream parser) under the
# start marks and the acks; what replaced them (`pipelined.py`) is a thin plateau. The worker
# CPU per job in the JSON says the same from `/proc`, without sampling.

# %% [markdown]
# ## The claims, checked
#
# Each claim the prose below makes, as an assertion on this run's data: rerun on other code or
# another machine, a claim the data no longer support fails here instead of misleading.

# %%
assert share > 0.02, f"the log line is {share:.1%} of a no-op worker's samples: not visible"
loop_cost = cost.loc[loop]
assert loop_cost["after"] < 0.8 * loop_cost["before"], "the loop thread's cost per job did not fall"
assert pair["after_drain"]["worker_cpu_us"] < pair["before_drain"]["worker_cpu_us"], \
    "the worker's CPU per job did not fall"  # fmt: skip
script_call = cost.loc["AsyncScript.__call__ (redis/commands/core.py)"]
assert script_call["after"] < 0.1 * script_call["before"], "redis-py's script call is still hot"
assert "rendered[key]" in " ".join(leak["code"][:2]), "the heap diff did not point at the leak"
assert leak["grew (KiB)"][0] > 1024, "the leak grew by less than a MiB"
if quiet:
    assert debug_rps < api_rps, "the debug routes (tracemalloc) cost the API nothing?"
    if repeats >= 3:
        assert change["low"] > 1, "the log level's speed-up is not told apart from noise"
print(f"claims hold: log line {share:.1%} of the samples; measured {change['ratio']:.2f}x")

# %%
print(f"{running.check_no_strays()} processes checked: none left running")

# %% [markdown]
# ## What it teaches
#
# - Profile before optimising, under the load you care about: a worker's time on no-op jobs
#   goes to fetching, acking and bookkeeping, and a visible share to the log line; profile the
#   API idle, or with its debug routes on, and you profile something else.
# - A profile's share predicts a ceiling; measuring says what is real, and only when the range
#   over every pair of runs excludes 1.0 (the verdict printed with the measured speed-up).
# - The per-job info line is a deliberate trade (an audit trail of every job, README: Logs).
#   For jobs that take milliseconds it costs little; for no-ops it is a large share. The
#   setting, not the code, is the right knob: `--log-level warning` where throughput matters.
#
# **Noise.** Profiles are samples (py-spy at 250 Hz: a few seconds give ~1,000 samples, so a
#   frame's share is good to about a percentage point). The before/after figures are means of
#   `repeats` runs; the ratio's range over every pair of runs is printed with it: trust the
#   change only when that range excludes 1.0.
#
# **Try next.** Profile with `gil=True` (`jobrunner.dev.profiling.record`) on a thread-model
# worker to see who holds the GIL; profile a `resize_image` drain to see the time move into
# Pillow. `python -m bench.profile_worker` and `bench.profile_api` do the same from the shell.
