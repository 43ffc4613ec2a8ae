"""Turning a media parameter (upload, URL or file_id) into the objects a Message carries."""

from __future__ import annotations

from typing import Any

from switchboard.sandbox.telegram.errors import WRONG_FILE, TelegramError, bad_request
from switchboard.sandbox.telegram.files import TYPE_NAMES, StoredFile, image_size
from switchboard.sandbox.telegram.methods.base import Call
from switchboard.sandbox.telegram.params import Upload

URL_PREFIXES = ("http://", "https://")
_URL_FILE_SIZE = 48_213


def media_object(
    call: Call, kind: str, value: Upload | str | None, extra: dict[str, Any] | None = None
) -> Any:
    """The Message field of `kind` (a PhotoSize list for photos) for this input."""
    if value is None or value == "":
        raise bad_request(f"there is no {kind} in the request")
    if isinstance(value, Upload):
        return _describe(kind, _from_upload(call, kind, value, extra or {}))
    if value.startswith(URL_PREFIXES):
        return _describe(kind, _from_url(call, kind, value, extra or {}))
    stored = call.bot.files.get(value)
    if stored is None:
        raise bad_request(WRONG_FILE)
    if stored.kind != kind:
        raise bad_request(f"can't use file of type {TYPE_NAMES[stored.kind]} as {TYPE_NAMES[kind]}")
    if kind == "photo":
        return [size.describe() for size in call.bot.files.photo_set(stored.file_id) or [stored]]
    return stored.describe()


def _describe(kind: str, stored: StoredFile | list[StoredFile]) -> Any:
    if isinstance(stored, list):
        return [size.describe() for size in stored]
    return stored.describe()


def _from_upload(
    call: Call, kind: str, upload: Upload, extra: dict[str, Any]
) -> StoredFile | list[StoredFile]:
    config = call.state.config
    size = len(upload.data)
    if size == 0:
        raise bad_request("file must be non-empty")
    if size > config.max_other_upload:
        raise TelegramError(413, "Request Entity Too Large")
    if kind == "photo":
        if size > config.max_photo_upload:
            raise bad_request("file is too big")
        width, height = image_size(upload.data) or (1280, 960)
        return call.bot.files.add_photo(width, height, size, upload.data)
    return call.bot.files.add(
        kind,
        size=size,
        content=upload.data,
        mime_type=upload.content_type or None,
        **_details(call, kind, upload.filename, size, extra),
    )


def _from_url(
    call: Call, kind: str, url: str, extra: dict[str, Any]
) -> StoredFile | list[StoredFile]:
    if kind == "photo":
        return call.bot.files.add_photo(1280, 960, _URL_FILE_SIZE)
    name = url.rsplit("/", 1)[-1].split("?")[0] or "file"
    return call.bot.files.add(
        kind, size=_URL_FILE_SIZE, **_details(call, kind, name, _URL_FILE_SIZE, extra)
    )


def _details(
    call: Call, kind: str, filename: str, size: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """Dimensions, duration and name fields a file of `kind` has, from params or guesses."""
    params = call.params
    duration = params.integer("duration") or max(1, size // 16_000)
    out: dict[str, Any] = {"extra": dict(extra)}
    if kind in ("video", "animation"):
        out.update(
            width=params.integer("width") or 1280,
            height=params.integer("height") or 720,
            duration=duration,
        )
    if kind == "sticker":
        out.update(width=512, height=512)
    if kind in ("audio", "voice"):
        out["duration"] = duration
    if kind in ("document", "audio", "video", "animation"):
        out["file_name"] = filename
    return out
