"""The keyspace invariant checker: what must hold in Redis at every instant, faults or not.

One Lua script reads a queue's lists, sets, counters and every job hash atomically (it runs
between two transitions, never inside one), so the check is valid mid-traffic too. It blocks
Redis for as long as the read takes (a few ms per 10,000 jobs): a tool for tests and the lab,
not for production monitoring. Checked:

* every job id is in exactly one place (ready, scheduled, reserved, dead; or none: done), once,
  and its hash's state says the same;
* every reserved job has a lease: a deadline and a fencing token no newer than the fence;
* no orphans: no id without a job hash, no waiting job hash in no collection;
* the counters add up: enqueued + requeued - processed - dead = jobs waiting or running;
  dead jobs = dead - requeued; and, given ``/metrics`` texts, the Prometheus counters agree.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from jobrunner.keys import QueueKeys

SNAPSHOT_LUA = """
local out = {redis.call('TIME'), redis.call('LRANGE', KEYS[1], 0, -1),
  redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES'),
  redis.call('ZRANGE', KEYS[4], 0, -1), redis.call('HGETALL', KEYS[5]),
  redis.call('GET', KEYS[6]) or '0'}
-- ids an idle worker claimed for its next reserve are ready jobs too (QueueKeys.claimed)
for _, id in ipairs(redis.call('LRANGE', KEYS[7], 0, -1)) do table.insert(out[2], id) end
local jobs = {}
for _, key in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do
  local f = redis.call('HMGET', key, 's', 't')
  jobs[#jobs + 1] = key
  jobs[#jobs + 1] = f[1] or ''
  jobs[#jobs + 1] = f[2] or ''
end
out[8] = jobs
return out
"""

COLLECTIONS = ("ready", "scheduled", "reserved", "dead")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Snapshot:
    """A queue's keyspace at one instant."""

    now_ms: int
    ready: list[str]
    scheduled: list[str]
    reserved: dict[str, float]  # id -> lease deadline (ms)
    dead: list[str]
    stats: dict[str, int]
    fence: int
    jobs: dict[str, tuple[str, str]]  # id -> (state, token)

    @property
    def done(self) -> int:
        return sum(1 for state, _ in self.jobs.values() if state == "done")


def snapshot(client: redis.Redis, queue: str = "default") -> Snapshot:
    keys = QueueKeys(queue)
    reply = client.eval(SNAPSHOT_LUA, 7, keys.ready, keys.scheduled, keys.reserved, keys.dead,
                        keys.stats, keys.fence, keys.claimed, keys.job_prefix)  # fmt: skip
    time_, ready, scheduled, reserved, dead, stats, fence, jobs = reply
    flat = [_s(v) for v in reserved]
    stats_flat = [_s(v) for v in stats]
    job_fields = [_s(v) for v in jobs]
    prefix_len = len(keys.job_prefix)
    return Snapshot(
        now_ms=int(time_[0]) * 1000 + int(time_[1]) // 1000,
        ready=[_s(v) for v in ready],
        scheduled=[_s(v) for v in scheduled],
        reserved={flat[i]: float(flat[i + 1]) for i in range(0, len(flat), 2)},
        dead=[_s(v) for v in dead],
        stats={stats_flat[i]: int(stats_flat[i + 1]) for i in range(0, len(stats_flat), 2)},
        fence=int(_s(fence)),
        jobs={
            job_fields[i][prefix_len:]: (job_fields[i + 1], job_fields[i + 2])
            for i in range(0, len(job_fields), 3)
        },
    )


@dataclass
class InvariantResult:
    queue: str
    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        head = f"invariants[{self.queue}]: " + " ".join(f"{k}={v}" for k, v in self.counts.items())
        return head + ("" if self.ok else "\n  " + "\n  ".join(self.violations[:20]))


def check_keyspace(snap: Snapshot, queue: str = "default") -> InvariantResult:
    result = InvariantResult(queue)
    v = result.violations
    places: dict[str, list[str]] = {}
    members = {"ready": snap.ready, "scheduled": snap.scheduled,
               "reserved": list(snap.reserved), "dead": snap.dead}  # fmt: skip
    for where, ids in members.items():
        for job_id, times in Counter(ids).items():
            if times > 1:
                v.append(f"{job_id} is {times} times in {where}")
            places.setdefault(job_id, []).append(where)
    for job_id, wheres in places.items():
        if len(wheres) > 1:
            v.append(f"{job_id} is in several states at once: {', '.join(wheres)}")
        found = snap.jobs.get(job_id)
        if found is None:
            v.append(f"orphan id: {job_id} is in {wheres[0]} but has no job hash")
        elif found[0] not in wheres:
            v.append(f"{job_id} is in {wheres[0]} but its hash says {found[0]!r}")
    for job_id, (state, _token) in snap.jobs.items():
        if state in COLLECTIONS and job_id not in places:
            v.append(f"orphan job: {job_id} says {state!r} but is in no {state} collection")
        elif state == "done" and job_id in places:
            pass  # reported above (its hash disagrees with the collection)
        elif state not in (*COLLECTIONS, "done"):
            v.append(f"{job_id} has an unknown state {state!r}")
    for job_id in snap.reserved:
        token = snap.jobs.get(job_id, ("", ""))[1]
        if not token or not token.isdigit():
            v.append(f"reserved {job_id} has no lease token")
        elif int(token) > snap.fence:
            v.append(f"reserved {job_id} holds token {token}, newer than the fence {snap.fence}")
    st = snap.stats.get
    alive = len(snap.ready) + len(snap.scheduled) + len(snap.reserved)
    expected_alive = st("enqueued", 0) + st("requeued", 0) - st("processed", 0) - st("dead", 0)
    if expected_alive != alive:
        v.append(f"counters: enqueued+requeued-processed-dead = {expected_alive}, "
                 f"but {alive} jobs are waiting or running")  # fmt: skip
    if st("dead", 0) - st("requeued", 0) != len(snap.dead):
        v.append(f"counters: dead-requeued = {st('dead', 0) - st('requeued', 0)}, "
                 f"but {len(snap.dead)} jobs are dead")  # fmt: skip
    if st("retried", 0) > st("failed", 0):
        v.append("counters: more retried than failed")
    result.counts = {
        "ready": len(snap.ready),
        "scheduled": len(snap.scheduled),
        "reserved": len(snap.reserved),
        "dead": len(snap.dead),
        "done": snap.done,
    }
    result.counts.update({k: st(k, 0) for k in ("enqueued", "processed", "stale", "reaped")})
    return result


def metric_totals(text: str, queue: str) -> dict[str, float]:
    """Sum each ``*_total`` counter of one ``/metrics`` text over the labels of ``queue``."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("queue") == queue:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def check_metrics(
    snap: Snapshot,
    api_texts: Iterable[str],
    worker_texts: Iterable[str],
    queue: str = "default",
    *,
    every_worker: bool = True,
    api_only_producer: bool = True,
    acks_lost: int = 0,
) -> list[str]:
    """The Prometheus counters against Redis's.

    ``api_only_producer``: every job came through these API processes, so their
    ``jobs_enqueued_total`` equals Redis's ``enqueued``. ``every_worker``: every worker that ever
    acked is in ``worker_texts`` (none was killed, so none took its counters with it), so
    processed - stale completions equals Redis's ``processed``; otherwise it may only be less.
    ``acks_lost``: at most this many acks Redis took and then lost (a restart on an AOF synced
    every second drops the last second's writes): each such job ran again and was counted twice
    by its workers, once by Redis, so the workers may count up to that many more. Bound it by
    the ledger's duplicates.
    """
    out = []
    enqueued = sum(metric_totals(t, queue).get("jobs_enqueued_total", 0.0) for t in api_texts)
    if api_only_producer and enqueued != snap.stats.get("enqueued", 0):
        out.append(f"metrics: the API counted {enqueued:.0f} enqueued, "
                   f"Redis {snap.stats.get('enqueued', 0)}")  # fmt: skip
    acked = 0.0
    for text in worker_texts:
        totals = metric_totals(text, queue)
        acked += totals.get("jobs_processed_total", 0.0)
        acked -= totals.get("jobs_stale_completions_total", 0.0)
    processed = snap.stats.get("processed", 0)
    over = acked - processed
    if (not 0 <= over <= acks_lost) if every_worker else (over > acks_lost):
        relation = "" if every_worker else "more than "
        if acks_lost:
            relation += f"(up to {acks_lost} acks lost) "
        out.append(f"metrics: workers counted {acked:.0f} acked completions, "
                   f"Redis {relation}{processed}")  # fmt: skip
    return out


def check(client: redis.Redis, queue: str = "default") -> InvariantResult:
    """Snapshot ``queue`` and check its keyspace."""
    return check_keyspace(snapshot(client, queue), queue)


def check_settled(
    client: redis.Redis, queue: str = "default", within: float = 3.0
) -> InvariantResult:
    """``check`` once the producers have settled their counts: a producer carries the
    ``enqueued`` count of a burst for up to a second (``EnqueueCounts``), so the counters may
    lag the jobs that briefly; everything else must hold at once. Checks again until clean or
    ``within`` seconds have passed, and returns the last result."""
    deadline = time.monotonic() + within
    while True:
        result = check(client, queue)
        if not result.violations or time.monotonic() > deadline:
            return result
        time.sleep(0.1)  # the producer's count is written within a second
