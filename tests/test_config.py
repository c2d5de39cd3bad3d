"""Settings: defaults, JOBRUNNER_* environment variables (from_env), explicit arguments, checks."""

from __future__ import annotations

import os

import pytest

from jobrunner.config import Settings, SettingsError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No JOBRUNNER_* or REDIS_URL from the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.upper().startswith("JOBRUNNER_") or name.upper() == "REDIS_URL":
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.redis_url is None
    assert settings.prefix == "jr"
    assert settings.queues == ["default"]
    assert settings.model == "asyncio"
    assert settings.concurrency == 0
    assert settings.prefetch == -1
    assert settings.batch_size == 100
    assert settings.lease == 30.0
    assert settings.heartbeat_interval == 5.0
    assert settings.grace == 10.0
    assert settings.result_ttl == 600.0
    assert settings.imports == []
    assert settings.per_child_prefetch == 16
    assert settings.log_level == "info"
    assert settings.log_format == "auto"


def test_default_lists_are_not_shared_between_instances() -> None:
    one, other = Settings(), Settings()
    one.queues.append("extra")
    one.imports.append("myapp.tasks")
    assert other.queues == ["default"]
    assert other.imports == []


def test_prefixed_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_REDIS_URL", "redis://env-host:6400/2")
    monkeypatch.setenv("JOBRUNNER_PREFIX", "lab")
    monkeypatch.setenv("JOBRUNNER_MODEL", "thread")
    monkeypatch.setenv("JOBRUNNER_CONCURRENCY", "8")
    monkeypatch.setenv("JOBRUNNER_PREFETCH", "0")
    monkeypatch.setenv("JOBRUNNER_LEASE", "2.5")
    monkeypatch.setenv("JOBRUNNER_LOG_FORMAT", "json")
    settings = Settings.from_env()
    assert settings.redis_url == "redis://env-host:6400/2"
    assert settings.prefix == "lab"
    assert settings.model == "thread"
    assert settings.concurrency == 8
    assert settings.prefetch == 0
    assert settings.lease == 2.5
    assert settings.log_format == "json"


def test_environment_variable_names_are_case_insensitive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("jobrunner_model", "process")
    assert Settings.from_env().model == "process"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("high", ["high"]),
        ("high,default,low", ["high", "default", "low"]),
        (" high , default ,, low ,", ["high", "default", "low"]),
    ],
)
def test_queues_from_the_environment_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("JOBRUNNER_QUEUES", raw)
    assert Settings.from_env().queues == expected


def test_imports_from_the_environment_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBRUNNER_IMPORTS", "tests.jobs, myapp.tasks")
    assert Settings.from_env().imports == ["tests.jobs", "myapp.tasks"]


def test_comma_separated_string_arguments_are_split_too() -> None:
    settings = Settings(queues="a,b", imports="x.y")
    assert settings.queues == ["a", "b"]
    assert settings.imports == ["x.y"]


def test_redis_url_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://platform:6379/0")
    assert Settings.from_env().redis_url == "redis://platform:6379/0"


def test_prefixed_redis_url_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://platform:6379/0")
    monkeypatch.setenv("JOBRUNNER_REDIS_URL", "redis://mine:6380/1")
    assert Settings.from_env().redis_url == "redis://mine:6380/1"


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://platform:6379/0")
    monkeypatch.setenv("JOBRUNNER_REDIS_URL", "redis://mine:6380/1")
    monkeypatch.setenv("JOBRUNNER_MODEL", "thread")
    monkeypatch.setenv("JOBRUNNER_QUEUES", "a,b")
    monkeypatch.setenv("JOBRUNNER_CONCURRENCY", "8")
    settings = Settings.from_env(
        redis_url="redis://arg:7000/3", model="process", queues=["c"], concurrency=3
    )
    assert settings.redis_url == "redis://arg:7000/3"
    assert settings.model == "process"
    assert settings.queues == ["c"]
    assert settings.concurrency == 3


def test_unrelated_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_NO_SUCH_SETTING", "whatever")
    assert Settings.from_env().model == "asyncio"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "fibers"}, "model"),
        ({"concurrency": -1}, "concurrency"),
        ({"prefetch": -2}, "prefetch"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 10_001}, "batch_size"),
        ({"lease": 0}, "lease"),
        ({"heartbeat_interval": -1.0}, "heartbeat_interval"),
        ({"grace": -0.5}, "grace"),
        ({"per_child_prefetch": 0}, "per_child_prefetch"),
        ({"log_format": "xml"}, "log_format"),
    ],
)
def test_invalid_values_raise_and_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert f"invalid setting {field}" in str(info.value)


@pytest.mark.parametrize("queues", [[], "", " , ,"])
def test_no_queue_at_all_raises(queues: list[str] | str) -> None:
    with pytest.raises(SettingsError, match="at least one queue is needed"):
        Settings(queues=queues)  # type: ignore[arg-type]


def test_empty_queues_from_the_environment_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_QUEUES", ",")
    with pytest.raises(SettingsError, match="at least one queue is needed"):
        Settings.from_env()


def test_invalid_environment_values_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_CONCURRENCY", "lots")
    with pytest.raises(SettingsError, match="concurrency"):
        Settings.from_env()


def test_validation_errors_are_value_errors() -> None:
    """The CLI turns ValueError into a usage error; a settings error must be one."""
    with pytest.raises(ValueError, match="model"):
        Settings(model="fibers")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "concurrency"), [("asyncio", 100), ("thread", 16), ("process", 2)]
)
def test_effective_concurrency_defaults_per_model(model: str, concurrency: int) -> None:
    assert Settings(model=model).effective_concurrency == concurrency  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["asyncio", "thread", "process"])
def test_explicit_concurrency_wins_over_the_models_default(model: str) -> None:
    assert Settings(model=model, concurrency=7).effective_concurrency == 7  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "concurrency", "prefetch"),
    [
        ("asyncio", 0, 100),  # max(100, 100)
        ("asyncio", 500, 500),
        ("thread", 0, 100),  # max(100, 16)
        ("thread", 200, 200),
        ("process", 0, 100),  # max(100, 2 * 16)
        ("process", 10, 160),  # 10 children * 16 each
    ],
)
def test_effective_prefetch_per_model(model: str, concurrency: int, prefetch: int) -> None:
    settings = Settings(model=model, concurrency=concurrency)  # type: ignore[arg-type]
    assert settings.effective_prefetch == prefetch


def test_effective_prefetch_of_processes_follows_per_child_prefetch() -> None:
    settings = Settings(model="process", concurrency=4, per_child_prefetch=50)
    assert settings.effective_prefetch == 200


@pytest.mark.parametrize("model", ["asyncio", "thread", "process"])
@pytest.mark.parametrize("prefetch", [0, 1, 5000])
def test_explicit_prefetch_is_used_as_given(model: str, prefetch: int) -> None:
    settings = Settings(model=model, prefetch=prefetch)  # type: ignore[arg-type]
    assert settings.effective_prefetch == prefetch


def test_the_environment_is_a_mapping_that_can_be_passed_in() -> None:
    settings = Settings.from_env({"JOBRUNNER_LEASE": "2.5", "REDIS_URL": "redis://x:1/0"})
    assert (settings.lease, settings.redis_url) == (2.5, "redis://x:1/0")


def test_an_unknown_keyword_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="no such setting"):
        Settings.from_env({}, leese=3)


def test_an_invalid_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="JOBRUNNER_BATCH_SIZE='0'"):
        Settings.from_env({"JOBRUNNER_BATCH_SIZE": "0"})


def test_invalid_limits_are_refused_with_the_reason() -> None:
    with pytest.raises(SettingsError, match="limits") as info:
        Settings(limits="email=bogus")
    assert info.value.field == "limits"
    with pytest.raises(SettingsError) as info:
        Settings(ingress_rate="fast")
    assert info.value.field == "ingress_rate"
