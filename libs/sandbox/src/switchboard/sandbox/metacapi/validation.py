"""Event validation of the CAPI fake, as Meta applies it: one bad event rejects the batch.

Checks, per PROTOCOLS.md: required fields, `action_source` values, website events'
`event_source_url` and `client_user_agent`, `event_time` within 7 days (and not ahead of
the clock by more than a small tolerance), at most 1000 events, hashed `user_data` fields
as 64 lowercase hex, and plain fields (IP, user agent, fbc, fbp, ...) never hashed.
The first problem found is reported; its message names the event and the field.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from switchboard.sandbox.graph import GraphError
from switchboard.sandbox.metacapi.config import DAY, MetaCapiConfig
from switchboard.sandbox.metacapi.errors import (
    SUBCODE_FUTURE_EVENT,
    SUBCODE_STALE_EVENT,
    SUBCODE_TOO_MANY_EVENTS,
    invalid_parameter,
    missing_parameter,
)
from switchboard.sandbox.metacapi.hashing import (
    HASHED_FIELDS,
    OTHER_FIELDS,
    PLAIN_FIELDS,
    is_sha256,
    looks_hashed,
)

ACTION_SOURCES = (
    "website",
    "app",
    "chat",
    "email",
    "phone_call",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
)
_FBC = re.compile(r"^fb\.\d+\.\d{10,13}\.[^.\s]+(\.[^\s]+)?$")
_FBP = re.compile(r"^fb\.\d+\.\d{10,13}\.\d+(\.[^\s]+)?$")
_URL = re.compile(r"^https?://[^\s/]+\S*$", re.IGNORECASE)
_KNOWN_USER_DATA = set(HASHED_FIELDS) | set(PLAIN_FIELDS) | set(OTHER_FIELDS)


def _missing(where: str, name: str) -> GraphError:
    return invalid_parameter(
        f"{where}: the required parameter {name} is missing.", title="Missing Parameter"
    )


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def validate_batch(data: Any, now: float, config: MetaCapiConfig) -> list[dict[str, Any]]:
    """The (decoded) events of a request, or the GraphError that rejects the whole request."""
    if data is None:
        raise missing_parameter("data")
    if not isinstance(data, list):
        raise invalid_parameter("data must be an array of event objects.")
    if not data:
        raise invalid_parameter("data must contain at least one event.")
    if len(data) > config.max_events:
        raise invalid_parameter(
            f"A request can contain at most {config.max_events} events; "
            f"this one has {len(data)}. Split it into several requests.",
            title="Too Many Events",
            subcode=SUBCODE_TOO_MANY_EVENTS,
        )
    events = [_decoded(index, event) for index, event in enumerate(data)]
    for index, event in enumerate(events):
        validate_event(index, event, now, config)
    return events


def _decoded(index: int, event: Any) -> Any:
    """An event; the `facebook-business` SDK sends each one as a JSON string."""
    if not isinstance(event, str):
        return event
    try:
        return json.loads(event)
    except ValueError as exc:
        raise invalid_parameter(f"data[{index}] is not a valid JSON event object.") from exc


def validate_event(index: int, event: Any, now: float, config: MetaCapiConfig) -> None:
    """Raise the GraphError for the first problem of one event."""
    where = f"data[{index}]"
    if not isinstance(event, dict):
        raise invalid_parameter(f"{where} must be an event object.")
    name = event.get("event_name")
    if _empty(name):
        raise _missing(where, "event_name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_parameter(f"{where}.event_name must be a non-empty string.")
    check_event_time(where, event.get("event_time"), now, config)
    source = event.get("action_source")
    if _empty(source):
        raise _missing(where, "action_source")
    if source not in ACTION_SOURCES:
        raise invalid_parameter(
            f"{where}.action_source {source!r} is not one of: {', '.join(ACTION_SOURCES)}.",
            title="Invalid action_source",
        )
    website = source == "website"
    if website:
        url = event.get("event_source_url")
        if _empty(url):
            raise _missing(where, "event_source_url (required for website events)")
        if not isinstance(url, str) or not _URL.match(url):
            raise invalid_parameter(f"{where}.event_source_url must be an http(s) URL.")
    check_user_data(where, event.get("user_data"), website)
    if source == "business_messaging":
        check_business_messaging(where, event)
    custom = event.get("custom_data")
    if custom is not None and not isinstance(custom, dict):
        raise invalid_parameter(f"{where}.custom_data must be an object.")
    event_id = event.get("event_id")
    if event_id is not None and (
        isinstance(event_id, bool) or not isinstance(event_id, str | int) or str(event_id) == ""
    ):
        raise invalid_parameter(f"{where}.event_id must be a non-empty string.")


MESSAGING_CHANNELS = ("whatsapp", "messenger", "instagram")


def check_business_messaging(where: str, event: dict[str, Any]) -> None:
    """A business_messaging event names its ``messaging_channel``; a WhatsApp one carries
    the ad click (``user_data.ctwa_clid``) that attributes it."""
    channel = event.get("messaging_channel")
    if _empty(channel):
        raise _missing(where, "messaging_channel (required for business_messaging events)")
    if channel not in MESSAGING_CHANNELS:
        raise invalid_parameter(
            f"{where}.messaging_channel {channel!r} is not one of: {', '.join(MESSAGING_CHANNELS)}."
        )
    user = event.get("user_data")
    if channel == "whatsapp" and (not isinstance(user, dict) or _empty(user.get("ctwa_clid"))):
        raise _missing(where, "user_data.ctwa_clid (required for WhatsApp business_messaging)")


def check_event_time(where: str, value: Any, now: float, config: MetaCapiConfig) -> None:
    """Unix seconds, not older than `max_event_age` nor ahead by more than `max_future`."""
    if _empty(value):
        raise _missing(where, "event_time")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_parameter(f"{where}.event_time must be a Unix timestamp in seconds.")
    if value < now - config.max_event_age:
        days = config.max_event_age / DAY
        raise invalid_parameter(
            f"{where}.event_time ({value}) is too far in the past. Events need to be sent "
            f"within {days:g} days of when they occurred; enter a timestamp from the last "
            f"{days:g} days.",
            title="Event Timestamp Too Old",
            subcode=SUBCODE_STALE_EVENT,
        )
    if value > now + config.max_future:
        raise invalid_parameter(
            f"{where}.event_time ({value}) is in the future. Send the Unix time in seconds "
            "(not milliseconds) of when the event happened.",
            title="Event Timestamp In The Future",
            subcode=SUBCODE_FUTURE_EVENT,
        )


def check_user_data(where: str, value: Any, website: bool) -> None:
    """Hashed fields are SHA-256 hex, plain fields are plain and well formed."""
    if _empty(value):
        raise _missing(where, "user_data")
    if not isinstance(value, dict):
        raise invalid_parameter(f"{where}.user_data must be an object.")
    if not any(key in _KNOWN_USER_DATA and not _empty(v) for key, v in value.items()):
        raise invalid_parameter(
            f"{where}.user_data has no customer information parameters "
            "(send at least one of em, ph, external_id, client_ip_address, fbp, ...).",
            title="Missing Customer Information",
        )
    prefix = f"{where}.user_data"
    for field in HASHED_FIELDS:
        for item in _values(value.get(field)):
            if not is_sha256(item):
                raise invalid_parameter(
                    f"{prefix}.{field} must be a SHA-256 hash of the normalized value "
                    "(64 lowercase hex characters); plain values are not accepted.",
                    title="Unhashed Customer Information",
                )
    for field in PLAIN_FIELDS:
        raw = value.get(field)
        if _empty(raw):
            continue
        if looks_hashed(raw):
            raise invalid_parameter(
                f"{prefix}.{field} must not be hashed: send the plain value.",
                title="Hashed Value Not Allowed",
            )
        _check_plain(prefix, field, raw)
    if website and _empty(value.get("client_user_agent")):
        raise _missing(where, "user_data.client_user_agent (required for website events)")
    for item in _values(value.get("external_id")):
        if isinstance(item, bool) or not isinstance(item, str | int) or str(item) == "":
            raise invalid_parameter(f"{prefix}.external_id must be a string or a list of them.")


def _values(value: Any) -> list[Any]:
    if _empty(value):
        return []
    return list(value) if isinstance(value, list) else [value]


def _check_plain(prefix: str, field: str, raw: Any) -> None:
    name = f"{prefix}.{field}"
    if field == "lead_id":
        if isinstance(raw, bool) or not str(raw).isdigit():
            raise invalid_parameter(f"{name} must be the numeric lead id.")
        return
    if not isinstance(raw, str):
        raise invalid_parameter(f"{name} must be a string.")
    if field == "client_ip_address":
        try:
            ipaddress.ip_address(raw.strip())
        except ValueError as exc:
            raise invalid_parameter(f"{name} must be an IPv4 or IPv6 address.") from exc
    elif field == "fbc" and not _FBC.match(raw):
        raise invalid_parameter(
            f"{name} must look like fb.1.<creation time in ms>.<fbclid>.", title="Invalid fbc"
        )
    elif field == "fbp" and not _FBP.match(raw):
        raise invalid_parameter(
            f"{name} must look like fb.1.<creation time in ms>.<random number>.",
            title="Invalid fbp",
        )
