"""One queue on one Redis against one sharded queue on a 3-master Redis Cluster, in one run.

    python -m bench.scaling [--jobs 20000] [--shards 3] [--workers 2] [--rounds 3] [--out results]

The measurement is ``jobrunner.lab.scaling`` (notebook 09 steps through it); the setups
alternate, ``--rounds`` times, and each figure is the median of its rounds. Writes
``results/bench-scaling.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench.parked import head_commit
from jobrunner.lab.scaling import median_of, redis_bound, sharded, single, table

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"scaling: {args.jobs} jobs, load average {load[0]:.2f}", flush=True)
    ones, manys = [], []
    for n in range(args.rounds):
        print(f"round {n + 1}/{args.rounds}: one queue on one Redis ...", flush=True)
        ones.append(single(args.jobs, args.workers))
        print(f"round {n + 1}/{args.rounds}: {args.shards} shards on a 3-master cluster ...",
              flush=True)  # fmt: skip
        manys.append(sharded(args.jobs, args.workers, args.shards))
    one, many = median_of(ones), median_of(manys)
    for setup in (one, many):
        setup["redis_bound_jobs_per_s"] = redis_bound(setup)
    result = {"commit": head_commit(), "load_average": [round(x, 2) for x in load],
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "cpus": os.cpu_count(), "shards": args.shards, "workers": args.workers,
              "rounds": args.rounds,
              "single": one, "cluster": many}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(result)
    (args.out / "bench-scaling.md").write_text(
        f"# One queue on one Redis vs sharded on a cluster (commit {result['commit']}, "
        f"load average {load[0]:.2f}, {os.cpu_count()} CPUs)\n\n{text}\n"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
