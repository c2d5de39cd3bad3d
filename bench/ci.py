"""CI's benchmark step (``make test`` runs it after the tests): the pytest-benchmark suite timed
for real at small sizes, then the regression gate on the run.

    python -m bench.ci [--out results/benchmarks/ci-latest.json] [-k EXPR] [--no-gate]

Small sizes: each micro-benchmark gets a quarter of a second of rounds, each drain scenario
five rounds of 2,000 jobs (``make bench`` runs 20,000). The JSON it writes is CI's artifact;
``python -m bench.gate`` judges it against ``bench/baselines.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench import gate

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks" / "ci-latest.json"
FILES = ["bench/test_micro.py", "bench/test_codec.py", "bench/test_validation.py",
         "bench/test_drain.py", "bench/test_api.py"]  # fmt: skip
SIZES = {"BENCH_DRAIN_JOBS": "2000", "BENCH_DRAIN_ROUNDS": "5"}
ARGS = ["--benchmark-only", "--benchmark-max-time=0.25", "--benchmark-columns=median,min,rounds",
        "--benchmark-sort=name", "-p", "no:cacheprovider", "-q"]  # fmt: skip


def run_benchmarks(
    out: Path, select: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the small timed suite (``select``: a pytest -k expression) and write its JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", *FILES, *ARGS, f"--benchmark-json={out}"]
    if select:
        command += ["-k", select]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, **SIZES, **(env or {})},
                          capture_output=True, text=True, check=False)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("-k", dest="select", help="only the benchmarks this -k expression picks")
    parser.add_argument("--no-gate", action="store_true", help="run the benchmarks only")
    args = parser.parse_args(argv)
    done = run_benchmarks(args.out, args.select)
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    if done.returncode != 0:
        return done.returncode
    if args.no_gate:
        return 0
    return gate.main([str(args.out)] + (["--partial"] if args.select else []))


if __name__ == "__main__":
    raise SystemExit(main())
