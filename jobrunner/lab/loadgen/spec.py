"""What a load run does: target, concurrency model, loop kind, job mix, size and length."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Target = Literal["http", "queue"]
Model = Literal["asyncio", "thread", "process"]
Loop = Literal["closed", "open"]


def parse_mix(text: str) -> dict[str, float]:
    """``"noop=0.7,email=0.3"`` (or ``"noop"``) -> normalised weights; ValueError says why."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"empty job type in mix {text!r}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"weight of {name!r} is not a number: {weight!r}") from None
        if value <= 0:
            raise ValueError(f"weight of {name!r} must be positive")
        mix[name] = mix.get(name, 0.0) + value
    if not mix:
        raise ValueError("the job mix is empty")
    total = sum(mix.values())
    return {name: weight / total for name, weight in mix.items()}


@dataclass
class LoadSpec:
    """One run. ``rate`` (jobs per second) is the open loop's arrival rate; a closed loop has
    ``concurrency`` clients each sending its next request as soon as the last one returned.

    Give ``total`` jobs or ``duration`` seconds (a duration with a rate means rate x duration).
    """

    target: Target = "http"
    url: str = "http://127.0.0.1:8000"  # the API for http, a redis:// URL for queue
    token: str = field(default="", repr=False)  # the API's bearer token (enqueue scope)
    model: Model = "asyncio"
    concurrency: int = 16
    processes: int = 2  # the process model's process count; concurrency is split across them
    loop: Loop = "closed"
    rate: float = 0.0
    total: int | None = 10_000
    duration: float | None = None
    batch: int = 1  # jobs per request
    mix: dict[str, float] = field(default_factory=lambda: {"noop": 1.0})
    payload_bytes: int = 0
    queue: str = "default"
    seed: int = 1
    wait_for_completion: float = 60.0  # seconds to wait for jobs to finish, for e2e latency

    def http_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def check(self) -> LoadSpec:
        """Raise ValueError naming the first inconsistent field."""
        if self.target not in ("http", "queue"):
            raise ValueError(f"target must be http or queue, not {self.target!r}")
        if self.model not in ("asyncio", "thread", "process"):
            raise ValueError(f"model must be asyncio, thread or process, not {self.model!r}")
        if self.loop not in ("closed", "open"):
            raise ValueError(f"loop must be closed or open, not {self.loop!r}")
        if self.concurrency < 1 or self.batch < 1 or self.processes < 1:
            raise ValueError("concurrency, batch and processes must be at least 1")
        if self.loop == "open" and self.rate <= 0:
            raise ValueError("an open loop needs rate > 0 (jobs per second)")
        if self.total is None and self.duration is None:
            raise ValueError("give total jobs or a duration")
        if self.total is not None and self.total < 1:
            raise ValueError("total must be at least 1")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.payload_bytes < 0:
            raise ValueError("payload_bytes must not be negative")
        if not self.mix:
            raise ValueError("the job mix is empty")
        return self

    @property
    def requests(self) -> int | None:
        """Requests to send, when known in advance (open loop: from rate and duration)."""
        jobs = self.total
        if jobs is None and self.loop == "open" and self.duration is not None:
            jobs = max(1, round(self.rate * self.duration))
        return None if jobs is None else -(-jobs // self.batch)

    @property
    def request_interval(self) -> float:
        """Seconds between intended request starts in an open loop."""
        return self.batch / self.rate if self.rate else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("token")  # a credential: never written into a result file
        return out


class JobFactory:
    """Job bodies drawn from the mix with a seeded generator, padded to ``payload_bytes``."""

    def __init__(self, spec: LoadSpec, stream: int = 0) -> None:
        self._rng = random.Random(spec.seed * 1_000_003 + stream)
        self._types = list(spec.mix)
        self._weights = [spec.mix[t] for t in self._types]
        self._pad = "x" * spec.payload_bytes
        self.queue = spec.queue

    def types(self, n: int) -> list[str]:
        return self._rng.choices(self._types, self._weights, k=n)

    def payload(self) -> dict[str, Any]:
        return {"pad": self._pad} if self._pad else {}
