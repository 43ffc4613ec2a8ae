"""JSON helpers of the control API: read a JSON object body, answer errors uniformly."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


class ControlError(Exception):
    """A control request that cannot be served; becomes `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body of a control request ({} when the body is empty)."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ControlError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


def error_json(exc: ControlError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def query_int(request: Request, name: str) -> int | None:
    """An optional integer query parameter."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ControlError(f"{name} must be an integer") from exc


def query_float(request: Request, name: str) -> float | None:
    """An optional float query parameter."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise ControlError(f"{name} must be a number") from exc


def query_bool(request: Request, name: str) -> bool | None:
    """An optional boolean query parameter (true/false/1/0)."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if value.lower() in {"1", "true", "yes"}:
        return True
    if value.lower() in {"0", "false", "no"}:
        return False
    raise ControlError(f"{name} must be true or false")
