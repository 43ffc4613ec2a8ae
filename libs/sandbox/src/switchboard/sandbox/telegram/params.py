"""Bot API parameters from a query string, JSON, urlencoded form or multipart body.

Form and query values are strings, so numbers, booleans and JSON objects (such as
`reply_markup`) are decoded on access; uploads are read eagerly into `Upload`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from switchboard.sandbox.telegram.errors import TelegramError, bad_request

_SUMMARY_TEXT = 64
_MAX_FORM_FIELD = 4 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart body."""

    field: str
    filename: str
    content_type: str
    data: bytes


class Params:
    """Typed access to the parameters of one call."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    def has(self, name: str) -> bool:
        return name in self.values or name in self.uploads

    def text(self, name: str) -> str | None:
        """A string parameter; numbers are given back as their text."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        return json.dumps(value)

    def required(self, name: str, said: str | None = None) -> str:
        """A string parameter the method cannot do without: absent or empty, Telegram's
        ``<name> is empty`` (``said``: the name Telegram's message uses for it)."""
        value = self.text(name)
        if not value:
            raise bad_request(f"{said or name} is empty")
        return value

    def integer(self, name: str) -> int | None:
        """An integer parameter; a value that is not one is a 400 naming the field."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise bad_request(f'field "{name}" must be of type Integer')
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError as exc:
            raise bad_request(f'field "{name}" must be of type Integer') from exc

    def number(self, name: str) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise bad_request(f'field "{name}" must be of type Number') from exc

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in {"true", "1", "yes", "on"}

    def json(self, name: str, error: str | None = None) -> Any:
        """A JSON parameter: objects pass through, strings (form bodies) are decoded."""
        value = self.values.get(name)
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise bad_request(error or f"can't parse {name} JSON object") from exc

    def media(self, name: str) -> Upload | str | None:
        """A file parameter: an upload, a file_id or URL string, or `attach://<field>`."""
        if name in self.uploads:
            return self.uploads[name]
        return self.resolve_media(self.text(name))

    def resolve_media(self, value: str | None) -> Upload | str | None:
        """Turn `attach://<field>` into that upload; other strings stay as they are."""
        if value is not None and value.startswith("attach://"):
            upload = self.uploads.get(value.removeprefix("attach://"))
            if upload is None:
                raise bad_request(f'can\'t find attached file "{value.removeprefix("attach://")}"')
            return upload
        return value

    def summary(self) -> dict[str, Any]:
        """A compact copy for the recorder: long strings cut, uploads described."""
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            if isinstance(value, str) and len(value) > _SUMMARY_TEXT:
                out[key] = f"{value[:_SUMMARY_TEXT]}...({len(value)} chars)"
            elif isinstance(value, dict | list):
                text = json.dumps(value, ensure_ascii=False)
                out[key] = text if len(text) <= _SUMMARY_TEXT else f"{text[:_SUMMARY_TEXT]}..."
            else:
                out[key] = value
        for key, upload in self.uploads.items():
            out[key] = f"<upload {upload.filename} {len(upload.data)} bytes>"
        return out


async def read_params(request: Request) -> Params:
    """All parameters of a call, merging the query string and the body."""
    values: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, Upload] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type == "application/json":
        body = await request.body()
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise TelegramError(400, "Bad Request: can't parse JSON object") from exc
            if not isinstance(data, dict):
                raise TelegramError(400, "Bad Request: can't parse JSON object")
            values.update(data)
    elif request.method == "POST" and content_type in {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }:
        async with request.form(
            max_files=64, max_fields=1000, max_part_size=_MAX_FORM_FIELD
        ) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    uploads[key] = Upload(
                        field=key,
                        filename=value.filename or key,
                        content_type=value.content_type or "",
                        data=data,
                    )
                else:
                    values[key] = value
    return Params(values, uploads)
