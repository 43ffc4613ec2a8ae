"""Publishing ``conv.*`` events exactly once, whichever path read the message.

Two lines of dedup, as ingest's normalizer does: JetStream drops a republished id inside the
stream's duplicate window (a page re-read after a crash); beyond it (a live message backfilled
hours later) the ``dedup`` bucket remembers every id published. The mark is written after the
publish is acknowledged, so a crash in between republishes and the window absorbs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nats.js.kv import KeyValue

from switchboard.events import Event, encode
from switchboard.events.envelope import H_SUBJECT
from switchboard.mtproto.metrics import DUPLICATES, MESSAGES
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.published import already_published, mark_published


class ConvPublisher:
    """Publishes conv events with their deterministic ids, skipping ones already published."""

    def __init__(self, bus: Bus, dedup: KeyValue, keys: pii.PiiKeys | None = None) -> None:
        self.bus = bus
        self.dedup = dedup
        self.keys = keys  # None: the service's (pii.start)

    async def publish(self, events: Sequence[Event], *, workspace_id: str, source: str) -> int:
        """Publish a page of events concurrently (each awaited to its ack); returns how many
        were new."""
        if not events:
            return 0
        # Sealed as ingest seals (pii.publish_sealed): the dialogs of a user account are
        # personal, and an event id naming a chat names its person.
        ids = [
            pii.event_id(workspace_id, i) if i else ""
            for i in (e.deterministic_id() for e in events)
        ]
        seen = await asyncio.gather(*(already_published(self.dedup, i) for i in ids))
        fresh = [(e, i) for e, i, s in zip(events, ids, seen, strict=True) if not s]
        DUPLICATES.inc(len(events) - len(fresh))
        if not fresh:
            return 0
        # Encoded here with the id already computed, and published without a span per
        # message: these events have no incoming trace, and a page is one unit of work.
        sealer = self.keys or pii.installed()
        encoded = [
            encode(
                await pii.seal_model(sealer, workspace_id, e),
                source=self.bus.source,
                id=i or None,
                workspace_id=workspace_id,
            )
            for e, i in fresh
        ]
        for enc, (e, _) in zip(encoded, fresh, strict=True):
            if subject := e.ce_subject():
                enc.headers[H_SUBJECT] = pii.sealed_subject(workspace_id, subject)
        await asyncio.gather(*(self.bus.publish_raw(m.subject, m.body, m.headers) for m in encoded))
        await asyncio.gather(*(mark_published(self.dedup, i) for _, i in fresh))
        MESSAGES.labels(source).inc(len(fresh))
        return len(fresh)
