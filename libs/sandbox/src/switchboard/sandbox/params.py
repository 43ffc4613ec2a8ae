"""Parameters of a fake API call: the query string merged with a JSON object or form body.

Official SDKs often post forms while other clients post one JSON document; both reach the
handlers as one dict. A body that is not a JSON object raises the provider's own error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

_FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
_PART_SIZE = 1024 * 1024  # Starlette's default size of one multipart part


async def read_params(
    request: Request,
    invalid: Callable[[str], Exception],
    *,
    max_files: int,
    max_part_size: int = _PART_SIZE,
) -> dict[str, Any]:
    """The query string merged with the body's fields (files are left out); `invalid(why)`
    is the exception raised for a body that is not a JSON object."""
    values: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _FORM_TYPES:
        limits = {"max_files": max_files, "max_fields": 1000, "max_part_size": max_part_size}
        async with request.form(**limits) as form:
            for key, value in form.multi_items():
                if not isinstance(value, UploadFile):
                    values[key] = value
        return values
    body = await request.body()
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise invalid("is not valid JSON") from exc
        if not isinstance(data, dict):
            raise invalid("must be a JSON object")
        values.update(data)
    return values
