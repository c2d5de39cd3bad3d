"""The load generator: its arithmetic (unit) and its counts against a real stack (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from jobrunner.dev.stack import Stack
from jobrunner.keys import QueueKeys
from jobrunner.lab.loadgen import LoadSpec, parse_mix, run_load
from jobrunner.lab.loadgen.drivers import Plan
from jobrunner.lab.loadgen.result import source_commit
from jobrunner.lab.loadgen.spec import JobFactory
from tests.workers import FAST_LOOPS, ROOT


def test_mix_is_normalised_and_bad_mixes_say_why() -> None:
    assert parse_mix("noop=3, email=1") == {"noop": 0.75, "email": 0.25}
    assert parse_mix("noop") == {"noop": 1.0}
    for bad, why in (("", "empty"), ("noop=x", "not a number"), ("noop=-1", "positive"),
                     ("=2", "empty job type")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_mix(bad)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"loop": "open"}, "rate > 0"),
        ({"total": None}, "total jobs or a duration"),
        ({"concurrency": 0}, "at least 1"),
        ({"model": "fibers"}, "model must be"),
        ({"payload_bytes": -1}, "negative"),
    ],
)
def test_inconsistent_specs_are_refused(fields: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        LoadSpec(**fields).check()  # type: ignore[arg-type]


def test_requests_and_open_loop_schedule() -> None:
    spec = LoadSpec(loop="open", rate=200, total=None, duration=2.0, batch=10).check()
    assert spec.requests == 40  # 400 jobs in batches of 10
    plan = Plan(spec, t0=100.0)
    assert plan.intended(0) == 100.0
    assert plan.intended(20) == pytest.approx(101.0)  # 20 requests of 10 jobs at 200 jobs/s
    assert list(plan.numbers(1, 4))[:3] == [1, 5, 9]
    assert len(list(plan.numbers())) == 40


def test_job_factory_is_seeded_and_pads_payloads() -> None:
    spec = LoadSpec(mix=parse_mix("a=1,b=1"), payload_bytes=64, seed=3)
    assert JobFactory(spec).types(50) == JobFactory(spec).types(50)
    assert JobFactory(spec).types(50) != JobFactory(spec, stream=1).types(50)
    assert len(JobFactory(spec).payload()["pad"]) == 64
    assert JobFactory(LoadSpec()).payload() == {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {**FAST_LOOPS, "PYTHONPATH": str(ROOT)}
    with Stack(workers=1, env=env, log_dir=tmp_path_factory.mktemp("stack")) as s:
        yield s


def processed(stack: Stack) -> int:
    return int(stack.client.hget(QueueKeys("default").stats, "processed") or 0)


def test_results_name_the_commit_that_made_them(tmp_path: Path) -> None:
    assert source_commit(tmp_path) is None  # not a git checkout: say nothing, guess nothing

    def git(*args: str) -> str:
        argv = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
        return subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    (tmp_path / "jobrunner").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "jobrunner" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "r.json").write_text("{}\n")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "--short=12", "HEAD").strip()
    assert source_commit(tmp_path / "jobrunner") == head
    (tmp_path / "results" / "r.json").write_text('{"rewritten": true}\n')
    assert source_commit(tmp_path) == head, "a rewritten result is not a code change"
    (tmp_path / "jobrunner" / "code.py").write_text("x = 2\n")
    assert source_commit(tmp_path) == f"{head}+dirty"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "model"),
    [
        ("http", "asyncio"),
        ("http", "thread"),
        ("http", "process"),
        ("queue", "asyncio"),
        ("queue", "thread"),
        ("queue", "process"),
    ],
)
def test_counts_in_the_results_match_what_the_workers_processed(
    stack: Stack, tmp_path: Path, target: str, model: str
) -> None:
    before = processed(stack)
    url = stack.api_url if target == "http" else stack.redis_url
    spec = LoadSpec(target=target, url=url, model=model, concurrency=4, total=300, batch=3,  # type: ignore[arg-type]
                    token=stack.api_token,
                    mix=parse_mix("noop=3,email=1"), payload_bytes=32)  # fmt: skip
    result = run_load(spec, redis_url=stack.redis_url, progress=False)
    paths = result.write(tmp_path, "run")
    summary = json.loads(paths["summary"].read_text())
    stack.wait_idle()
    assert summary["requests"] == summary["requests_ok"] == 100
    assert summary["jobs_acknowledged"] == summary["jobs_done"] == 300
    assert summary["jobs_unfinished"] == 0
    assert processed(stack) - before == 300
    jobs = pd.read_parquet(paths["jobs_parquet"])
    assert len(jobs) == 300
    assert jobs["id"].is_unique
    assert (jobs["state"] == "done").all()
    assert (jobs["e2e_ms"] > 0).all()
    assert len(pd.read_csv(paths["requests"])) == 100
    latency = summary["latency_ms"]["end_to_end"]
    assert latency["count"] == 300
    assert latency["p50"] <= latency["p99"] <= latency["max"]


@pytest.mark.slow
def test_open_loop_holds_its_rate(stack: Stack) -> None:
    spec = LoadSpec(url=stack.api_url or "", loop="open", rate=100, total=None, duration=5.0,
                    concurrency=8, token=stack.api_token)  # fmt: skip
    summary = run_load(spec, redis_url=stack.redis_url, progress=False).summary()
    assert summary["requests_ok"] == 500
    assert summary["send_rate_rps"] == pytest.approx(100, rel=0.05)


@pytest.mark.slow
def test_refused_requests_are_counted_not_fatal(stack: Stack) -> None:
    spec = LoadSpec(
        url=stack.api_url or "", total=20, mix={"no_such_type": 1.0}, token=stack.api_token
    )
    summary = run_load(spec, redis_url=stack.redis_url, progress=False).summary()
    assert summary["statuses"] == {"422": 20}
    assert summary["jobs_acknowledged"] == 0


@pytest.mark.slow
def test_cli_writes_a_summary(stack: Stack, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobrunner.cli", "loadgen", "--target", "queue", "--url",
         stack.redis_url, "--jobs", "200", "--batch", "10", "--out", str(tmp_path), "--name",
         "cli", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "latency (ms)" in done.stdout
    summary = json.loads((tmp_path / "cli.json").read_text())
    assert summary["jobs_done"] == 200


def test_cli_refuses_a_bad_mix() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobrunner.cli", "loadgen", "--mix", "noop=zero"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    assert "not a number" in done.stderr
