"""POST /jobs validation of a 1 MiB body of any shape: the goal is 50 ms or less per body.

Each body goes through what the API does before it touches Redis: msgspec decodes the request
(``decode_jobs``) and the payload limits are checked on the client's JSON text (``check_job``).
The shapes are the expensive ones: wide, deep, long strings, many short strings, and a nested
payload just under the item limit. `make bench` records them with the other benchmarks; the
old pydantic + recursive-walk path took 9.3 s on the wide one.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import Calibration
from jobrunner.api.bodies import decode_jobs
from jobrunner.api.errors import ApiError
from jobrunner.job import Job, check_job
from jobrunner.payload import PayloadLimitError

MIB = 1024 * 1024


def body(data: bytes) -> bytes:
    raw = b'{"type": "noop", "data": ' + data + b"}"
    assert len(raw) <= MIB
    return raw


SHAPES = {
    "wide: 500,000 integers (refused: items)": body(b"[" + b",".join([b"1"] * 500_000) + b"]"),
    "deep: 500,000 levels (refused: depth)": body(b"[" * 260_000 + b"]" * 260_000),
    "nested under the item limit (accepted)": body(
        b"[" + b",".join([b'{"a":[1,2],"b":"x"}'] * 19_000) + b"]"
    ),
    "one 1 MiB string (accepted)": body(b'"' + b"x" * (MIB - 40) + b'"'),
    "330,000 short strings (refused: items)": body(b"[" + b",".join([b'""'] * 330_000) + b"]"),
}


def validate(raw: bytes) -> str:
    """What the route does before Redis; returns the outcome (accepted or the limit's code)."""
    try:
        [item], _ = decode_jobs(raw)
        check_job(Job(id="j", type=item.type, payload=item.data))
    except ApiError as exc:
        return exc.code
    except PayloadLimitError as exc:
        return exc.limit
    return "accepted"


@pytest.mark.parametrize("shape", list(SHAPES))
def test_validate_a_one_mib_body(
    benchmark: BenchmarkFixture, shape: str, python_calibration: Calibration
) -> None:
    benchmark.group = "POST /jobs validation, 1 MiB body"
    with python_calibration.around(benchmark):
        outcome = benchmark(validate, SHAPES[shape])
    expected = shape.rsplit("(", 1)[1].rstrip(")")
    assert outcome == ("accepted" if expected == "accepted" else f"max_{expected.split(': ')[1]}")
