"""Validation of send_message bodies: missing fields are status 4, wrong ones status 3."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from switchboard.sandbox.viber.config import ViberConfig
from switchboard.sandbox.viber.errors import bad_data, missing_data

MESSAGE_TYPES = (
    "text",
    "picture",
    "video",
    "file",
    "contact",
    "location",
    "url",
    "sticker",
    "rich_media",
)


def _string(data: dict[str, Any], key: str, limit: int | None = None, path: str = "") -> str:
    value = data.get(key)
    name = f"{path}{key}"
    if value is None or value == "":
        raise missing_data(f"{name} is required")
    if not isinstance(value, str):
        raise bad_data(f"{name} must be a string")
    if limit is not None and len(value) > limit:
        raise bad_data(f"{name} must be at most {limit} characters")
    return value


def _url(data: dict[str, Any], key: str, limit: int = 2000) -> str:
    value = _string(data, key, limit)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_data(f"{key} must be an http(s) URL")
    return value


def _number(data: dict[str, Any], key: str, path: str = "") -> float:
    value = data.get(key)
    if value is None:
        raise missing_data(f"{path}{key} is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_data(f"{path}{key} must be a number")
    return float(value)


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        raise missing_data(f"{key} is required")
    if not isinstance(value, dict):
        raise bad_data(f"{key} must be an object")
    return value


def check_keyboard(keyboard: Any) -> None:
    """A keyboard: `Type: keyboard` and 1-24 Buttons, each with an ActionBody."""
    if not isinstance(keyboard, dict):
        raise bad_data("keyboard must be an object")
    if keyboard.get("Type") != "keyboard":
        raise bad_data("keyboard.Type must be 'keyboard'")
    buttons = keyboard.get("Buttons")
    if not isinstance(buttons, list) or not buttons:
        raise missing_data("keyboard.Buttons is required")
    if len(buttons) > 24:
        raise bad_data("keyboard.Buttons has at most 24 buttons")
    for index, button in enumerate(buttons):
        if not isinstance(button, dict) or not button.get("ActionBody"):
            raise missing_data(f"keyboard.Buttons[{index}].ActionBody is required")


def check_content(body: dict[str, Any], kind: str, config: ViberConfig) -> None:
    """The type-specific fields of a message."""
    if kind == "text":
        _string(body, "text", config.max_text)
    elif kind == "picture":
        _url(body, "media")
        if body.get("text") is not None and len(str(body["text"])) > 512:
            raise bad_data("text of a picture must be at most 512 characters")
    elif kind == "video":
        _url(body, "media")
        _number(body, "size")
        if body.get("duration") is not None and _number(body, "duration") > 180:
            raise bad_data("duration must be at most 180 seconds")
    elif kind == "file":
        _url(body, "media")
        _number(body, "size")
        _string(body, "file_name", 256)
    elif kind == "contact":
        contact = _object(body, "contact")
        _string(contact, "name", 28, "contact.")
        _string(contact, "phone_number", 18, "contact.")
    elif kind == "location":
        location = _object(body, "location")
        if not -90 <= _number(location, "lat", "location.") <= 90:
            raise bad_data("location.lat must be between -90 and 90")
        if not -180 <= _number(location, "lon", "location.") <= 180:
            raise bad_data("location.lon must be between -180 and 180")
    elif kind == "url":
        _url(body, "media")
    elif kind == "sticker":
        sticker = body.get("sticker_id")
        if sticker is None:
            raise missing_data("sticker_id is required")
        if isinstance(sticker, bool) or not isinstance(sticker, int):
            raise bad_data("sticker_id must be an integer")
    elif kind == "rich_media":
        rich = _object(body, "rich_media")
        if not isinstance(rich.get("Buttons"), list) or not rich["Buttons"]:
            raise missing_data("rich_media.Buttons is required")


def check_send(body: dict[str, Any], config: ViberConfig) -> tuple[str, str]:
    """Validate a send_message body; returns (receiver, type)."""
    receiver = _string(body, "receiver")
    sender = _object(body, "sender")
    _string(sender, "name", config.max_sender_name, "sender.")
    if sender.get("avatar") is not None and len(str(sender["avatar"])) > 2000:
        raise bad_data("sender.avatar must be at most 2000 characters")
    kind = _string(body, "type")
    if kind not in MESSAGE_TYPES:
        raise bad_data(f"type must be one of {', '.join(MESSAGE_TYPES)}")
    tracking = body.get("tracking_data")
    if tracking is not None:
        if not isinstance(tracking, str):
            raise bad_data("tracking_data must be a string")
        if len(tracking) > config.max_tracking_data:
            raise bad_data(f"tracking_data must be at most {config.max_tracking_data} characters")
    version = body.get("min_api_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise bad_data("min_api_version must be an integer")
    if body.get("keyboard") is not None:
        check_keyboard(body["keyboard"])
    check_content(body, kind, config)
    return receiver, kind
