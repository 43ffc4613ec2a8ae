"""Reading one key of a JetStream KV bucket: the one place that knows the ways a key holds
no record (never written, deleted, purged, or an empty value)."""

from __future__ import annotations

from typing import NamedTuple

from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue


class LiveEntry(NamedTuple):
    """What a key holds now, and the revision to update it at (compare-and-set)."""

    value: bytes
    revision: int


async def live_entry(kv: KeyValue, key: str) -> LiveEntry | None:
    """The latest value of ``key`` with its revision; None when the key holds no record:
    never written, deleted or purged (nats-py raises for those) or written empty."""
    try:
        entry = await kv.get(key)
    except NotFoundError:
        return None
    if not entry.value or entry.revision is None:
        return None
    return LiveEntry(entry.value, entry.revision)
