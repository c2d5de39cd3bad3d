"""Structured logs: JSON lines with the fields a job line needs; buffering that loses no warning."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from jobrunner import logs


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logs._buffered = None


def lines(stream: io.BytesIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_level_timestamp_and_bound_fields() -> None:
    stream = io.BytesIO()
    logs.configure_logging("info", "json", stream)
    logs.get_logger(worker="w1").info("job", job_id="j1", run_ms=1.5)
    logs.get_logger().debug("below the level")
    [line] = lines(stream)
    assert {k: line[k] for k in ("event", "worker", "job_id", "run_ms", "level")} == {
        "event": "job", "worker": "w1", "job_id": "j1", "run_ms": 1.5, "level": "info",
    }  # fmt: skip
    assert isinstance(line["timestamp"], float)


def test_buffered_info_lines_wait_for_a_flush_but_warnings_do_not() -> None:
    stream = io.BytesIO()
    logs.configure_logging("info", "json", stream, buffered=True)
    log = logs.get_logger()
    log.info("first")
    log.info("second")
    assert stream.getvalue() == b""
    log.warning("trouble")  # written at once, with everything before it, in order
    assert [line["event"] for line in lines(stream)] == ["first", "second", "trouble"]
    log.info("third")
    assert len(lines(stream)) == 3
    logs.flush_logs()
    assert [line["event"] for line in lines(stream)][-1] == "third"


def test_a_full_buffer_is_written_without_a_flush() -> None:
    stream = io.BytesIO()
    logs.configure_logging("info", "json", stream, buffered=True)
    log = logs.get_logger()
    for i in range(2000):
        log.info("job", job_id=f"{i:032d}")
    assert 0 < len(lines(stream)) < 2000


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        logs.configure_logging("chatty", "json", io.BytesIO())


def test_console_format_is_readable_key_values() -> None:
    stream = io.StringIO()
    logs.configure_logging("debug", "console", stream)
    logs.get_logger(worker="w1").info("job", job_id="j1", outcome="ok")
    line = stream.getvalue()
    assert "job" in line
    assert "job_id=j1" in line
    assert "outcome=ok" in line
    assert "worker=w1" in line
    assert not line.lstrip().startswith("{")


def test_throttle_lets_one_line_a_second_through_and_counts_the_rest() -> None:
    from jobrunner.clock import FakeClock

    clock = FakeClock()
    throttle = logs.Throttle(interval=1.0, clock=clock.monotonic)
    assert throttle.allow("fail") == 0
    assert [throttle.allow("fail") for _ in range(5)] == [None] * 5
    assert throttle.allow("ack") == 0  # another kind of line has its own allowance
    clock.advance(1.0)
    assert throttle.allow("fail") == 5  # the next line says how many were held back
    assert throttle.allow("fail") is None
