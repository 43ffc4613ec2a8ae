"""Reading one KV entry as the runtime means it: a key never written, deleted, purged or
holding nothing is simply absent (nats-py raises for the first three, and hands back the
last as an entry), so every store asks one way."""

from __future__ import annotations

from typing import NamedTuple

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue


class Current(NamedTuple):
    """A key's value and the revision it was written at (for a compare-and-set)."""

    value: bytes
    revision: int


async def current(kv: KeyValue, key: str) -> Current | None:
    """``key``'s value and revision now; None when it has none."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # never written, or deleted / purged (nats-py: every 404)
        return None
    if not entry.value or entry.revision is None:
        return None
    return Current(entry.value, entry.revision)
