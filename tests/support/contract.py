"""Validate response bodies against the contract's schemas."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract" / "coasty-openapi.json"


@functools.cache
def contract() -> dict[str, Any]:
    return json.loads(CONTRACT.read_text())


@functools.cache
def _validator(schema_name: str) -> Draft202012Validator:
    doc = contract()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    return Draft202012Validator(schema)


def assert_valid(schema_name: str, instance: Any) -> None:
    errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the contract's ApiError with this status and code."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert_valid("ApiError", body)
    assert body["error"]["code"] == code, body
    assert body["error"]["request_id"] == response.headers["x-coasty-request-id"]
    return body["error"]  # type: ignore[no-any-return]
