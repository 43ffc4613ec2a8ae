"""Parameters of a Graph call: query string plus a JSON or form body.

The `facebook-business` SDK posts a form whose `data` is a JSON array of JSON-encoded
event strings, with `access_token` in the query; other clients post one JSON document.
Both end up as the same decoded values (`validate_batch` decodes the event strings).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from switchboard.sandbox.metacapi.errors import invalid_parameter
from switchboard.sandbox.params import read_params as body_params

_TOKEN_SCHEMES = {"bearer", "oauth"}


async def read_params(request: Request) -> dict[str, Any]:
    """The query string merged with the body (JSON object or form fields)."""
    return await body_params(
        request,
        lambda why: invalid_parameter(f"The request body {why}."),
        max_files=4,
        max_part_size=8 * 1024**2,
    )


def json_param(values: dict[str, Any], name: str) -> Any:
    """A structured parameter: JSON values pass through, JSON strings are decoded."""
    value = values.get(name)
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise invalid_parameter(f"{name} is not valid JSON.") from exc


def access_token(request: Request, values: dict[str, Any]) -> str | None:
    """The token from `access_token` (query or body) or an `Authorization` header."""
    token = values.get("access_token")
    if isinstance(token, str) and token.strip():
        return token.strip()
    header = request.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in _TOKEN_SCHEMES and value.strip():
        return value.strip()
    return None


def text_param(values: dict[str, Any], name: str) -> str | None:
    """An optional string parameter (a non-string value is a 400 naming it)."""
    value = values.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid_parameter(f"{name} must be a string.")
    return value
