"""Checks the SendPulse fake applies to what clients send: emails, phones, base64 bodies.

An invalid item rejects the whole request (nothing is stored) with a message naming it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from switchboard.sandbox.sendpulse.errors import NO_DATA, api_error

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PHONE_DIGITS = re.compile(r"^\d{10,15}$")
_SENDER_NAME = re.compile(r"^[A-Za-z0-9 .&'_-]{1,11}$")
_MAX_EMAIL = 254


def is_email(value: object) -> bool:
    """A plausible mailbox: local part, @, a dotted domain; no spaces; at most 254 chars."""
    return (
        isinstance(value, str)
        and len(value) <= _MAX_EMAIL
        and ".." not in value
        and _EMAIL.match(value) is not None
    )


def email_address(value: object, what: str) -> str:
    """A valid email address, lowercased and trimmed, or a 400 naming it."""
    text = value.strip() if isinstance(value, str) else value
    if not is_email(text):
        raise api_error(f"Invalid email address in {what}: {value!r}")
    assert isinstance(text, str)
    return text.lower()


def phone_number(value: object) -> str:
    """An international number as digits (a leading + is dropped), or a 400 naming it."""
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    digits = text.removeprefix("+")
    if not _PHONE_DIGITS.match(digits) or digits.startswith("0"):
        raise api_error(
            f"Invalid phone number: {value!r} (use the international format, "
            "10-15 digits with the country code)"
        )
    return digits


def sms_sender(value: object) -> str:
    """An SMS sender id: up to 11 letters/digits, or up to 15 digits for a number."""
    if not isinstance(value, str) or not value.strip():
        raise api_error("Empty sender name", NO_DATA)
    text = value.strip()
    if text.isdigit() and len(text) <= 15:
        return text
    if not _SENDER_NAME.match(text):
        raise api_error(
            f"Invalid sender name: {value!r} (at most 11 Latin letters, digits or spaces)"
        )
    return text


def base64_html(value: object) -> str:
    """The markup of a base64 `html` field, or a 400 saying it is not valid base64."""
    if not isinstance(value, str):
        raise api_error("Field html must be a base64-encoded string")
    compact = "".join(value.split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise api_error("Field html is not valid base64 (encode the HTML with base64)") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise api_error("Field html does not decode to UTF-8 text") from exc


def as_list(value: Any, name: str) -> list[Any]:
    """A non-empty list parameter, or 400 code 8 ("No data")."""
    if value is None or value == "" or value == []:
        raise api_error(f"No data: {name} is empty", NO_DATA)
    if not isinstance(value, list):
        raise api_error(f"Parameter {name} must be a list")
    return value
