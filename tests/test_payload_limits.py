"""The payload limits hold the same way for a Python caller and for JSON text from a client."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from jobrunner.payload import MAX_DEPTH, MAX_ITEMS, PayloadLimitError, check_json, check_json_bytes


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [0, 1, MAX_DEPTH])
def test_a_payload_up_to_the_depth_limit_passes_both_checks(depth: int) -> None:
    value = nested(depth)
    check_json(value)
    check_json_bytes(msgspec.json.encode(value))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000])
def test_a_payload_over_the_depth_limit_fails_both_checks_by_name(depth: int) -> None:
    value = nested(depth)  # 5,000 deep: a recursive walk would overflow the stack
    with pytest.raises(PayloadLimitError) as python:
        check_json(value)
    assert python.value.limit == "max_depth"
    text = b"[" * depth + b"]" * depth
    with pytest.raises(PayloadLimitError, match=f"nested {depth} deep; the limit is 64"):
        check_json_bytes(text)


def test_items_are_counted_over_the_whole_payload() -> None:
    check_json({"a": [0] * (MAX_ITEMS // 2), "b": [0] * (MAX_ITEMS // 2 - 2)})
    with pytest.raises(PayloadLimitError, match="100000 array items") as python:
        check_json({"a": [0] * (MAX_ITEMS // 2), "b": [0] * (MAX_ITEMS // 2)})
    assert python.value.limit == "max_items"
    with pytest.raises(PayloadLimitError) as text:
        check_json_bytes(msgspec.json.encode([[0] * 60_000, [0] * 60_000]))
    assert text.value.limit == "max_items"


@pytest.mark.parametrize(
    "text",
    [
        b'["[[[[[[", "]]]", "\\"[[[["]',  # brackets inside strings are text, not nesting
        b'{"a\\\\": "[[", "b": "\\\\\\"{{{"}',  # escaped backslashes before quotes
    ],
)
def test_brackets_inside_strings_do_not_count(text: bytes) -> None:
    msgspec.json.decode(text)  # valid JSON
    check_json_bytes(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "payload is a set"),
        (b"x", "payload is a bytes"),
        ({"a": [1, float("nan")]}, r"payload.a\[1\] is nan"),
        ({1: "x"}, "has a key 1"),
        ("\ud800", "lone UTF-16 surrogate"),
        ({"\udfff": 1}, "lone UTF-16 surrogate"),
    ],
)
def test_values_json_cannot_keep_are_refused_with_where(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        check_json(value)
