"""Turn pytest-benchmark JSON into the committed results: a CSV, a Markdown table with the
ratios that matter, and a bar chart with the spread over rounds.

    python -m bench.report results/bench-pytest.json [--compare OLDER.json] [--out results]

With ``--compare`` (a run saved by ``--benchmark-save``/``--benchmark-autosave`` under
``.benchmarks/``) the chart puts both runs side by side, the way ``--benchmark-compare`` prints
them, so a regression is visible at a glance.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

RATIOS = [
    ("thread / asyncio (1 process)", "reliable-thread-1proc", "reliable-asyncio-1proc"),
    ("process / asyncio (1 process)", "reliable-process-1proc", "reliable-asyncio-1proc"),
    ("2 processes / 1 (no-op jobs)", "reliable-asyncio-2proc", "reliable-asyncio-1proc"),
    ("2 processes / 1 (CPU-bound jobs)", "reliable-cpu-2proc", "reliable-cpu-1proc"),
    ("naive BRPOP / reliable (asyncio)", "naive-brpop-1proc", "reliable-asyncio-1proc"),
]


def load_drain(path: Path) -> dict[str, dict[str, Any]]:
    """Scenario -> jobs per round, and jobs per second (mean, and over the rounds' min/max)."""
    data = json.loads(path.read_text())
    out: dict[str, dict[str, Any]] = {}
    for bench in data["benchmarks"]:
        if bench.get("group") != "drain":
            continue
        info, stats = bench["extra_info"], bench["stats"]
        jobs = info["jobs"]
        out[info["scenario"]] = {
            "scenario": info["scenario"],
            "jobs_per_round": jobs,
            "rounds": stats["rounds"],
            "mean_s": stats["mean"],
            "stddev_s": stats["stddev"],
            "jobs_per_s": jobs / stats["mean"],
            "jobs_per_s_worst": jobs / stats["max"],
            "jobs_per_s_best": jobs / stats["min"],
        }
    return out


def machine_line(path: Path) -> str:
    data = json.loads(path.read_text())
    m, c = data["machine_info"], data.get("commit_info", {})
    return (f"{m.get('cpu', {}).get('count', '?')} CPUs ({m.get('machine')}), "
            f"{m.get('python_implementation')} {m.get('python_version')}, "
            f"{data.get('datetime', '')[:19]}, commit `{str(c.get('id', ''))[:10]}`")  # fmt: skip


def write_csv(rows: dict[str, dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(next(iter(rows.values()))))
        writer.writeheader()
        writer.writerows(rows.values())


def markdown(rows: dict[str, dict[str, Any]], source: Path) -> str:
    lines = [
        "# Drain throughput per scenario",
        "",
        f"From `{source}`: {machine_line(source)}. Redis, the workers and the timer share the "
        "machine. Each round drains a fresh batch; the spread is the worst and best round.",
        "",
        "| scenario | jobs/round | rounds | jobs/s (mean) | worst..best round |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows.values():
        lines.append(f"| {r['scenario']} | {r['jobs_per_round']:,} | {r['rounds']} | "
                     f"{r['jobs_per_s']:,.0f} | {r['jobs_per_s_worst']:,.0f}.."
                     f"{r['jobs_per_s_best']:,.0f} |")  # fmt: skip
    lines += ["", "| ratio (same run) | value |", "|---|---:|"]
    for label, a, b in RATIOS:
        if a in rows and b in rows:
            lines.append(f"| {label} | {rows[a]['jobs_per_s'] / rows[b]['jobs_per_s']:.2f}x |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(runs.values())))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(runs)
    for i, (label, rows) in enumerate(runs.items()):
        xs = [n + i * width for n in range(len(names))]
        means = [rows[s]["jobs_per_s"] if s in rows else 0 for s in names]
        low = [
            m - rows[s]["jobs_per_s_worst"] if s in rows else 0
            for s, m in zip(names, means, strict=True)
        ]
        high = [
            rows[s]["jobs_per_s_best"] - m if s in rows else 0
            for s, m in zip(names, means, strict=True)
        ]
        ax.bar(xs, means, width, yerr=[low, high], capsize=3, label=label)
    ax.set_xticks([n + width * (len(runs) - 1) / 2 for n in range(len(names))])
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("jobs drained per second (bars: worst..best round)")
    ax.set_title("Drain throughput by scenario (CPU scenarios: ~0.5 ms jobs)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("run", type=Path)
    parser.add_argument("--compare", type=Path, help="an earlier saved run")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    rows = load_drain(args.run)
    if not rows:
        parser.error(f"no drain benchmarks in {args.run}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "bench-drain.csv")
    (args.out / "bench-drain.md").write_text(markdown(rows, args.run))
    runs = {"this run": rows}
    if args.compare:
        runs = {f"earlier: {args.compare.stem}": load_drain(args.compare), "this run": rows}
    plot(runs, args.out / "bench-drain.png")
    print((args.out / "bench-drain.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
