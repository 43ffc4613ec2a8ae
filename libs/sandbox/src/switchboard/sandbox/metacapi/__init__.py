"""Fake Meta Graph Conversions API: event validation as Meta does it, test events, dedup."""

from switchboard.sandbox.metacapi.config import LATEST_VERSION, MetaCapiConfig
from switchboard.sandbox.metacapi.hashing import (
    HASHED_FIELDS,
    PLAIN_FIELDS,
    hash_field,
    is_sha256,
    normalize,
)
from switchboard.sandbox.metacapi.provider import (
    DEMO_ACCESS_TOKEN,
    DEMO_PIXEL_ID,
    MetaCapiProvider,
)
from switchboard.sandbox.metacapi.state import CapiEvent, EventCounts, Pixel
from switchboard.sandbox.metacapi.validation import ACTION_SOURCES

__all__ = [
    "ACTION_SOURCES",
    "DEMO_ACCESS_TOKEN",
    "DEMO_PIXEL_ID",
    "HASHED_FIELDS",
    "LATEST_VERSION",
    "PLAIN_FIELDS",
    "CapiEvent",
    "EventCounts",
    "MetaCapiConfig",
    "MetaCapiProvider",
    "Pixel",
    "hash_field",
    "is_sha256",
    "normalize",
]
