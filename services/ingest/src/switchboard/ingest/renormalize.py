"""``switchboard ingest renormalize --since ...``: normalize again, with today's normalizers,
the provider payloads ``RAW`` holds, and replace in ``CONV`` what the old normalizers made.

It first waits for the live normalizer to have handled everything ``RAW`` holds, then, for
every RAW message from ``--since`` on, in stream order:

- the events it yields now are compared with the events ``CONV`` holds for it (those whose
  ``causation-id`` is the RAW id): equal ids and equal content -> nothing happens, so a
  second run, or a run over traffic the normalizers always understood, changes nothing;
- otherwise the old events are deleted from ``CONV`` and the new ones published (their
  ``ce-id`` as a fresh run would give them, so every consumer keys them the same; their
  ``Nats-Msg-Id`` carries a ``#renormalized`` suffix, because JetStream remembers ids in
  its duplicate window even after a deletion). Payloads that went to the DLQ before (e.g.
  a WhatsApp message without ``from``) get their events now.

The replaced events go to the end of ``CONV``. Projections that already applied the old
events still show them: rebuild them afterwards (``switchboard crm rebuild``, analytics
likewise), which gives what a fresh run over the same traffic gives. CRM aggregates the
old events created (e.g. a contact for a placeholder account) stay in ``CRM``, which is
kept forever: merge or erase them there.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from switchboard.events import Event, decode_message
from switchboard.events.envelope import H_CAUSATION
from switchboard.ingest.normalizer import SPEC, normalize_raw
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError
from switchboard.runtime.delivery.pull import BatchPull
from switchboard.runtime.published import mark_published

RENORMALIZED = "#renormalized"
NORMALIZER = SPEC.durable


@dataclass
class Report:
    """What a run did, per RAW message."""

    read: int = 0
    unchanged: int = 0
    replaced: int = 0
    unreadable: int = 0
    deleted_events: int = 0
    published_events: int = 0
    changes: list[str] = field(default_factory=list)  # RAW ids that were rewritten


async def read_stream(
    bus: Bus, stream: str, since: datetime, upto: int | None = None
) -> AsyncIterator[Msg]:
    """The messages of ``stream`` stored at or after ``since``, up to sequence ``upto`` (by
    default what it held when asked: what is published meanwhile is not this run's)."""
    info = await bus.js.stream_info(stream)
    last = info.state.last_seq if upto is None else min(upto, info.state.last_seq)
    if not info.state.messages or last < info.state.first_seq:
        return
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since,
        filter_subject=info.config.subjects[0],  # type: ignore[index]
        inactive_threshold=60.0,
    )
    pull = await BatchPull(bus, stream, config).start()
    try:
        while True:
            try:
                msgs = await pull.fetch(256, timeout=2)
            except TimeoutError:
                return
            for msg in msgs:
                if msg.metadata.sequence.stream > last:
                    return
                yield msg
                if msg.metadata.sequence.stream == last:
                    return
    finally:
        await pull.close()


async def _event_at(bus: Bus, seq: int, keys: pii.PiiKeys) -> tuple[Event, bool]:
    """The event at ``seq``, opened, and whether any of its fields was erased."""
    stored = await bus.js.get_msg("CONV", seq)
    data = await pii.open_data(stored.data, keys)
    model = decode_message(stored.subject or "", dict(stored.headers or {}), data).model
    if not isinstance(model, Event):  # CONV holds events only
        raise TypeError(f"CONV message {seq} is a {model.name}, not an event")
    return model, b'"[erased]"' in data or pii.ERASED_ID.encode() in data


def same(old: list[Event], new: list[Event]) -> bool:
    """The events a payload yields now are the events it yielded then (ids and content)."""
    ids_old = [e.deterministic_id() for e in old]
    return ids_old == [e.deterministic_id() for e in new] and old == new


async def normalizer_caught_up(bus: Bus, raw_seq: int, timeout: float = 60.0) -> None:
    """Wait until the live normalizer has handled RAW up to ``raw_seq``, so that ``CONV``
    holds every event of those payloads (else one would look new and be published twice).
    No normalizer consumer (ingest never ran): nothing to wait for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = await bus.js.consumer_info("RAW", NORMALIZER)
        except NotFoundError:
            return
        if info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= raw_seq:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the ingest normalizer has not reached RAW {raw_seq} in {timeout:.0f} s; "
                "run renormalize when it has caught up"
            )
        await asyncio.sleep(0.25)  # an operator command polling a consumer, not a test


async def renormalize(bus: Bus, dedup: KeyValue, since: datetime) -> Report:
    """Normalize again every RAW message from ``since`` (see the module docstring)."""
    report = Report()
    # The bus ids of this run's events are its own: a second run inside the stream's
    # duplicate window (a fix of the fix) deletes the first run's events, and its new ones,
    # under the same ids, were dropped as duplicates of them.
    run = uuid.uuid4().hex[:12]
    keys = pii.PiiKeys(await bus.kv(pii.BUCKET))
    raw_last = (await bus.js.stream_info("RAW")).state.last_seq
    await normalizer_caught_up(bus, raw_last)
    # Only the positions are kept (a week of traffic would not fit as messages); the few
    # events of each payload are fetched when it is compared.
    produced: dict[str, list[int]] = defaultdict(list)
    async for msg in read_stream(bus, "CONV", since):
        cause = (msg.headers or {}).get(H_CAUSATION)
        if cause:
            produced[cause].append(msg.metadata.sequence.stream)
    async for raw in read_stream(bus, "RAW", since, upto=raw_last):
        report.read += 1
        try:
            envelope, new = normalize_raw(raw.subject, dict(raw.headers or {}), raw.data)
        except PermanentError:
            report.unreadable += 1  # still unreadable: it stays where it is (the DLQ)
            continue
        seqs = produced.get(envelope.id, [])
        found = [await _event_at(bus, seq, keys) for seq in seqs]
        old = [event for event, _ in found]
        if same(old, new) or any(erased for _, erased in found):
            # an erased person's events stay erased: RAW must not bring them back
            report.unchanged += 1
            continue
        for seq in seqs:
            if await bus.delete_msg("CONV", seq):
                report.deleted_events += 1
        for event in new:
            natural = event.deterministic_id()
            event_id = pii.event_id(envelope.workspace_id, natural) if natural else ""
            await pii.publish_sealed(
                bus,
                event,
                cause=envelope,
                keys=keys,
                headers={"Nats-Msg-Id": f"{event_id}{RENORMALIZED}:{run}"},
            )
            if event_id:
                await mark_published(dedup, event_id)
            report.published_events += 1
        report.replaced += 1
        report.changes.append(envelope.id)
    return report
