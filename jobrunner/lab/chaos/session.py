"""A chaos session: a ``Stack`` whose workers run probes, a producer, the faults, the report.

Tests, ``jobrunner chaos`` and the notebooks all use it the same way::

    with ChaosSession("kill-loop", model="thread") as s:
        s.producer.start_load(rate=200)
        s.record(faults.kill_worker(s.stack))
        s.producer.stop_load()
        s.settle()
        report = s.report()
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from jobrunner.connection import sync_redis
from jobrunner.dev.stack import Stack, wait_for
from jobrunner.keys import naive_key
from jobrunner.lab.chaos.invariants import check_settled
from jobrunner.lab.chaos.ledger import LEDGER_DIR_ENV, read_records
from jobrunner.lab.chaos.producer import HttpSender, LibrarySender, Producer, QueueKind, Sender
from jobrunner.lab.chaos.report import ChaosReport, FaultRecord, compare, dead_probes

PROBES_MODULE = "jobrunner.lab.chaos.probes"


class ChaosSession:
    def __init__(
        self,
        name: str,
        *,
        workers: int = 2,
        model: str = "asyncio",
        concurrency: int | None = 4,
        kind: QueueKind = "reliable",
        via: Literal["library", "api"] = "library",
        lease: float = 2.0,
        prefetch: int = 8,
        redis_appendonly: bool = False,
        redis_url: str | None = None,
        env: Mapping[str, str] | None = None,
        imports: tuple[str, ...] = (),
        ledger_dir: Path | None = None,
        log_dir: Path | None = None,
        grace: float = 10.0,
        wait_replicas: int = 0,
        **stack_options: Any,
    ) -> None:
        self.name = name
        self.kind = kind
        self.via = via
        self._own_ledger = ledger_dir is None
        self.ledger_dir = ledger_dir or Path(tempfile.mkdtemp(prefix="jobrunner-ledger-"))
        self.ledger_dir.mkdir(parents=True, exist_ok=True)
        self.wait_replicas = wait_replicas  # the producer's and the workers' (see Settings)
        full_env = {LEDGER_DIR_ENV: str(self.ledger_dir), "JOBRUNNER_LEASE": str(lease),
                    "JOBRUNNER_PREFETCH": str(prefetch),
                    "JOBRUNNER_WAIT_REPLICAS": str(wait_replicas), **(env or {})}  # fmt: skip
        self.stack = Stack(
            workers=workers, model=model, concurrency=concurrency,
            api=via == "api" or stack_options.pop("api", False),
            redis_appendonly=redis_appendonly, redis_url=redis_url,
            imports=(PROBES_MODULE, *imports), env=full_env, log_dir=log_dir, grace=grace,
            worker_command="naive-worker" if kind == "naive" else "worker", **stack_options,
        )  # fmt: skip
        self.faults: list[FaultRecord] = []
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("the session is not started")
        return self._producer

    def start(self) -> ChaosSession:
        self.stack.start()
        sender: Sender
        if self.via == "api":
            assert self.stack.api_url is not None
            sender = HttpSender(self.stack.api_url, token=self.stack.api_token)
        else:
            sender = LibrarySender(self.stack.redis_url, self.kind, self.wait_replicas)
        self._producer = Producer(self.ledger_dir, sender)
        return self

    def stop(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        self.stack.stop()

    def cleanup(self) -> None:
        """Remove the ledger directory when the session made it."""
        if self._own_ledger:
            shutil.rmtree(self.ledger_dir, ignore_errors=True)

    def __enter__(self) -> ChaosSession:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    # ---- during the run --------------------------------------------------------------------

    def record(self, fault: FaultRecord) -> FaultRecord:
        self.faults.append(fault)
        return fault

    def completions(self) -> int:
        """Handler runs that ended ``ok`` so far (from the ledger)."""
        return sum(1 for r in read_records(self.ledger_dir, "runs") if r.get("outcome") == "ok")

    def settle(self, timeout: float = 60.0) -> None:
        """Until nothing waits or runs: the reliable queue empty with no lease held; the naive
        list empty and every run started by a live worker ended."""
        if self.kind == "reliable":
            for queue in self.stack.queues:
                self.stack.wait_idle(queue, timeout=timeout)
            return

        def quiet() -> bool:
            if any(self.stack.client.llen(naive_key(q)) for q in self.stack.queues):
                return False
            live = set(self.stack.worker_pids())
            open_runs: dict[tuple[str, int], int] = {}
            for r in read_records(self.ledger_dir, "runs"):
                key = (r["probe"], r["attempt"])
                if r["pid"] in live:
                    open_runs[key] = open_runs.get(key, 0) + (1 if r["e"] == "start" else -1)
            return not any(open_runs.values())

        wait_for(quiet, timeout, "the naive queue to go quiet", interval=0.1)

    def report(self, name: str | None = None) -> ChaosReport:
        """Compare the ledger with Redis; for the reliable queue, check the keyspace too."""
        dead: set[str] = set()
        raw = sync_redis(self.stack.redis_url)  # bytes: job specs need not be UTF-8
        try:
            for queue in self.stack.queues:
                dead |= dead_probes(raw, queue, naive=self.kind == "naive")
        finally:
            raw.close()
        result = compare(name or self.name, self.ledger_dir, dead, self.faults)
        if self.kind == "reliable":
            for queue in self.stack.queues:
                result.invariant_violations += check_settled(self.stack.client, queue).violations
        return result
