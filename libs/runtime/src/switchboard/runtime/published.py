"""Event ids already published, remembered beyond the streams' duplicate window in the
``dedup`` bucket: a provider retrying a webhook hours later, or a backfill reading a chat
again, must not publish its events twice. Ingest's normalizer, its renormalizer and the
MTProto gateway share these keys, so the bucket is one namespace."""

from __future__ import annotations

import hashlib

from nats.js.kv import KeyValue

from switchboard.runtime.kv import current


def dedup_key(event_id: str) -> str:
    """KV keys allow only ``[-/_=.a-zA-Z0-9]``; event ids carry ':' and escapes: hashed."""
    return hashlib.sha256(event_id.encode()).hexdigest()


async def already_published(dedup: KeyValue, event_id: str) -> bool:
    """True when ``event_id`` was marked published (:func:`mark_published`)."""
    return await current(dedup, dedup_key(event_id)) is not None


async def mark_published(dedup: KeyValue, event_id: str) -> None:
    """Remember ``event_id`` as published; written after the publish was acked, so a crash
    in between publishes again, which the stream's duplicate window absorbs."""
    await dedup.put(dedup_key(event_id), b"1")
