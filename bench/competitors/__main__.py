"""``python -m bench.competitors enqueue MODULE N``: enqueue N no-op jobs with one library's own
client (``BENCH_REDIS_URL`` names the server) and print ``{"seconds": ...}`` as one JSON line.

The harness runs every library's enqueue in a fresh process like this one, so that no library's
import-time set-up (a global app, broker or event loop policy) touches another's measurement.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.competitors")
    parser.add_argument("command", choices=["enqueue"])
    parser.add_argument("module", help="a module of bench.competitors, e.g. rq")
    parser.add_argument("jobs", type=int)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # a library's deprecation notices are not the measurement
    module = importlib.import_module(f"bench.competitors.{args.module}")
    seconds = module.enqueue(args.jobs)
    print(json.dumps({"seconds": seconds, "jobs": args.jobs}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
