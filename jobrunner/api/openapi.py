"""The OpenAPI document's request bodies that routes decode themselves (with msgspec).

``POST /jobs`` reads its body with msgspec, so FastAPI does not see a body parameter; the
pydantic models in ``schemas.py`` still describe it, added here to the document's components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jobrunner.api.schemas import BatchRequest, JobRequest

REF = "#/components/schemas/{model}"
JOB_BODIES: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": REF.format(model="JobRequest")},
                        {"$ref": REF.format(model="BatchRequest")},
                    ]
                }
            }
        },
    }
}


def install_openapi(app: FastAPI) -> None:
    """Build the document once, with the body models of routes that decode their own bodies."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, summary=app.summary,
                              routes=app.routes)  # fmt: skip
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in (JobRequest, BatchRequest):
                schema = model.model_json_schema(ref_template=REF)
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
