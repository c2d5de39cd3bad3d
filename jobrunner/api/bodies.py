"""``POST /jobs`` bodies, decoded by msgspec in one C pass: bounded work for any input.

A job's ``data`` is kept as the client's JSON text (``msgspec.Raw``): it is parsed once, checked
against the payload limits without building Python objects (``jobrunner.payload``) and stored
as it came, so neither a deep nor a wide payload costs the event loop more than milliseconds.
The pydantic models in ``schemas.py`` describe the same bodies for the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from jobrunner.api.errors import ApiError
from jobrunner.job import QUEUE_NAME
from jobrunner.payload import MAX_DEPTH
from jobrunner.queue import BATCH_LIMIT

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_HIGH, _LOW = rb"\\u[dD][89abAB][0-9a-fA-F]{2}", rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_SURROGATE = re.compile(_HIGH + b"(?!" + _LOW + b")|(?<!" + _HIGH + b")" + _LOW)
_WHERE = re.compile(r"`\$((?:\.\w+|\[\d+\])*)`")
_UNKNOWN = re.compile(r"unknown field `(\w+)`")


class JobIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: Text
    data: msgspec.Raw = msgspec.Raw(b"null")
    queue: Annotated[str, msgspec.Meta(pattern=QUEUE_NAME.pattern)] | None = None
    delay: Annotated[float, msgspec.Meta(ge=0, le=365 * 86400)] = 0.0
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    idempotency_key: Text | None = None


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One job (its fields at the top) or a batch (``jobs``): the union of both shapes."""

    type: Text | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")
    queue: Annotated[str, msgspec.Meta(pattern=QUEUE_NAME.pattern)] | None = None
    delay: Annotated[float, msgspec.Meta(ge=0, le=365 * 86400)] = 0.0
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    idempotency_key: Text | None = None
    jobs: Annotated[list[JobIn], msgspec.Meta(min_length=1, max_length=BATCH_LIMIT)] | None = None


_decoder = msgspec.json.Decoder(Body)


def decode_jobs(raw: bytes) -> tuple[list[JobIn], bool]:
    """The jobs a body asks for and whether it was a single job, or an ApiError (400/422)."""
    try:
        body = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid", _plain(str(exc)), field=_field(str(exc))) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            raise ApiError(422, "max_depth", f"the body is nested deeper than {MAX_DEPTH}",
                           field="data") from None  # fmt: skip
        if _LONE_SURROGATE.search(raw):
            raise ApiError(422, "invalid", "a string holds a lone UTF-16 surrogate escape "
                           "(\\ud800-\\udfff not in a pair): it is not text") from None  # fmt: skip
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if body.jobs is not None:
        if body.type is not None:
            raise ApiError(422, "invalid", "give one job's fields or `jobs`, not both",
                           field="jobs")  # fmt: skip
        items, single = body.jobs, False
    elif body.type is None:
        raise ApiError(422, "invalid", "a job needs a `type` (or give a batch as `jobs`)",
                       field="type")  # fmt: skip
    else:
        items = [JobIn(type=body.type, data=body.data, queue=body.queue, delay=body.delay,
                       max_retries=body.max_retries, timeout=body.timeout,
                       idempotency_key=body.idempotency_key)]  # fmt: skip
        single = True
    return items, single


def _field(message: str) -> str | None:
    """``Expected ... - at `$.jobs[3].delay``` -> ``jobs.3.delay``; an unknown field by name."""
    found = _WHERE.search(message)
    where = found.group(1).lstrip(".").replace("[", ".").replace("]", "") if found else ""
    unknown = _UNKNOWN.search(message)
    if unknown:
        where = f"{where}.{unknown.group(1)}" if where else unknown.group(1)
    return where or None


def _plain(message: str) -> str:
    return message.replace("`", "")
