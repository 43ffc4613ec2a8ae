"""JSON helpers of the control API: read a JSON object body, answer errors uniformly."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from switchboard.sandbox.errors import SandboxError

T = TypeVar("T")


class ControlError(SandboxError):
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


def required(data: dict[str, Any], name: str, *aliases: str) -> str:
    """A field a control body must give (under ``name`` or, as older callers say, one of
    ``aliases``), as text; a 400 naming it when it is missing or empty."""
    for key in (name, *aliases):
        if data.get(key):
            return str(data[key])
    also = f" (or {', '.join(aliases)})" if aliases else ""
    raise ControlError(f"{name}{also} is required")


def object_field(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    """An optional field of a control body that must be a JSON object when given."""
    value = data.get(name)
    if value is not None and not isinstance(value, dict):
        raise ControlError(f"{name} must be a JSON object")
    return value


def named(request: Request, param: str, find: Callable[[str], T | None]) -> T:
    """The object a control request names by ``param`` (in its path, else its query),
    looked up with ``find``; a 404 naming it when there is none."""
    ref = request.path_params.get(param) or request.query_params.get(param)
    found = find(ref) if ref else None
    if found is None:
        raise ControlError(f"no {param} {ref!r}", 404)
    return found


def listing(key: str, items: list[Any]) -> JSONResponse:
    """A control API listing: how many there are, and the (JSON-ready) items under `key`."""
    return JSONResponse({"count": len(items), key: items})


def error_json(exc: ControlError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def _query(request: Request, name: str, convert: Callable[[str], T], what: str) -> T | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return convert(value)
    except ValueError as exc:
        raise ControlError(f"{name} must be {what}") from exc


def query_text(request: Request, name: str) -> str | None:
    """An optional text query parameter (None when absent or empty)."""
    return _query(request, name, str, "text")


def query_int(request: Request, name: str) -> int | None:
    """An optional integer query parameter."""
    return _query(request, name, int, "an integer")


def query_float(request: Request, name: str) -> float | None:
    """An optional float query parameter."""
    return _query(request, name, float, "a number")


def base64_field(data: dict[str, Any], name: str = "content_base64") -> bytes:
    """The bytes of a base64 field of a control body (a file a customer sends): required, as
    no provider holds an empty file (a misspelt field made one, served as 0 bytes)."""
    try:
        return base64.b64decode(required(data, name), validate=True)
    except (binascii.Error, ValueError):
        raise ControlError(f"{name} must be base64") from None


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
