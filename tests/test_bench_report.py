"""bench.report: pytest-benchmark JSON -> CSV, Markdown ratios and a chart (pure logic)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench.report import main


def fake_run(path: Path, means: dict[str, float], jobs: int = 1000) -> Path:
    benchmarks = [
        {"group": "drain", "extra_info": {"jobs": jobs, "scenario": name},
         "stats": {"rounds": 3, "mean": mean, "stddev": mean / 10, "min": mean * 0.9,
                   "max": mean * 1.2}}
        for name, mean in means.items()
    ]  # fmt: skip
    benchmarks.append({"group": "queue", "extra_info": {}, "stats": {}})  # ignored
    path.write_text(json.dumps({
        "benchmarks": benchmarks, "datetime": "2026-11-28T00:00:00",
        "machine_info": {"cpu": {"count": 2}, "machine": "x86_64",
                         "python_implementation": "CPython", "python_version": "3.11.7"},
        "commit_info": {"id": "abcdef1234567"},
    }))  # fmt: skip
    return path


def test_report_computes_rates_and_same_run_ratios(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run.json", {"reliable-asyncio-1proc": 0.1,
                                           "reliable-thread-1proc": 0.2})  # fmt: skip
    earlier = fake_run(tmp_path / "old.json", {"reliable-asyncio-1proc": 0.2})
    assert main([str(run), "--compare", str(earlier), "--out", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "bench-drain.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["scenario"] for r in rows] == ["reliable-asyncio-1proc", "reliable-thread-1proc"]
    assert float(rows[0]["jobs_per_s"]) == 10_000  # 1000 jobs in 0.1 s
    assert float(rows[0]["jobs_per_s_worst"]) == 1000 / 0.12
    text = (tmp_path / "out" / "bench-drain.md").read_text()
    assert "| thread / asyncio (1 process) | 0.50x |" in text
    assert "naive" not in text  # a ratio whose scenarios did not run is left out
    assert (tmp_path / "out" / "bench-drain.png").stat().st_size > 10_000
