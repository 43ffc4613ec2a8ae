"""Which `user_data` fields Meta wants hashed, and a reference normalizer for building them.

The fake only checks the shape of what arrives (64 lowercase hex or not); `hash_field` is
a helper for tests and demos that follows PROTOCOLS.md's normalization rules, so events
built with it look like those of a correct client.
"""

from __future__ import annotations

import hashlib
import re
import string

HASHED_FIELDS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge")
"""Must be SHA-256 hex of the normalized value (a single value or a list)."""

PLAIN_FIELDS = ("client_ip_address", "client_user_agent", "fbc", "fbp", "lead_id", "ctwa_clid")
"""Must never be hashed."""

OTHER_FIELDS = (
    "external_id",
    "subscription_id",
    "fb_login_id",
    "madid",
    "anon_id",
    "page_id",
    "page_scoped_user_id",
)
"""Accepted as sent (hashing `external_id` is recommended, not required)."""

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_ANY_CASE_HEX = re.compile(r"^[0-9A-Fa-f]{64}$")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def is_sha256(value: object) -> bool:
    """64 lowercase hex characters: what Meta accepts as a hashed value."""
    return isinstance(value, str) and SHA256_HEX.match(value) is not None


def looks_hashed(value: object) -> bool:
    """64 hex characters in any case: a value someone hashed (wrong for plain fields)."""
    return isinstance(value, str) and _ANY_CASE_HEX.match(value) is not None


def normalize(field: str, value: str) -> str:
    """The normalized form Meta hashes, per field (PROTOCOLS.md's rules)."""
    text = value.strip().lower()
    if field == "ph":
        return re.sub(r"\D", "", text).lstrip("0")
    if field in ("fn", "ln"):
        return text.translate(_PUNCTUATION).strip()
    if field == "ct":
        return "".join(ch for ch in text if ch.isalpha())
    if field in ("st", "country"):
        return "".join(ch for ch in text if ch.isalpha())[:2]
    if field == "zp":
        compact = re.sub(r"[\s-]", "", text)
        return compact[:5] if re.fullmatch(r"\d{9}", compact) else compact
    if field == "db":
        return re.sub(r"\D", "", text)
    if field == "ge":
        return text[:1]
    return text


def hash_field(field: str, value: str) -> str:
    """SHA-256 hex of the normalized value; an already-hashed value is returned as is."""
    if is_sha256(value):
        return value
    return hashlib.sha256(normalize(field, value).encode("utf-8")).hexdigest()
