"""Event ids already published, remembered beyond the streams' duplicate window in the
``dedup`` bucket: a provider retrying a webhook hours later, or a backfill reading a chat
again, must not publish its events twice. Ingest's normalizer, its renormalizer and the
MTProto gateway share these keys, so the bucket is one namespace.

Two ways to use it: ``already_published`` before and ``mark_published`` after the publish
(two round trips), or ``claim`` before it (one round trip: the hot path, ingest's
normalizer) with ``release`` when the publish fails. A mark of either kind makes the id
published for the other."""

from __future__ import annotations

import hashlib

from nats.js.kv import KeyValue

from switchboard.runtime.kv import create, current

PUBLISHED = b"1"  # the value of a mark written after the publish (``mark_published``)


def dedup_key(event_id: str) -> str:
    """KV keys allow only ``[-/_=.a-zA-Z0-9]``; event ids carry ':' and escapes: hashed."""
    return hashlib.sha256(event_id.encode()).hexdigest()


async def already_published(dedup: KeyValue, event_id: str) -> bool:
    """True when ``event_id`` was marked published (:func:`mark_published`, :func:`claim`)."""
    return await current(dedup, dedup_key(event_id)) is not None


async def mark_published(dedup: KeyValue, event_id: str) -> None:
    """Remember ``event_id`` as published; written after the publish was acked, so a crash
    in between publishes again, which the stream's duplicate window absorbs."""
    await dedup.put(dedup_key(event_id), PUBLISHED)


async def claim(dedup: KeyValue, event_id: str, owner: str) -> bool:
    """Mark ``event_id`` for ``owner`` unless someone else marked it: True when the caller
    must publish it (a fresh claim, or ``owner``'s own from an earlier attempt).

    One round trip where ``already_published`` and ``mark_published`` take two: the mark
    comes first, so it does not prove the publish. ``owner`` names the one attempt that
    may still publish (for a delivered message, its stream sequence: a redelivery is the
    same owner and publishes again, which the stream's duplicate window absorbs); whoever
    else finds the mark skips the event. A publish that fails must ``release`` the claim,
    or only ``owner`` can publish the event."""
    key, value = dedup_key(event_id), owner.encode()
    while True:
        if await create(dedup, key, value) is not None:
            return True
        found = await current(dedup, key)
        if found is not None:
            return found.value == value
        # released (or expired) since the create was refused: claim it again


async def release(dedup: KeyValue, event_id: str) -> None:
    """Withdraw a claim whose event was not published, so a later copy publishes it."""
    await dedup.delete(dedup_key(event_id))
