"""The error answers each route documents in the OpenAPI document (all are ``Problem``)."""

from __future__ import annotations

from typing import Any

from jobrunner.api.schemas import Problem

Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {status: {"model": Problem} for status in (400, 413, 422, 429, 503)}
NOT_FOUND: Responses = {404: {"model": Problem}}
UNAVAILABLE: Responses = {503: {"model": Problem}}
