"""The job codec: what goes in comes back out, and what cannot be decoded says so."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.errors import JobrunnerError, PayloadDecodeError
from jobrunner.job import Job, check_job, decode_job, encode_job, encode_value, new_job_id

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
jobs = st.builds(
    Job,
    id=st.text(min_size=1, max_size=40),
    type=st.text(min_size=1, max_size=40),
    payload=json_values,
    queue=st.text(min_size=1, max_size=20),
    max_retries=st.none() | st.integers(min_value=0, max_value=1000),
    timeout=st.none() | st.floats(min_value=1e-3, max_value=1e6),
)


def same_json(left: Any, right: Any) -> bool:
    """Equal, and of the same JSON types all the way down (1 and 1.0 and True differ)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_json, left, right))
    if isinstance(left, float):
        return left == right and math.copysign(1, left) == math.copysign(1, right)
    return bool(left == right)


# No deadline: recursive payloads make some examples slow on a loaded machine.
@settings(deadline=None)
@given(jobs)
def test_encode_then_decode_gives_the_same_job(job: Job) -> None:
    encoded = encode_job(job)
    assert isinstance(encoded, bytes)
    decoded = decode_job(encoded)
    assert decoded == job
    assert same_json(decoded.payload, job.payload)


@settings(deadline=None)
@given(jobs)
def test_decode_accepts_text_as_well_as_bytes(job: Job) -> None:
    assert decode_job(encode_job(job).decode()) == job


@settings(deadline=None)
@given(json_values)
def test_encode_value_writes_standard_json(value: Any) -> None:
    encoded = encode_value(value)
    assert isinstance(encoded, bytes)
    assert same_json(json.loads(encoded), value)


def test_defaults_are_left_out_of_the_encoding() -> None:
    assert encode_job(Job(id="j1", type="noop")) == b'{"id":"j1","type":"noop"}'
    assert decode_job(b'{"id":"j1","type":"noop"}') == Job(
        id="j1", type="noop", payload=None, queue="default", max_retries=None, timeout=None
    )


def test_an_integer_timeout_decodes_as_a_float() -> None:
    job = decode_job(b'{"id":"j1","type":"noop","timeout":5}')
    assert job.timeout == 5.0
    assert isinstance(job.timeout, float)


def test_unknown_fields_are_ignored() -> None:
    assert decode_job(b'{"id":"j1","type":"noop","added_later":1}') == Job(id="j1", type="noop")


def test_new_job_ids_are_unique_hex() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"\xff\xfe",
        b"not json",
        b"{",
        b'{"id":"j1","type":"noop"} trailing',
        b'{"id":"j1","type":"noop","payload":NaN}',
        b"null",
        b"[]",
        b'"a string"',
        b"42",
        b"{}",
        b'{"id":"j1"}',
        b'{"type":"noop"}',
        b'{"id":1,"type":"noop"}',
        b'{"id":"j1","type":null}',
        b'{"id":"j1","type":"noop","queue":7}',
        b'{"id":"j1","type":"noop","max_retries":"3"}',
        b'{"id":"j1","type":"noop","max_retries":3.5}',
        b'{"id":"j1","type":"noop","max_retries":true}',
        b'{"id":"j1","type":"noop","timeout":"30"}',
        b'{"id":"j1","type":"noop","timeout":[30]}',
        "{not json either}",
    ],
)
def test_garbage_and_wrong_types_raise_payload_decode_error(data: bytes | str) -> None:
    with pytest.raises(PayloadDecodeError, match="cannot decode job") as info:
        decode_job(data)
    assert isinstance(info.value, JobrunnerError)
    assert info.value.__cause__ is not None  # msgspec's reason is kept


def test_the_decode_error_names_the_bad_field() -> None:
    with pytest.raises(PayloadDecodeError, match=r"\$\.max_retries"):
        decode_job(b'{"id":"j1","type":"noop","max_retries":"3"}')


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_to_a_job_or_raise_payload_decode_error(data: bytes) -> None:
    try:
        job = decode_job(data)
    except PayloadDecodeError:
        return
    assert isinstance(job, Job)


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_arbitrary_json_objects_decode_to_a_job_or_raise_payload_decode_error(
    obj: dict[str, Any],
) -> None:
    data = encode_value(obj)
    try:
        job = decode_job(data)
    except PayloadDecodeError:
        assert not (isinstance(obj.get("id"), str) and isinstance(obj.get("type"), str))
        return
    assert (job.id, job.type) == (obj["id"], obj["type"])


@pytest.mark.parametrize(
    "value",
    [object(), complex(1, 2), Exception("x"), lambda: None, {"nested": [1, object()]}],
    ids=["object", "complex", "exception", "function", "nested-object"],
)
def test_encode_value_raises_type_error_for_what_json_cannot_hold(value: object) -> None:
    with pytest.raises(TypeError, match="not a JSON value"):
        encode_value(value)


def test_encoding_a_job_with_an_unencodable_payload_raises() -> None:
    with pytest.raises(TypeError):
        encode_job(Job(id="j1", type="noop", payload=object()))


@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset({"a"}), b"bytes", float("nan"), float("inf")],
    ids=["set", "frozenset", "bytes", "nan", "inf"],
)
def test_encode_value_raises_type_error_for_values_json_would_change(value: object) -> None:
    with pytest.raises(TypeError):
        encode_value(value)


def test_a_job_with_an_infinite_timeout_is_refused_at_enqueue_time() -> None:
    # msgspec would store inf as null, which reads back as "use the handler's timeout".
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        check_job(Job(id="j1", type="noop", timeout=math.inf))
