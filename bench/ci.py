"""CI's benchmark step (``make test`` runs it after the tests): the pytest-benchmark suite timed
for real at small sizes, then the regression gate on the run.

    python -m bench.ci [--out results/benchmarks/ci-latest.json] [-k EXPR] [--no-gate]

Small sizes: each micro-benchmark gets a quarter of a second of rounds, each drain scenario
five rounds of 2,000 jobs (``make bench`` runs 20,000). The JSON it writes is CI's artifact;
``python -m bench.gate`` judges it against ``bench/baselines.json``. A benchmark the gate fails
is run twice more (``ci-latest-confirm-N.json`` beside it) and judged by the median of its three
ratios: on the shared machine one run in a few puts some ratio past the tolerance by noise
alone (docs/performance.md), and a real slowdown fails all three.
"""

from __future__ import annotations

import argparse
import json
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
CONFIRMATIONS = 2
SIZES = {"BENCH_DRAIN_JOBS": "2000", "BENCH_DRAIN_ROUNDS": "5"}
ARGS = ["--benchmark-only", "--benchmark-max-time=0.25", "--benchmark-columns=median,min,rounds",
        "--benchmark-sort=name", "-p", "no:cacheprovider", "-q"]  # fmt: skip


def run_benchmarks(
    out: Path,
    select: str | None = None,
    env: Mapping[str, str] | None = None,
    tests: list[str] = FILES,
) -> subprocess.CompletedProcess[str]:
    """Run the small timed suite (``select``: a pytest -k expression) and write its JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", *tests, *ARGS, f"--benchmark-json={out}"]
    if select:
        command += ["-k", select]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, **SIZES, **(env or {})},
                          capture_output=True, text=True, check=False)  # fmt: skip


def ran(done: subprocess.CompletedProcess[str]) -> bool:
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    return done.returncode == 0


def failing(runs: list[Path], partial: bool, baseline_path: Path = gate.BASELINE) -> list[str]:
    """The node ids of the benchmarks the gate fails on these runs."""
    baseline = json.loads(baseline_path.read_text())
    loaded = [json.loads(path.read_text()) for path in runs]
    verdicts = gate.judge(gate.combined(loaded, baseline["statistic"]), baseline, partial)
    names = {v.name for v in verdicts if v.status == "SLOWER"}
    return [b["fullname"] for b in loaded[0]["benchmarks"] if b["name"] in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("-k", dest="select", help="only the benchmarks this -k expression picks")
    parser.add_argument("--no-gate", action="store_true", help="run the benchmarks only")
    parser.add_argument("--baseline", type=Path, default=gate.BASELINE, help="judged against")
    args = parser.parse_args(argv)
    for old in args.out.parent.glob(f"{args.out.stem}-confirm-*.json"):
        old.unlink()
    if not ran(run_benchmarks(args.out, args.select)):
        return 1
    if args.no_gate:
        return 0
    runs, partial = [args.out], bool(args.select)
    suspects = failing(runs, partial, args.baseline)
    for n in range(1, CONFIRMATIONS + 1) if suspects else ():
        print(f"\nthe gate fails {len(suspects)} benchmark(s): run {n} of {CONFIRMATIONS} to "
              "confirm", file=sys.stderr)  # fmt: skip
        confirm = args.out.with_name(f"{args.out.stem}-confirm-{n}.json")
        if not ran(run_benchmarks(confirm, tests=suspects)):
            return 1
        runs.append(confirm)
    judged = ["--baseline", str(args.baseline)] + (["--partial"] if partial else [])
    return gate.main([str(path) for path in runs] + judged)


if __name__ == "__main__":
    raise SystemExit(main())
