"""docs/history.md quotes results/archive.json's run: re-run bench.archive_rate and forget the
prose, and this fails instead of the text misleading a reader."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HISTORY = (ROOT / "docs" / "history.md").read_text()


def test_the_history_figures_are_the_committed_run() -> None:
    run = json.loads((ROOT / "results" / "archive.json").read_text())
    drain = run["drain"]
    quoted = [
        f"{run['write']['rows_per_s']:,} rows/s",
        f"{run['archiver']['rows_per_s']:,} rows/s",
        f"| {drain['ratio_archiver_vs_off']:.3f} |",
        f"at commit\n{run['commit'][:7]}",
        f"load average {run['load_average'][0]:.2f}",
        *(f"{drain[side]['median_jobs_per_s']:,} jobs/s" for side in drain if " " in side),
    ]
    missing = [figure for figure in quoted if figure not in HISTORY]
    assert missing == []
