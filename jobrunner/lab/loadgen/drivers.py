"""Client loops for each concurrency model. Every client repeatedly takes the next request
number, waits for its intended start in an open loop (so a slow answer delays nothing but its
own latency: no coordinated omission), sends, and records what happened."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jobrunner.lab.loadgen.senders import (
    AsyncHttpSender,
    AsyncQueueSender,
    AsyncSender,
    SendError,
    SyncHttpSender,
)
from jobrunner.lab.loadgen.spec import JobFactory, LoadSpec

# One request: (seq, intended start or NaN in a closed loop, start, end, status, job count)
Request = tuple[int, float, float, float, int, int]
# One acknowledged job: (job id, the time its latency counts from)
Sent = tuple[str, float]

NAN = float("nan")


@dataclass
class Samples:
    requests: list[Request] = field(default_factory=list)
    jobs: list[Sent] = field(default_factory=list)

    def extend(self, other: Samples) -> None:
        self.requests.extend(other.requests)
        self.jobs.extend(other.jobs)


class Plan:
    """When each request should start, and when the run is over."""

    def __init__(self, spec: LoadSpec, t0: float) -> None:
        self.t0 = t0
        self.open = spec.loop == "open"
        self.interval = spec.request_interval
        self.limit = spec.requests
        self.deadline = t0 + spec.duration if spec.duration else None
        self.batch = spec.batch

    def numbers(self, first: int = 0, step: int = 1) -> Iterator[int]:
        """Request numbers this client group may take (a stride for the process model)."""
        if self.limit is None:
            return itertools.count(first, step)
        return iter(range(first, self.limit, step))

    def intended(self, seq: int) -> float:
        return self.t0 + seq * self.interval if self.open else NAN

    def over(self, now: float) -> bool:
        return self.deadline is not None and not self.open and now >= self.deadline


def _record(samples: Samples, seq: int, intended: float, start: float, end: float,
            status: int, ids: list[str]) -> None:  # fmt: skip
    samples.requests.append((seq, intended, start, end, status, len(ids)))
    origin = start if intended != intended else intended  # NaN: closed loop
    samples.jobs.extend((job_id, origin) for job_id in ids)


def make_async_sender(spec: LoadSpec, factory: JobFactory, connections: int) -> AsyncSender:
    if spec.target == "http":
        return AsyncHttpSender(spec, factory, connections)
    return AsyncQueueSender(spec, factory, connections)


async def run_async_clients(
    spec: LoadSpec, plan: Plan, numbers: Iterator[int], clients: int, stream: int,
    done: Callable[[int], None],
) -> Samples:  # fmt: skip
    """``clients`` coroutines on this event loop sharing ``numbers``."""
    factory = JobFactory(spec, stream)
    sender = make_async_sender(spec, factory, clients)
    samples = Samples()

    async def client() -> None:
        for seq in numbers:  # one loop, one thread: the shared iterator needs no lock
            intended = plan.intended(seq)
            if plan.open:
                delay = intended - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif plan.over(time.time()):
                return
            start = time.time()
            try:
                ids, status = await sender.send(factory.types(spec.batch)), 202
            except SendError as exc:
                ids, status = [], exc.status
            _record(samples, seq, intended, start, time.time(), status, ids)
            done(1)

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await sender.close()
    return samples


def run_threads(spec: LoadSpec, plan: Plan, done: Callable[[int], None]) -> Samples:
    """``spec.concurrency`` threads, each a blocking client (urllib3 for HTTP; for the queue
    target each thread drives the asyncio library on a loop of its own)."""
    lock = threading.Lock()
    numbers = plan.numbers()
    results: list[Samples] = [Samples() for _ in range(spec.concurrency)]
    errors: list[BaseException] = []

    def next_number() -> int | None:
        with lock:
            return next(numbers, None)

    shared_http = SyncHttpSender(spec, spec.concurrency) if spec.target == "http" else None

    def http_client(index: int) -> None:
        assert shared_http is not None
        factory = JobFactory(spec, index)
        samples = results[index]
        while (seq := next_number()) is not None:
            intended = plan.intended(seq)
            if plan.open:
                delay = intended - time.time()
                if delay > 0:
                    time.sleep(delay)  # the open loop's schedule, not a wait for a condition
            elif plan.over(time.time()):
                return
            start = time.time()
            try:
                ids, status = shared_http.send(factory, factory.types(spec.batch)), 202
            except SendError as exc:
                ids, status = [], exc.status
            _record(samples, seq, intended, start, time.time(), status, ids)
            done(1)

    def queue_client(index: int) -> None:
        def locked_numbers() -> Iterator[int]:
            while (seq := next_number()) is not None:
                yield seq

        results[index] = asyncio.run(
            run_async_clients(spec, plan, locked_numbers(), 1, index, done)
        )

    def guarded(index: int) -> None:
        try:
            (http_client if shared_http else queue_client)(index)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), name=f"loadgen-{i}", daemon=True)
               for i in range(spec.concurrency)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if shared_http:
        shared_http.close()
    if errors:
        raise errors[0]
    merged = Samples()
    for samples in results:
        merged.extend(samples)
    return merged


def process_main(
    spec: LoadSpec, index: int, ready: Any, go: Any, t0: Any, counts: Any, results: Any
) -> None:
    """One process of the process model: take every ``processes``-th request number and put
    ``("ok", samples)`` or ``("error", traceback)`` on ``results``."""
    import traceback

    import uvloop

    try:
        ready.release()
        go.wait()
        plan = Plan(spec, t0.value)
        clients = max(1, spec.concurrency // spec.processes)

        def done(n: int) -> None:
            counts[index] += n

        numbers = plan.numbers(index, spec.processes)
        samples = uvloop.run(run_async_clients(spec, plan, numbers, clients, index, done))
        results.put(("ok", samples))
    except BaseException:
        results.put(("error", traceback.format_exc()))
