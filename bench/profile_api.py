"""Record a pyinstrument profile of the API serving ``POST /jobs`` under load.

``python -m bench.profile_api --seconds 5`` starts a private Redis and ``jobrunner api
--debug-routes``, drives POST /jobs from threads of this process, asks the API's own
``/debug/profile`` for the window (speedscope format: an HTML page of a busy API runs to several
MB) and writes ``profiles/api-post-jobs.speedscope.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from rich.console import Console

from jobrunner.redis_server import RedisServer, free_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("profiles"))
    args = parser.parse_args(argv)
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    with RedisServer() as server:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = subprocess.Popen(
            [sys.executable, "-m", "jobrunner.cli", "api", "--port", str(port),
             "--redis-url", server.url, "--debug-routes", "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        stop = threading.Event()
        sent = [0] * args.clients
        try:
            with console.status("waiting for the API"):
                for _ in range(300):
                    try:
                        if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        stop.wait(0.1)

            def client(i: int) -> None:  # bounded by the profile window
                with httpx.Client(base_url=base, timeout=30) as http:
                    while not stop.is_set():
                        http.post("/jobs", json={"type": "noop", "data": {"n": sent[i]}})
                        sent[i] += 1

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            with console.status(f"profiling the API for {args.seconds}s under load"):
                profile = httpx.get(
                    f"{base}/debug/profile",
                    params={"seconds": args.seconds, "format": "speedscope"},
                    timeout=args.seconds + 60,
                ).text
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            stop.set()
            api.terminate()
            api.wait(20)
    path = args.out / "api-post-jobs.speedscope.json"  # open it at speedscope.app
    path.write_text(profile, encoding="utf-8")
    console.print(f"wrote {path} ({path.stat().st_size // 1024} KiB); {sum(sent):,} requests sent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
