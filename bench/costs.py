"""The cost figures, as ``make bench`` ends with them: what a job costs, per path, in units that
hold from machine to machine (CPU µs, Redis commands), beside the rates this machine moved.

    python -m bench.costs [--results results]

Reads the committed (or just re-measured) ``bench-enqueue-cost.json`` and
``bench-models-io.json``, prints one table and writes ``results/costs.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("path", "jobs/s", "ratio", "client CPU µs", "worker CPU µs", "Redis CPU µs",
           "Redis commands")  # fmt: skip


def rows(results: Path) -> list[tuple[str, ...]]:
    enqueue: dict[str, Any] = json.loads((results / "bench-enqueue-cost.json").read_text())
    models: dict[str, Any] = json.loads((results / "bench-models-io.json").read_text())
    out = []
    for name, v in enqueue["paths"].items():
        out.append((f"enqueue: {name}", f"{v['jobs_per_s']:,.0f}",
                    f"{v['rate_ratio_to_huey']:.2f}x Huey", f"{v['client_cpu_us']:.1f}", "",
                    f"{v['redis_cpu_us']:.1f}", f"{v['redis_commands']:.2f}"))  # fmt: skip
    for kind, by_model in models["kinds"].items():
        for model, v in by_model.items():
            out.append((f"drain, {kind}: {model}", f"{v['jobs_per_s']:,.0f}",
                        f"{v['ratio_to_asyncio']:.2f}x asyncio", "", f"{v['worker_cpu_us']:.0f}",
                        "", f"{v['commands_per_job']:.1f}"))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    table = Table(title="What a job costs (per job; rates are this machine's)")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "path" else "right")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---" + "|---:" * (len(COLUMNS) - 1) + "|"]
    for row in rows(args.results):
        table.add_row(*row)
        lines.append("| " + " | ".join(row) + " |")
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    (args.results / "costs.md").write_text("# What a job costs\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
