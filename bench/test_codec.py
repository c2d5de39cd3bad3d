"""The job codec: msgspec (what jobrunner uses) against the standard library's json and orjson.

Each codec encodes the same job and decodes it back into a ``Job``. msgspec encodes the struct
itself; json and orjson get the equivalent dict, built once outside the timed call (which favours
them: a real caller would have to build it), and decode with ``Job(**data)``, which, unlike
msgspec's typed decoder, does not validate field types.

Every benchmark checks its round trip, so the table compares codecs that actually agree. The
regression gate (bench/gate.py) judges each as a ratio to a fixed piece of pure Python timed
right before and after it (``bench.conftest.Calibration``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.conftest import Calibration
from jobrunner.job import Job, decode_job, encode_job

# Non-default queue, retries and timeout, so msgspec (which omits defaults) writes every field the
# dict-based codecs write, and all three encode the same JSON value.
JOB = Job(
    id="5f0c6b1e9a2d4c7e8b3a1f6d2e9c4b7a",
    type="email",
    payload={
        "to": "ada.lovelace@example.com",
        "subject": "Your weekly report is ready",
        "template": "weekly-report",
        "locale": "en-GB",
        "user_id": 48213,
        "attachments": ["report-2024-w17.pdf"],
        "priority": 2,
        "tracking": True,
    },
    queue="emails",
    max_retries=5,
    timeout=10.0,
)
# every field set but the trace context: tracing is off by default, and then `tp` is not encoded
JOB_DICT: dict[str, Any] = {k: v for k, v in msgspec.structs.asdict(JOB).items() if k != "tp"}


def json_encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def json_decode(raw: bytes) -> Job:
    return Job(**json.loads(raw))


def orjson_encode(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def orjson_decode(raw: bytes) -> Job:
    return Job(**orjson.loads(raw))


Encoder = tuple[Callable[[Any], bytes], Any]

ENCODERS: dict[str, Encoder] = {
    "json": (json_encode, JOB_DICT),
    "orjson": (orjson_encode, JOB_DICT),
    "msgspec": (encode_job, JOB),
}
DECODERS: dict[str, Callable[[bytes], Job]] = {
    "json": json_decode,
    "orjson": orjson_decode,
    "msgspec": decode_job,
}
CODECS = list(ENCODERS)


def test_payload_is_representative() -> None:
    """The payload is a small dict of about 200 bytes, and no field is left at its default (but
    the trace context, absent with tracing off)."""
    assert 150 <= len(json_encode(JOB.payload)) <= 250
    assert json.loads(encode_job(JOB)).keys() == JOB_DICT.keys()


@pytest.mark.benchmark(group="encode")
@pytest.mark.parametrize("codec", CODECS)
def test_encode(benchmark: BenchmarkFixture, codec: str, python_calibration: Calibration) -> None:
    encode, value = ENCODERS[codec]
    with python_calibration.around(benchmark):
        raw = benchmark(encode, value)
    assert isinstance(raw, bytes)
    assert json.loads(raw) == JOB_DICT
    assert DECODERS[codec](raw) == JOB


@pytest.mark.benchmark(group="decode")
@pytest.mark.parametrize("codec", CODECS)
def test_decode(benchmark: BenchmarkFixture, codec: str, python_calibration: Calibration) -> None:
    encode, value = ENCODERS[codec]
    raw = encode(value)
    with python_calibration.around(benchmark):
        job = benchmark(DECODERS[codec], raw)
    assert isinstance(job, Job)
    assert job == JOB
    assert job.payload == JOB.payload
