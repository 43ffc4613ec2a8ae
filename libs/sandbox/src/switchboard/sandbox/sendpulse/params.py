"""Request parameters of the SendPulse fake: JSON, urlencoded or multipart bodies.

The official Python SDK posts form bodies whose list and object fields (`emails`,
`email`, `phones`) are JSON strings, while other clients send one JSON document; both
reach the handlers as the same decoded values.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from switchboard.sandbox.params import read_params as body_params
from switchboard.sandbox.sendpulse.errors import api_error

_SUMMARY_TEXT = 80


async def read_params(request: Request) -> dict[str, Any]:
    """The query string merged with the body (JSON object or form fields)."""
    return await body_params(request, lambda why: api_error(f"Request body {why}"), max_files=16)


def json_param(values: dict[str, Any], name: str) -> Any:
    """A structured parameter: JSON values pass through, JSON strings are decoded."""
    value = values.get(name)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    if text[0] not in "[{":
        return value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise api_error(f"Parameter {name} is not valid JSON") from exc


def flag(value: Any, name: str) -> bool:
    """A boolean sent as JSON, a number or a form string ("1", "true", "False", ...)."""
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", "none"}:
        return False
    raise api_error(f"Parameter {name} must be a boolean")


def summary(values: dict[str, Any]) -> dict[str, Any]:
    """A compact copy for the recorder: long strings and structures cut."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "client_secret":
            out[key] = "***"
            continue
        text = value if isinstance(value, str) else None
        if isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False)
        if text is not None and len(text) > _SUMMARY_TEXT:
            out[key] = f"{text[:_SUMMARY_TEXT]}...({len(text)} chars)"
        else:
            out[key] = value if text is None or isinstance(value, str) else text
    return out
