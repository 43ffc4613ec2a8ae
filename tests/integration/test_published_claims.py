"""The dedup bucket's claims (``runtime.published.claim``) on real NATS, and the ingest
normalizer using them: one round trip before the publish, the owner's redelivery publishes
again, any other copy skips, and a publish that fails leaves the event unclaimed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from nats.aio.msg import Msg
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue
from tests.support.streams import by_type, stream_messages
from tests.support.telegram import text_update

from switchboard.events.envelope import H_MSG_ID
from switchboard.ingest.normalizer import handle_raw, normalize_raw
from switchboard.ingest.raw import raw_envelope
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus, PayloadTooLargeError
from switchboard.runtime.published import (
    already_published,
    claim,
    mark_published,
    release,
)


async def test_a_claim_belongs_to_its_owner(bus: Bus) -> None:
    dedup = await bus.kv("dedup")
    assert not await already_published(dedup, "ev-1")
    assert await claim(dedup, "ev-1", "RAW:1")
    assert await already_published(dedup, "ev-1")
    assert await claim(dedup, "ev-1", "RAW:1")  # the owner again: a redelivery
    assert not await claim(dedup, "ev-1", "RAW:2")  # another copy of the payload


async def test_a_released_claim_goes_to_the_next_copy(bus: Bus) -> None:
    dedup = await bus.kv("dedup")
    assert await claim(dedup, "ev-2", "RAW:1")
    await release(dedup, "ev-2")
    assert not await already_published(dedup, "ev-2")
    assert await claim(dedup, "ev-2", "RAW:2")
    assert not await claim(dedup, "ev-2", "RAW:1")


async def test_a_mark_written_after_a_publish_refuses_every_claim(bus: Bus) -> None:
    dedup = await bus.kv("dedup")
    await mark_published(dedup, "ev-3")
    assert not await claim(dedup, "ev-3", "RAW:1")


async def _store_raw(bus: Bus, update: dict[str, object], copy: int = 0) -> None:
    subject, headers = raw_envelope(
        provider="telegram",
        account="demo",
        raw_id=f"tg:demo:{update['update_id']}",
        source="test",
        workspace_id="ws",
        received_at=datetime.now(UTC),
    )
    # A copy RAW stores again, as it does a provider's retry after its duplicate window.
    headers[H_MSG_ID] += f"/copy{copy}" if copy else ""
    await bus.publish_raw(subject, json.dumps(update).encode(), headers)


async def _delivered(bus: Bus, count: int) -> list[Msg]:
    """The RAW messages, as the normalizer's consumer delivers them."""
    sub = await bus.js.pull_subscribe("raw.>", durable="claims-test", stream="RAW")
    return await sub.fetch(count, timeout=5)


def _event_id(msg: Msg) -> str:
    envelope, events = normalize_raw(msg.subject, dict(msg.headers or {}), msg.data)
    natural = events[0].deterministic_id()
    assert natural is not None
    return pii.event_id(envelope.workspace_id, natural)


async def _normalize(bus: Bus, dedup: KeyValue, msg: Msg) -> None:
    await handle_raw(bus, dedup, msg, pii.PiiKeys(await bus.kv(pii.BUCKET)))


async def test_the_normalizer_publishes_for_the_owner_and_skips_a_later_copy(
    bus: Bus, nats_url: str
) -> None:
    dedup = await bus.kv("dedup")
    await _store_raw(bus, text_update(7, "first"))
    await _store_raw(bus, text_update(7, "first"), copy=1)
    first, retry = await _delivered(bus, 2)
    assert first.metadata.sequence.stream != retry.metadata.sequence.stream
    await _normalize(bus, dedup, first)
    await _normalize(bus, dedup, first)  # redelivered: the CONV window drops the repeat
    await _normalize(bus, dedup, retry)  # claimed by the first copy: skipped
    assert await already_published(dedup, _event_id(first))
    assert by_type(await stream_messages(nats_url, "CONV")) == {"conv.message_received": 1}


async def test_a_failed_publish_leaves_the_event_unclaimed(bus: Bus) -> None:
    dedup = await bus.kv("dedup")
    # RAW takes the body, but the event, its text sealed (base64), is over what CONV or the
    # server takes, whichever is smaller: its publish fails
    conv = (await bus.js.stream_info("CONV")).config.max_msg_size or bus.max_payload
    text = "x" * int(min(bus.max_payload, conv) * 0.85)
    await _store_raw(bus, text_update(8, text))
    (msg,) = await _delivered(bus, 1)
    with pytest.raises((PayloadTooLargeError, BadRequestError)):
        await _normalize(bus, dedup, msg)
    assert not await already_published(dedup, _event_id(msg))
