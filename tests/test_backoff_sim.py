"""The backoff simulation: deterministic under a seed, every client finishes, and the published
qualitative result holds in the standard scenario (jitter cuts total calls)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from jobrunner.lab.experiments.backoff_sim import (
    SMALL,
    STRATEGIES,
    Scenario,
    run_all,
    simulate,
    write_results,
)

QUICK = replace(SMALL, clients=200, capacity=40.0)  # the standard shape, five times smaller


@pytest.mark.parametrize("name", ["full_jitter", "decorrelated_jitter", "exponential"])
def test_the_simulation_is_deterministic_under_a_seed(name: str) -> None:
    first = simulate(name, QUICK, seed=3)
    assert simulate(name, QUICK, seed=3) == first
    assert first.series == simulate(name, QUICK, seed=3).series


def test_another_seed_gives_another_run() -> None:
    assert simulate("full_jitter", QUICK, seed=1) != simulate("full_jitter", QUICK, seed=2)


def test_every_client_finishes_and_each_call_is_counted() -> None:
    results = run_all(QUICK, seed=0, strategies=STRATEGIES[1:])
    for outcome in results.values():
        assert outcome.unfinished == 0
        assert outcome.outcomes["ok"] == QUICK.clients
        assert outcome.total_calls == sum(outcome.outcomes.values()) == sum(outcome.series)
        assert outcome.completion_time > QUICK.outage[1]  # nobody succeeds during the outage


def test_full_jitter_uses_fewer_total_calls_than_no_jitter_in_the_standard_scenario() -> None:
    results = run_all(SMALL, seed=0, strategies=("exponential", "full_jitter", "equal_jitter"))
    exponential = results["exponential"].total_calls
    assert results["full_jitter"].total_calls < 0.5 * exponential
    assert results["equal_jitter"].total_calls < 0.5 * exponential
    assert results["full_jitter"].completion_time < results["exponential"].completion_time


def test_no_backoff_at_all_multiplies_the_work() -> None:
    short = replace(QUICK, outage=(0.0, 2.0))
    none = simulate("none", short).total_calls
    assert none > 10 * simulate("full_jitter", short).total_calls


def test_a_run_writes_its_csv_json_and_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    scenario = replace(QUICK, outage=(0.0, 2.0))
    results = run_all(scenario, 0, ("exponential", "full_jitter"))
    write_results(results, scenario, 0, tmp_path)
    summary = json.loads((tmp_path / "backoff_sim.json").read_text())
    assert summary["total_calls_vs_exponential"]["exponential"] == 1.0
    assert summary["strategies"]["full_jitter"]["total_calls"] == results["full_jitter"].total_calls
    header = (tmp_path / "backoff_sim.csv").read_text().splitlines()[0]
    assert header == "strategy,t,calls,ok"
    assert (tmp_path / "backoff_sim.png").stat().st_size > 10_000


def test_a_scenario_builds_each_strategy_by_name() -> None:
    import random

    scenario = Scenario(constant=0.7)
    assert scenario.strategy("none", random.Random()).delay(3) == 0
    assert scenario.strategy("constant", random.Random()).delay(3) == 0.7
    with pytest.raises(ValueError, match="unknown backoff"):
        scenario.strategy("linearish", random.Random())
