"""Pure parts of the live experiments: the shape comparison between a live run and the
simulation, and the sizing of the limiter runs."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jobrunner.cli import main
from jobrunner.lab.experiments import EXPERIMENTS
from jobrunner.lab.experiments.backoff_live import SMALL, agreement, rank_correlation
from jobrunner.lab.experiments.backoff_sim import Outcome
from jobrunner.lab.experiments.limiter_accuracy import Setup
from jobrunner.ratelimit.spec import parse_limit


def outcome(name: str, calls: int) -> Outcome:
    return Outcome(name, calls, 1.0, 1, 1.0, 0, {}, [], [])


def test_rank_correlation() -> None:
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 1], [1, 2, 3]) == 0.0  # no ordering on one side


def test_agreement_needs_the_same_order_and_jitter_winning_in_both() -> None:
    sim = {"exponential": outcome("exponential", 1000), "full_jitter": outcome("full_jitter", 300),
           "constant": outcome("constant", 2000)}  # fmt: skip
    same = {"exponential": outcome("exponential", 800), "full_jitter": outcome("full_jitter", 700),
            "constant": outcome("constant", 1500)}  # fmt: skip
    assert agreement(same, sim)["agree_in_shape"] is True
    reversed_ = {"exponential": outcome("exponential", 700),
                 "full_jitter": outcome("full_jitter", 800),
                 "constant": outcome("constant", 1500)}  # fmt: skip
    verdict = agreement(reversed_, sim)
    assert verdict["agree_in_shape"] is False
    assert verdict["full_jitter_fewer_calls_than_exponential"] == {"live": False,
                                                                    "simulation": True}  # fmt: skip


def test_the_live_scenario_has_a_simulated_twin() -> None:
    twin = SMALL.simulated()
    assert (twin.clients, twin.capacity, twin.outage) == (SMALL.jobs, SMALL.capacity,
                                                          (0.0, SMALL.outage))  # fmt: skip
    assert twin.constant == SMALL.base


def test_limiter_runs_are_sized_to_their_limit() -> None:
    setup = Setup(seconds=2.0, hold=0.05)
    assert setup.jobs_for(parse_limit("gcra:50/s")) == 101
    assert setup.jobs_for(parse_limit("concurrency:5")) == 201


def test_the_experiment_command_offers_every_experiment() -> None:
    result = CliRunner().invoke(main, ["experiment", "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: main experiment [OPTIONS] NAME")
    for name in EXPERIMENTS:
        assert name in result.stdout
        assert isinstance(import_module(f"jobrunner.lab.experiments.{name}").main, click.Command)


def test_the_experiment_command_refuses_an_unknown_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["experiment", "backoff", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'backoff' is not one of" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_experiment_command_runs_one_and_writes_its_results(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["experiment", "backoff_sim", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "full_jitter" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "backoff_sim.csv", "backoff_sim.json", "backoff_sim.png"
    ]  # fmt: skip
    summary = json.loads((tmp_path / "backoff_sim.json").read_text())
    assert summary["seed"] == 0  # the experiment's own default for the option the command omits
