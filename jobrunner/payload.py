"""What a job's payload may be: JSON values as they are, nested at most ``MAX_DEPTH`` deep and
holding at most ``MAX_ITEMS`` array items and object members in all.

The same limits hold on every path. A Python caller's value is walked iteratively (no recursion
to overflow). Bytes from a client (the API) are checked without building any Python object:
string contents are cut out with byte operations, the remaining separators are counted, and the
depth is a running sum over the brackets, all in C loops, so a 1 MiB body of any shape is checked
in milliseconds. Lone UTF-16 surrogates (``"\\ud800"``) are not text: msgspec refuses them while
it parses a body, and ``check_json`` refuses them in Python strings.
"""

from __future__ import annotations

import math
from array import array
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside one another
MAX_ITEMS = 100_000  # array items plus object members, over the whole payload

_SEPARATORS = bytes(range(256)).translate(None, b"[]{},")
_DEPTH_STEP = bytes.maketrans(b"[]{}", bytes([1, 255, 1, 255]))  # +1, -1 as signed bytes


class PayloadLimitError(ValueError):
    """A payload nested too deep or holding too many items; ``limit`` names the limit."""

    def __init__(self, detail: str, limit: str) -> None:
        super().__init__(detail)
        self.limit = limit


def check_json_bytes(raw: bytes, where: str = "data") -> None:
    """Refuse a syntactically valid JSON text over the depth or item limit (PayloadLimitError)."""
    # Escaped backslashes, then escaped quotes, go first: every quote left delimits a string,
    # so the text outside strings is every other piece between quotes.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    marks = outside.translate(None, _SEPARATORS)
    brackets = marks.replace(b",", b"")
    items = len(marks) - len(brackets) + len(brackets) // 2
    if items > MAX_ITEMS:
        raise PayloadLimitError(
            f"{where} holds about {items} items; the limit is {MAX_ITEMS} array items and "
            "object members in all",
            "max_items",
        )
    depth = max(accumulate(array("b", brackets.translate(_DEPTH_STEP))), default=0)
    if depth > MAX_DEPTH:
        raise PayloadLimitError(
            f"{where} is nested {depth} deep; the limit is {MAX_DEPTH}", "max_depth"
        )


def check_json(value: Any, path: str = "payload") -> None:
    """Refuse what JSON cannot hold unchanged (sets, bytes, NaN, dates, objects, lone
    surrogates...) with a TypeError naming where, and what is over the limits.

    msgspec would quietly turn a set into a list, bytes into base64 and NaN into null; a job
    must run with the payload it was given, so such values are an error at enqueue instead.
    """
    # Where a value sits is rendered only for an error: a path string per item would cost more
    # than the check itself (a job's payload and every result pass here).
    items = 0
    stack: list[tuple[Any, _Where, int]] = [(value, (None, path), 0)]
    while stack:
        value, at, depth = stack.pop()
        kind = type(value)
        if value is None or kind is bool or kind is int:
            continue
        if kind is str:
            if not value.isascii():
                _check_text(value, _render(at))
            continue
        if kind is float:
            if not math.isfinite(value):
                raise TypeError(f"{_render(at)} is {value!r}: JSON has no NaN or infinity")
            continue
        if kind is list or kind is tuple or kind is dict:
            if depth >= MAX_DEPTH:
                raise PayloadLimitError(
                    f"{_render(at)} is nested deeper than the limit of {MAX_DEPTH}", "max_depth"
                )
            items += len(value)
            if items > MAX_ITEMS:
                raise PayloadLimitError(
                    f"{path} holds more than {MAX_ITEMS} array items and object members",
                    "max_items",
                )
            if kind is dict:
                for key, item in value.items():
                    if type(key) is not str:
                        raise TypeError(
                            f"{_render(at)} has a key {key!r}: JSON object keys are strings"
                        )
                    if not key.isascii():
                        _check_text(key, f"{_render(at)} key")
                    stack.append((item, (at, "." + key), depth + 1))
            else:
                stack.extend((item, (at, i), depth + 1) for i, item in enumerate(value))
            continue
        raise TypeError(f"{_render(at)} is a {kind.__name__}: not a JSON value")


_Where = tuple[Any, "str | int"]  # (the parent's _Where or None, ".key" or an index)


def _render(at: _Where) -> str:
    """``payload.items[2].name`` from the chain of (parent, step) pairs."""
    steps: list[str] = []
    node: Any = at
    while node is not None:
        node, step = node
        steps.append(f"[{step}]" if type(step) is int else step)
    return "".join(reversed(steps))


def _check_text(text: str, where: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError(f"{where} holds a lone UTF-16 surrogate: not text") from None
