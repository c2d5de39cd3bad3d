"""bench.gate: a timed run judged by same-run ratios against the committed baseline.

The logic is tested on synthetic runs; the last test is the demonstration the issue asks for:
a real timed drain, made twice as slow on purpose (``BENCH_SLOWDOWN``), fails the gate, and
the same drain without it passes.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from bench import ci, gate

CALIBRATION = "redis PING (asyncio)"


def stats(best: float) -> dict[str, float]:
    return {"min": best, "median": best * 1.2, "mean": best * 1.3}


def bench(name: str, best: float, calibration: float | None = None) -> dict[str, Any]:
    """A benchmark's JSON, with its probe's statistics as bench.conftest.Calibration writes them."""
    info = {}
    if calibration is not None:
        info["calibration"] = {"name": CALIBRATION, "samples": 100, **stats(calibration)}
    return {"name": name, "fullname": f"bench/x.py::{name}", "stats": stats(best),
            "extra_info": info}  # fmt: skip


def fake_run(best: dict[str, float], calibration: float = 0.0001) -> dict[str, Any]:
    """A pytest-benchmark run whose benchmarks' probes took ``calibration`` at best."""
    return {
        "benchmarks": [bench(name, time, calibration) for name, time in best.items()],
        "commit_info": {"id": "abcdef1234567890", "dirty": False},
        "machine_info": {"node": "ci", "cpu": {"count": 2}, "machine": "x86_64"},
        "datetime": "2026-12-06T16:00:00.000000",
        "loadavg": [1.5, 1.2, 1.0],
    }


def write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def baseline(ratios: dict[str, float], tolerance: float = 1.6) -> dict[str, Any]:
    entries = {name: {"calibration": CALIBRATION, "ratio": r} for name, r in ratios.items()}
    return {"statistic": "min", "tolerance": tolerance, "ratios": entries}


def test_a_ratio_is_a_benchmark_over_the_probe_timed_beside_it() -> None:
    """Only calibrated benchmarks get a ratio, of the same statistic on both sides."""
    run = fake_run({"test_enqueue_one": 0.0003})
    run["benchmarks"].append(bench("test_uncalibrated", 0.5))
    measured = gate.ratios(run)
    assert list(measured) == ["test_enqueue_one"]
    assert measured["test_enqueue_one"].value == pytest.approx(3.0)
    assert gate.ratios(run, "median")["test_enqueue_one"].value == pytest.approx(3.0)


def test_a_machine_twice_as_slow_all_over_leaves_every_ratio_where_it_was() -> None:
    """The point of calibrating: load that slows the calibration alike cancels out."""
    fast = gate.ratios(fake_run({"a": 0.0003, "b": 0.002}))
    slow = gate.ratios(fake_run({"a": 0.0006, "b": 0.004}, calibration=0.0002))
    assert {n: r.value for n, r in fast.items()} == pytest.approx(
        {n: r.value for n, r in slow.items()}
    )


def test_a_ratio_worse_than_its_baseline_by_more_than_the_tolerance_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1.5x slower passes a 1.6x tolerance, 1.7x fails it, and the table names the culprit."""
    base = write(tmp_path / "base.json", baseline({"a": 2.0, "b": 10.0}))
    verdicts = gate.judge(gate.ratios(fake_run({"a": 0.0003, "b": 0.0017})),
                          json.loads(Path(base).read_text()))  # fmt: skip
    assert [(v.name, v.status) for v in verdicts] == [("a", "ok"), ("b", "SLOWER")]
    assert verdicts[0].change == pytest.approx(1.5)
    run = write(tmp_path / "run.json", fake_run({"a": 0.0003, "b": 0.0017}))
    assert gate.main([run, "--baseline", base]) == 1
    out = capsys.readouterr()
    assert "1.70x" in out.out
    assert "REGRESSION: b" in out.err
    assert gate.main([write(tmp_path / "ok.json", fake_run({"a": 0.0003, "b": 0.0015})),
                      "--baseline", base]) == 0  # fmt: skip


def test_a_much_faster_ratio_passes_and_is_marked_for_a_new_baseline() -> None:
    verdicts = gate.judge(gate.ratios(fake_run({"a": 0.0001})), baseline({"a": 2.0}))
    assert [(v.status, v.failed) for v in verdicts] == [("faster", False)]


def test_a_ratio_the_run_did_not_measure_fails_unless_the_run_is_partial() -> None:
    """A benchmark that vanished (renamed, skipped, crashed) is not silently passed."""
    measured = gate.ratios(fake_run({"a": 0.0002, "new": 0.0001}))
    full = gate.judge(measured, baseline({"a": 2.0, "gone": 1.0}))
    assert [(v.name, v.status) for v in full] == [("a", "ok"), ("gone", "MISSING"), ("new", "new")]
    assert [v.name for v in full if v.failed] == ["gone"]
    partial = gate.judge(measured, baseline({"a": 2.0, "gone": 1.0}), partial=True)
    assert not any(v.failed for v in partial)


def test_a_tolerance_set_for_one_ratio_overrides_the_default() -> None:
    base = baseline({"a": 1.0, "b": 1.0})
    base["ratios"]["b"]["tolerance"] = 2.5
    verdicts = gate.judge(gate.ratios(fake_run({"a": 0.0002, "b": 0.0002})), base)
    assert [(v.name, v.status) for v in verdicts] == [("a", "SLOWER"), ("b", "ok")]


def test_update_baseline_keeps_each_ratios_median_and_spread_over_the_runs(tmp_path: Path) -> None:
    """Three runs: the median ratio, the largest over the smallest, where each ran, and a
    tolerance set by hand for one ratio survives the rewrite."""
    runs = [write(tmp_path / f"run{i}.json", fake_run({"a": a, "b": 0.0005}))
            for i, a in enumerate([0.0002, 0.0003, 0.00025])]  # fmt: skip
    path = tmp_path / "base.json"
    old = baseline({"b": 5.0})
    old["ratios"]["b"]["tolerance"] = 2.0
    path.write_text(json.dumps(old))
    assert (
        gate.main(["--update-baseline", *runs, "--baseline", str(path), "--tolerance", "1.7"]) == 0
    )
    written = json.loads(path.read_text())
    assert written["tolerance"] == 1.7
    assert written["ratios"]["a"] == {"calibration": CALIBRATION, "ratio": 2.5, "spread": 1.5,
                                      "worst_run": 1.2}  # fmt: skip
    assert written["ratios"]["b"] == {"calibration": CALIBRATION, "ratio": 5.0, "spread": 1.0,
                                      "worst_run": 1.0, "tolerance": 2.0}  # fmt: skip
    assert (written["largest_spread"], written["worst_run"]) == (1.5, 1.2)
    assert written["runs"][0]["commit"] == "abcdef123456"
    assert written["runs"][0]["loadavg"] == [1.5, 1.2, 1.0]


def test_several_runs_are_judged_by_each_ratios_median_over_the_runs_that_measured_it() -> None:
    """How bench.ci confirms a failure: one noisy run of three neither fails nor passes it."""
    runs = [fake_run({"a": 0.0002, "b": 0.0001}), fake_run({"a": 0.0009}), fake_run({"a": 0.0003})]
    ratios = gate.combined(runs)
    assert ratios["a"].value == pytest.approx(3.0)
    assert ratios["b"].value == pytest.approx(1.0)


def test_the_committed_baseline_says_where_it_ran_and_holds_a_tolerance_under_2x() -> None:
    """Measured over several runs on a named commit and load; under 2x, so a twice-as-slow
    benchmark fails, and above most of what noise did (bench.ci re-runs what it fails)."""
    committed = json.loads(gate.BASELINE.read_text())
    assert committed["statistic"] == gate.STATISTIC
    assert 1.0 < committed["tolerance"] < 2.0
    assert len(committed["runs"]) >= 5
    assert all(run["commit"] and run["loadavg"] for run in committed["runs"])
    noisy = [n for n, e in committed["ratios"].items() if e["worst_run"] > committed["tolerance"]]
    assert len(noisy) <= len(committed["ratios"]) // 4, noisy


def test_the_performance_docs_quote_the_committed_baselines_own_figures() -> None:
    """Re-write the baseline and forget the prose, and this fails instead of the docs misleading."""
    committed = json.loads(gate.BASELINE.read_text())
    docs = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
    text = " ".join(docs.read_text().split())  # the prose may be re-wrapped
    entries = committed["ratios"].values()
    spread = statistics.median(e["spread"] for e in entries)
    worst = statistics.median(e["worst_run"] for e in entries)
    loads = [run["loadavg"][0] for run in committed["runs"]]
    assert f"**{committed['tolerance']}x**" in text
    assert f"median {spread:.2f}x, largest {committed['largest_spread']:.2f}x" in text
    assert f"(median {worst:.2f}x, largest {committed['worst_run']:.2f}x" in text
    assert f"load averages {min(loads):.2f} to {max(loads):.2f}" in text
    assert f"commit `{committed['runs'][0]['commit'][:7]}`" in text
    assert len(committed["runs"]) == 8
    assert "over eight runs of the CI suite" in text


DRAIN = "test_drain[reliable-asyncio-1proc]"


@pytest.mark.slow
def test_the_gate_fails_a_run_whose_drain_is_made_twice_as_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real timed runs of the asyncio drain, as CI times them (python -m bench.ci), back to
    back: with the worker spending as much again on each job (the injected regression,
    bench/regression.py: each round takes about twice as long) the gate fails it against a
    baseline made from three plain runs just before, and confirms it on two re-runs. The cost is
    injected in the worker, where a real regression's would be: injected in the benchmark's own
    process instead, it also slowed the PING probe timed between rounds and a 2x slowdown read
    1.26-1.60x (docs/performance.md). (Judged against the committed baseline instead, a slowdown
    hides in a run that happens to be faster than the baseline's machine: the committed
    baseline is CI's own step.)"""
    plains = [tmp_path / f"plain-{n}.json" for n in range(3)]
    for plain in plains:
        assert ci.main(["-k", "reliable-asyncio-1proc", "--out", str(plain), "--no-gate"]) == 0
    slow = tmp_path / "slow.json"
    from_plain = tmp_path / "from-plain.json"
    assert gate.main(["--update-baseline", *map(str, plains), "--baseline", str(from_plain)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("BENCH_SLOWDOWN", f"{DRAIN}=2")
    slowed = ["-k", "reliable-asyncio-1proc", "--out", str(slow), "--baseline", str(from_plain)]
    # Two tries: on this shared machine one slowed run in a CI simulation timed its PING probe
    # no faster than 78 µs its whole run long (190 ms over a ratio of 2,423; plain runs here
    # time it at about 35 µs), and so read the 2x drain as 0.91x, which the gate let through.
    # A second run is a new draw; the gate's own re-runs only confirm a failure.
    if ci.main(slowed) != 1:
        for stale in tmp_path.glob("slow*.json"):
            stale.unlink()
        capsys.readouterr()
        assert ci.main(slowed) == 1
    err = capsys.readouterr().err
    assert "run 2 of 2 to confirm" in err
    assert f"REGRESSION: {DRAIN}" in err

    def drain_ratio(path: Path) -> float:
        return gate.ratios(json.loads(path.read_text()))[DRAIN].value

    confirmations = sorted(tmp_path.glob("slow-confirm-*.json"))
    assert len(confirmations) == 2
    reference = statistics.median(drain_ratio(path) for path in plains)
    slowdowns = [drain_ratio(path) / reference for path in [slow, *confirmations]]
    assert sorted(slowdowns)[1] > json.loads(gate.BASELINE.read_text())["tolerance"], slowdowns
    assert gate.main([*map(str, plains), "--baseline", str(from_plain)]) == 0
