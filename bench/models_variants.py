"""Workers of any settings side by side on the jobs of ``bench.models_io``, in one run.

    python -m bench.models_variants [--jobs 10000] [--rounds 2] \\
        --variant "asyncio=asyncio" --variant "thread-100=thread --concurrency 100" ...

Each ``--variant`` is ``name=model [worker options]``; the first is the baseline the others'
rates are divided by, round by round. One worker process per variant, each on a Redis of its
own, the variants alternating within each round as in ``bench.models_io``. It answers the
questions that benchmark raises: is the thread model's gap the GIL or its 16 slots (give it
asyncio's 100), what does charging at reservation buy (``--charge-on reserve``). Writes
``results/bench-models-variants.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.models_io import Variant, drain_side_by_side
from bench.parked import head_commit

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(text: str) -> Variant:
    """``"name=model --option value"`` -> (name, model, worker options)."""
    name, sep, rest = text.partition("=")
    words = shlex.split(rest)
    if not sep or not name or not words:
        raise argparse.ArgumentTypeError(f"a variant is name=model [options], not {text!r}")
    return name, words[0], tuple(words[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", type=parse_variant, action="append", required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    variants: list[Variant] = args.variant
    runs = drain_side_by_side(variants, args.jobs, args.rounds, console)
    base = variants[0][0]
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": head_commit(),
        "jobs_per_round": args.jobs, "rounds": args.rounds,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "variants": {name: " ".join([model, *options]) for name, model, options in variants},
        "baseline": base, "kinds": {},
    }  # fmt: skip
    for kind, by_name in runs.items():
        report["kinds"][kind] = {}
        for name, rounds in by_name.items():
            ratios = [r["jobs_per_s"] / b["jobs_per_s"]
                      for r, b in zip(rounds, by_name[base], strict=True)]  # fmt: skip
            report["kinds"][kind][name] = {
                "jobs_per_s": round(statistics.median(r["jobs_per_s"] for r in rounds), 1),
                "worker_cpu_us": round(statistics.median(r["worker_cpu_us"] for r in rounds), 1),
                "context_switches_per_job": round(
                    statistics.median(r["context_switches_per_job"] for r in rounds), 3
                ),
                "ratio_to_baseline": round(statistics.median(ratios), 3),
            }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-models-variants.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print_json(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
