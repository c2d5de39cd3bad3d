"""What OpenTelemetry tracing costs: enqueue and drain rates with tracing off and on, in one run.

    python -m bench.tracing_cost [--jobs 20000] [--rounds 3] [--model asyncio] [--out results]
                                 [--before TREE]

Per round and setting: ``--jobs`` no-op jobs enqueued one per call by 8 concurrent callers of
one ``Client`` (a trace each when on: its ``enqueue`` span), parked, then handed at once to one
idle worker of ``--model`` and the drain timed (``bench.parked``). On means
``JOBRUNNER_TRACING=otlp`` in the producer and the worker, exporting over OTLP/HTTP to a sink in
this process that counts the spans it receives (so a drop by the SDK's bounded queue shows).
The settings take turns in an order that changes round by round, ``--rounds`` times; the
medians and the median ratios are written to ``results/bench-tracing.json``. ``--before`` names
a tree of the code before tracing existed (``git archive <commit> | tar -x -C TREE``): its
worker drains the same jobs too, so the cost of tracing *off* against no tracing code at all
shows. Its enqueues run this process's code, as "off" does: their ratio is a control (it should
be 1 but for the noise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import uvloop

from bench.parked import PARKED, QUEUE, drain_seconds, head_commit, worker_process
from jobrunner import tracing
from jobrunner.client import Client
from jobrunner.config import Settings
from jobrunner.dev.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
CALLERS = 8


@contextmanager
def span_sink() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP endpoint that answers 200 and counts the spans; yields (url, [count])."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    count = [0]
    lock = threading.Lock()

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            request = ExportTraceServiceRequest.FromString(body)
            spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            with lock:
                count[0] += spans
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", count
    finally:
        server.shutdown()
        server.server_close()


async def enqueue(url: str, jobs: int) -> float:
    """Enqueue ``jobs`` no-op jobs, one per call, from 8 callers; returns jobs a second."""
    async with Client.from_url(url) as client:
        await client.enqueue("noop")  # connected first (drained with the rest)

        async def caller() -> None:
            for _ in range(jobs // CALLERS):
                await client.enqueue("noop")

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        return jobs // CALLERS * CALLERS / (time.perf_counter() - started)


def one_round(
    server: RedisServer, jobs: int, model: str, sink: str | None, tree: Path, sample: float = 1.0
) -> dict[str, float]:
    """Enqueue (timed), park the jobs, start a worker, hand them over and time the drain."""
    client = redis.Redis(port=server.port)
    client.flushall()
    env = {"JOBRUNNER_TRACING": "none"}
    if sink is not None:  # the producer (this process) and the worker export to the sink
        producer = Settings(tracing="otlp", otlp_endpoint=sink, tracing_sample=sample)
        tracing.setup(producer, "bench-producer")
        env = {"JOBRUNNER_TRACING": "otlp", "JOBRUNNER_OTLP_ENDPOINT": sink}
    try:
        enqueue_rate = uvloop.run(enqueue(server.url, jobs))
    finally:
        tracing.shutdown()  # exports what is buffered
    total = 1 + jobs // CALLERS * CALLERS
    client.rename(QUEUE.ready, PARKED)  # out of sight until the worker is up and idle
    with worker_process(server.url, model=model, extra_env=env, tree=tree):
        seconds = drain_seconds(client, total)
    client.close()
    return {"enqueue_jobs_per_s": enqueue_rate, "drain_jobs_per_s": total / seconds}


KEYS = ["enqueue_jobs_per_s", "drain_jobs_per_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="asyncio", choices=["asyncio", "thread", "process"])
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--before", type=Path, help="a tree of the code before tracing")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    # "sampled": on, with 10% of the traces kept (the producer decides, the worker follows)
    settings = (
        ["off", "on", "sampled"] if args.before is None else ["before", "off", "on", "sampled"]
    )
    rounds: dict[str, list[dict[str, float]]] = {s: [] for s in settings}
    with RedisServer() as server, span_sink() as (sink, spans):
        for n in range(args.rounds):
            # the order turns round by round (and reverses every other round) so that no setting
            # always follows the same one: a fixed order showed a bias of about 15% between the
            # first two (the same enqueue code, "before" and "off", measured 0.83x)
            order = settings[n % len(settings) :] + settings[: n % len(settings)]
            for setting in order if n % 2 == 0 else order[::-1]:
                print(f"round {n + 1}/{args.rounds}, tracing {setting} ...", flush=True)
                counted = spans[0]
                tree = args.before if setting == "before" else ROOT
                result = one_round(server, args.jobs, args.model,
                                   sink if setting in ("on", "sampled") else None, tree,
                                   0.1 if setting == "sampled" else 1.0)  # fmt: skip
                result["spans_received"] = spans[0] - counted
                rounds[setting].append(result)
    median = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
              for s, rs in rounds.items()}  # fmt: skip

    def ratio(over: str, under: str) -> dict[str, float]:
        pairs = list(zip(rounds[under], rounds[over], strict=True))
        return {k: statistics.median(b[k] / a[k] for a, b in pairs) for k in KEYS}

    result: dict[str, Any] = {
        "commit": head_commit(), "load_average": [round(x, 2) for x in load],
        "cpus": os.cpu_count(), "jobs": args.jobs, "rounds": args.rounds, "model": args.model,
        # spans expected when on: an enqueue span per job, a queue wait and a run span per job
        "spans_expected_per_round": 3 * (1 + args.jobs // CALLERS * CALLERS),
        "tracing_off": median["off"], "tracing_on": median["on"],
        "tracing_on_sampled_10pc": median["sampled"],
        "ratio_on_to_off": ratio("on", "off"), "ratio_sampled_to_off": ratio("sampled", "off"),
        # on a shared machine the medians swing with the neighbours' load: the best round of
        # each setting is the other estimate
        "best": {s: {k: max(r[k] for r in rs) for k in KEYS} for s, rs in rounds.items()},
    }  # fmt: skip
    if args.before is not None:  # the enqueues ran this tree's client: only the drain differs
        result["before_tracing"] = median["before"]
        result["ratio_off_to_before"] = ratio("off", "before")
    result["rounds_detail"] = rounds
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-tracing.json").write_text(json.dumps(result, indent=2) + "\n")
    for setting in settings:
        print(f"{setting:<7}" + "".join(f"  {k} {median[setting][k]:>10,.1f}" for k in KEYS))
    for name in ("ratio_on_to_off", "ratio_sampled_to_off", "ratio_off_to_before"):
        if name in result:
            print(f"{name}: " + ", ".join(f"{k} {v:.3f}x" for k, v in result[name].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
