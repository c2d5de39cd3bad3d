"""POST /jobs of this checkout against an earlier commit's, side by side in one run.

``python -m bench.api_versus --base REV [--pairs 5] [--seconds 5]`` checks REV out into a
temporary git worktree, starts its ``jobrunner api`` (from that tree, on the same Redis and
interpreter) beside this checkout's, and measures single-job ``POST /jobs`` with wrk on each,
alternating, so the machine's drift hits both alike. This checkout's API runs as deployed
(authentication on, with a token); the base runs as it did. The ratio is this/base per pair.
Figures go to ``results/bench-api-versus.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from bench.api_throughput import wrk
from bench.parked import checkout
from jobrunner.dev.redis_server import RedisServer, free_port
from jobrunner.tokens import encode_record, new_token, tokens_key

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def api_from(tree: Path, redis_url: str) -> Iterator[str]:
    """``jobrunner api`` run from ``tree``'s code; yields its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrunner.cli", "api", "--port", str(port), "--redis-url",
         redis_url, "--log-level", "warning", "--import", "jobrunner.lab.handlers.demo"],
        cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"the API from {tree} did not start") from None
                time.sleep(0.1)  # start-up poll: the process gives no other readiness signal
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    body = '{"type": "noop"}'
    with checkout(args.base) as base_tree, RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        token, record = new_token("bench", ["enqueue"])
        client.hset(tokens_key(), record.id, encode_record(record))
        this, base = [], []
        with api_from(ROOT, server.url) as ours, api_from(base_tree, server.url) as old:
            for i in range(args.pairs):
                print(f"pair {i + 1}/{args.pairs}", file=sys.stderr)
                this.append(wrk(f"{ours}/jobs", args.seconds, args.connections, body,
                                token))  # fmt: skip
                base.append(wrk(f"{old}/jobs", args.seconds, args.connections, body))
                client.delete("jr:{default}:ready")
        client.close()
    ratios = [a / b for a, b in zip(this, base, strict=True)]
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "this": head, "base": args.base, "seconds": args.seconds,
        "connections": args.connections, "load_average": os.getloadavg(),
        "this_rps": this, "base_rps": base, "ratio_median": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-api-versus.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
