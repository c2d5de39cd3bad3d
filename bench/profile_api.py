"""Record a py-spy flamegraph of the API serving ``POST /jobs`` under a wrk load.

``python -m bench.profile_api --seconds 5`` starts a private Redis and one ``jobrunner api``
process, drives ``POST /jobs`` with ``wrk`` from a second process (``apt-get install wrk``),
attaches py-spy to the API meanwhile and writes ``profiles/api-post-jobs.svg``. The API's own
``/debug/profile`` route (pyinstrument) does the same from inside, for a running service.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console

from bench.api_process import serving_api
from jobrunner.dev.profiling import record
from jobrunner.dev.redis_server import RedisServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("profiles"))
    args = parser.parse_args(argv)
    console = Console()
    if shutil.which("wrk") is None:
        console.print("[yellow]wrk is not installed (apt-get install wrk): nothing recorded")
        return 0
    svg = args.out / "api-post-jobs.svg"
    with (
        RedisServer() as server,
        tempfile.TemporaryDirectory() as tmp,
        serving_api(server.url) as api,
    ):
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            'wrk.body = \'{"type": "noop", "data": {"to": "ada@example.com"}}\'\n'
        )
        load = subprocess.Popen(
            ["wrk", "-t1", f"-c{args.connections}", f"-d{round(args.seconds) + 2}s",
             "-s", str(script), f"{api.base}/jobs"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        with console.status(f"py-spy on the API for {args.seconds}s under wrk"):
            code = record(svg, pid=api.process.pid, seconds=args.seconds)
        load.wait(timeout=60)
    if code != 0:
        return code
    console.print(f"wrote {svg} ({svg.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
