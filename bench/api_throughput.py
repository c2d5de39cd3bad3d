"""POST /jobs throughput, single and batched, against a bare endpoint measured in the same run.

``python -m bench.api_throughput [--seconds 5] [--connections 32]`` starts a private Redis and
``jobrunner api`` (one uvicorn process on uvloop), and drives it with ``wrk`` (Debian's package:
``apt-get install wrk``), a load from a second process on loopback. The bare endpoint is
``GET /healthz``, which touches nothing: the ratio says what enqueueing costs on top of HTTP.
Authentication is on (a token with the enqueue scope); the single-job POST is also measured
against a second API with ``--no-auth``, alternating, to show what checking the token costs.
Figures go to ``results/bench-api.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from bench.api_process import serving_api
from jobrunner.dev.redis_server import RedisServer
from jobrunner.tokens import encode_record, new_token, tokens_key

BATCH = 100


def wrk(
    url: str, seconds: float, connections: int, body: str | None = None, token: str = ""
) -> float:
    """Requests per second that wrk measured (with ``body``: POSTed as JSON)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    with tempfile.TemporaryDirectory() as tmp:
        if body is not None:
            script = Path(tmp) / "post.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                + (f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else "")
                + f"wrk.body = {json.dumps(body)}\n"
            )
            args[1:1] = ["-s", str(script)]
        output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not found or "Non-2xx" in output:
        raise SystemExit(f"wrk failed or saw errors:\n{output}")
    return float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="auth on/off pairs, alternating")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    console = Console()
    if shutil.which("wrk") is None:
        console.print("[yellow]wrk is not installed (apt-get install wrk): API benchmark skipped")
        return 0
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        token, record = new_token("bench", ["enqueue"])
        client.hset(tokens_key(), record.id, encode_record(record))
        rows: dict[str, float] = {}
        single = '{"type": "noop"}'
        with serving_api(server.url) as api, serving_api(server.url, "--no-auth") as open_api:
            with console.status("GET /healthz (bare endpoint)"):
                rows["bare GET /healthz"] = wrk(f"{api.base}/healthz", args.seconds,
                                                args.connections)  # fmt: skip
            on: list[float] = []
            off: list[float] = []
            for i in range(args.repeats):  # alternating, so drift hits both alike
                with console.status(f"POST /jobs, 1 job, auth on then off ({i + 1})"):
                    on.append(wrk(f"{api.base}/jobs", args.seconds, args.connections, single,
                                  token))  # fmt: skip
                    off.append(wrk(f"{open_api.base}/jobs", args.seconds, args.connections,
                                   single))  # fmt: skip
            rows["POST /jobs, 1 job"] = statistics.median(on)
            rows["POST /jobs, 1 job, --no-auth"] = statistics.median(off)
            single_jobs = client.llen("jr:{default}:ready")
            client.delete("jr:{default}:ready")
            batch = json.dumps({"jobs": [{"type": "noop"}] * BATCH})
            with console.status(f"POST /jobs, {BATCH} jobs per request"):
                rows[f"POST /jobs, {BATCH} jobs"] = wrk(
                    f"{api.base}/jobs", args.seconds, args.connections, batch, token
                )
            batch_jobs = client.llen("jr:{default}:ready")
        client.close()
    bare = rows["bare GET /healthz"]
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": args.seconds,
        "connections": args.connections,
        "requests_per_second": rows,
        "jobs_per_second_batched": rows[f"POST /jobs, {BATCH} jobs"] * BATCH,
        "ratio_to_bare": {name: value / bare for name, value in rows.items()},
        "jobs_in_redis": {"single": single_jobs, "batched": batch_jobs},
        "auth_on_off_pairs": {"on": on, "off": off},
        "auth_cost_ratio": statistics.median(a / b for a, b in zip(on, off, strict=True)),
    }
    table = Table("endpoint", "requests/s", "jobs/s", "vs bare endpoint")
    lines = ["| endpoint | requests/s | jobs/s | vs bare endpoint |", "|---|---:|---:|---:|"]
    for name, value in rows.items():
        jobs = value * (BATCH if str(BATCH) in name else 1) if "POST" in name else 0
        cells = (name, f"{value:,.0f}", f"{jobs:,.0f}" if jobs else "-", f"{value / bare:.2f}x")
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-api.json").write_text(json.dumps(report, indent=2) + "\n")
    header = (
        f"# POST /jobs throughput\n\nMeasured {report['date']} by `python -m bench.api_throughput`"
        f": wrk, 1 thread, {args.connections} connections, {args.seconds:.0f} s per endpoint, "
        "against one `jobrunner api` process and a private Redis on the same 2-core machine.\n\n"
    )
    cost = report["auth_cost_ratio"]
    lines.append(
        f"\nWith authentication on, single-job POST /jobs ran at {cost:.2f}x the rate "
        f"of the same API with --no-auth (median of {args.repeats} alternating pairs)."
    )
    (args.out / "bench-api.md").write_text(header + "\n".join(lines) + "\n")
    console.print(f"wrote {args.out / 'bench-api.json'} and {args.out / 'bench-api.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
