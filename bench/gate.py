"""The benchmark regression gate: judge a timed run by ratios it measured itself.

    python -m bench.gate results/benchmarks/ci-latest.json [--baseline bench/baselines.json]
    python -m bench.gate --update-baseline RUN.json [RUN.json ...]

A shared, noisy machine moves every time from one minute to the next (docs/performance.md has
the measured spread), so absolute times cannot gate a build. Each gated benchmark carries a
calibration (``extra_info["calibration"]``, written by ``bench.conftest.Calibration``): a probe
of nothing but the machine (a Redis PING, a piece of pure Python, ``GET /healthz``) timed right
before and after it. The gate divides the benchmark's time by its probe's (the same statistic
of each) and compares that ratio with the committed baseline's: a ratio more than
``tolerance`` times the baseline's fails the run; one that fell by as much passes, with a note
to update the baseline. ``--update-baseline`` writes the baseline from one or more runs: the
median ratio of each, its spread over the runs, and each run's commit and load average.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).with_name("baselines.json")
STATISTIC = "min"  # of a benchmark's rounds, and of its probe's: noise only ever adds time
TOLERANCE = 1.6


@dataclass(frozen=True)
class Ratio:
    name: str
    calibration: str
    value: float


@dataclass(frozen=True)
class Verdict:
    name: str
    ratio: float | None
    baseline: float | None
    tolerance: float
    status: str  # ok, faster, new: pass; SLOWER, MISSING: fail

    @property
    def change(self) -> float | None:
        if self.ratio is None or self.baseline is None:
            return None
        return self.ratio / self.baseline

    @property
    def failed(self) -> bool:
        return self.status in ("SLOWER", "MISSING")


def ratios(run: dict[str, Any], statistic: str = STATISTIC) -> dict[str, Ratio]:
    """Each calibrated benchmark of a pytest-benchmark JSON run: its time over its probe's."""
    out: dict[str, Ratio] = {}
    for bench in run["benchmarks"]:
        calibration = bench.get("extra_info", {}).get("calibration")
        if calibration:
            value = bench["stats"][statistic] / calibration[statistic]
            out[bench["name"]] = Ratio(bench["name"], calibration["name"], value)
    return out


def combined(runs: list[dict[str, Any]], statistic: str = STATISTIC) -> dict[str, Ratio]:
    """Each ratio's median over the runs that measured it (bench.ci re-runs a failing benchmark
    twice, so one noisy run can neither fail nor pass it alone)."""
    measured = [ratios(run, statistic) for run in runs]
    out: dict[str, Ratio] = {}
    for name in dict.fromkeys(name for m in measured for name in m):
        values = [m[name].value for m in measured if name in m]
        calibration = next(m[name].calibration for m in measured if name in m)
        out[name] = Ratio(name, calibration, statistics.median(values))
    return out


def judge(
    measured: dict[str, Ratio], baseline: dict[str, Any], partial: bool = False
) -> list[Verdict]:
    """One verdict per ratio of the baseline (and per new one): slower than the baseline by more
    than its tolerance fails, and so does a ratio the run did not measure, unless ``partial``."""
    default = float(baseline.get("tolerance", TOLERANCE))
    verdicts = []
    for name, entry in baseline["ratios"].items():
        tolerance = float(entry.get("tolerance", default))
        ratio = measured.get(name)
        if ratio is None:
            if not partial:
                verdicts.append(Verdict(name, None, entry["ratio"], tolerance, "MISSING"))
            continue
        change = ratio.value / entry["ratio"]
        status = "SLOWER" if change > tolerance else "faster" if change < 1 / tolerance else "ok"
        verdicts.append(Verdict(name, ratio.value, entry["ratio"], tolerance, status))
    for name, ratio in measured.items():
        if name not in baseline["ratios"]:
            verdicts.append(Verdict(name, ratio.value, None, default, "new"))
    return verdicts


def table(verdicts: list[Verdict]) -> str:
    def number(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"

    rows = [("benchmark", "ratio", "baseline", "change", "limit", "verdict")]
    rows += [(v.name, number(v.ratio), number(v.baseline),
              "-" if v.change is None else f"{v.change:.2f}x", f"{v.tolerance:g}x", v.status)
             for v in verdicts]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    return "\n".join(lines)


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """Where a run was measured: its commit, machine, time and load average."""
    commit, machine = run.get("commit_info", {}), run.get("machine_info", {})
    return {
        "commit": str(commit.get("id", ""))[:12] + ("+dirty" if commit.get("dirty") else ""),
        "datetime": run.get("datetime", "")[:19],
        "machine": f"{machine.get('node', '?')}: {machine.get('cpu', {}).get('count', '?')} CPUs "
        f"({machine.get('machine', '?')}), {machine.get('python_implementation', '')} "
        f"{machine.get('python_version', '')}",
        "loadavg": run.get("loadavg"),
    }


def make_baseline(
    runs: list[dict[str, Any]], statistic: str, tolerance: float, old: dict[str, Any]
) -> dict[str, Any]:
    """The baseline from one or more runs: each ratio's median over them, and its spread (the
    largest over the smallest), which is what the tolerance has to clear."""
    measured = [ratios(run, statistic) for run in runs]
    names = sorted(set.intersection(*(set(m) for m in measured)))
    entries: dict[str, Any] = {}
    for name in names:
        values = [m[name].value for m in measured]
        middle = statistics.median(values)
        entries[name] = {
            "calibration": measured[0][name].calibration,
            "ratio": round(middle, 4),
            "spread": round(max(values) / min(values), 3),
            "worst_run": round(max(values) / middle, 3),  # what noise alone did above the ratio
        }
        kept = old.get("ratios", {}).get(name, {}).get("tolerance")
        if kept is not None:  # a tolerance set by hand for one ratio stays
            entries[name]["tolerance"] = kept
    return {
        "about": "Written by `python -m bench.gate --update-baseline`; see docs/performance.md.",
        "statistic": statistic,
        "tolerance": tolerance,
        "runs": [summary(run) for run in runs],
        "largest_spread": max((e["spread"] for e in entries.values()), default=1.0),
        "worst_run": max((e["worst_run"] for e in entries.values()), default=1.0),
        "ratios": entries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "runs", type=Path, nargs="+", help="pytest-benchmark JSON (--benchmark-json)"
    )
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument(
        "--update-baseline",
        action="store_true",
        help="write the baseline from the runs instead of judging them",
    )
    parser.add_argument("--tolerance", type=float, help="with --update-baseline: the new default")
    parser.add_argument(
        "--partial",
        action="store_true",
        help="judge only the ratios the run measured (a run of a few benchmarks)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    old = json.loads(args.baseline.read_text()) if args.baseline.exists() else {}
    runs = [json.loads(path.read_text()) for path in args.runs]
    if args.update_baseline:
        tolerance = args.tolerance or float(old.get("tolerance", TOLERANCE))
        baseline = make_baseline(runs, old.get("statistic", STATISTIC), tolerance, old)
        args.baseline.write_text(json.dumps(baseline, indent=2) + "\n")
        print(f"{args.baseline}: {len(baseline['ratios'])} ratios from {len(runs)} run(s), "
              f"largest spread {baseline['largest_spread']}x, tolerance {tolerance}x")  # fmt: skip
        return 0
    if not old:
        parser.error(f"no baseline at {args.baseline}: write one with --update-baseline")
    verdicts = judge(combined(runs, old.get("statistic", STATISTIC)), old, args.partial)
    print(table(verdicts))
    failed = [v.name for v in verdicts if v.failed]
    where = summary(runs[0])
    print(
        f"\n{args.runs[0]}: commit {where['commit']}, load average {where['loadavg']}; "
        f"baseline {args.baseline} (tolerance {old.get('tolerance', TOLERANCE)}x)"
    )
    if failed:
        print(f"REGRESSION: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("no regression")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
