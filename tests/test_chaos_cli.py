"""``jobrunner chaos``: the same kill loop on the naive queue loses jobs; on the reliable one,
none (the comparison the failure-injection notebook shows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import FAST_LOOPS, ROOT

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def chaos(tmp_path: Path, kind: str, *args: str) -> dict[str, object]:
    out = tmp_path / f"{kind}.json"
    done = subprocess.run(
        [sys.executable, "-m", "jobrunner.cli", "chaos", "--queue-kind", kind, "--duration", "4",
         "--kill-every", "1.5", "--lease", "1", "--out", str(out), *args],
        capture_output=True, text=True, timeout=110, cwd=ROOT,
        env={**__import__("os").environ, **FAST_LOOPS},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"chaos[cli-{kind}]: sent=" in done.stdout
    report: dict[str, object] = json.loads(out.read_text())
    return report


def test_the_naive_queue_loses_jobs_where_the_reliable_one_loses_none(tmp_path: Path) -> None:
    naive = chaos(tmp_path, "naive")
    reliable = chaos(tmp_path, "reliable", "--pause-every", "2", "--pause-for", "1.5")
    assert (naive["faults"], reliable["faults"]) == (2, 3)  # kills at 1.5 s, 3 s; a pause at 2 s
    assert naive["lost"] > 0  # type: ignore[operator]
    assert (reliable["lost"], reliable["phantoms"], reliable["invariant_violations"]) == (0, 0, [])
    assert reliable["duplicates"] <= reliable["in_flight_at_faults"]  # type: ignore[operator]
