"""Erasure of attempt records: when the CRM erases a contact (``crm.contact_erased`` with
the keyed hashes of its identities), every record in the ``sends`` bucket sent to one of
them loses the recipient (replaced by the same marker the CRM shows) and the provider's
reasons, which can quote the recipient. Counts, statuses and times stay.

A send that has not left (scheduled for later, queued, retrying) never will: its record
fails with ``error_code`` ``erased``, its command is deleted from the OUTBOUND stream (where
it held the recipient and the text in the clear until its time) and ``delivery.failed`` says
so, naming the marker. Before, a send scheduled for a person erased meanwhile still went
out at its time. A campaign's command stays for the campaign to count, and is acked unsent
when it comes (``Sender``). The campaigns' stored recipient batches of the workspace name
the person by the marker from then on: the fan-out sends to the marker, which the sender
fails as erased without calling the provider, so the campaign still counts every position.

A send still in the lanes, its command not yet taken by any sender, has no record to scrub.
The erasure leaves a tombstone per identity (``erased.<token>`` in the same bucket): every
command of ``OUTBOUND`` up to the stream's last sequence at that moment, to that identity,
is the erased person's. Each sender follows the tombstones (:class:`ErasedSends`) and
fails such a command as erased, naming the marker, before anything names the person.
Stream sequences, not times, draw the line: a send to the same chat published after the
erasure is someone writing again, and goes. Before, a backlog's send to the person went
out after the erasure.

Records live 8 days (the bucket's TTL), so a scan of the bucket per erasure is bounded; an
erasure is rare. Each record is rewritten with compare-and-set, so a send updating its
record at the same moment is never overwritten: the scan retries that record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import orjson
from nats.js.kv import KeyValue
from pydantic import BaseModel

from switchboard.events import Envelope
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import DeliveryFailed
from switchboard.events.streams import OUTBOUND
from switchboard.outbound.attempts import Attempt, Step
from switchboard.outbound.campaigns.pool import members
from switchboard.outbound.campaigns.state import STATE_KEYS, CampaignState, CampaignStore
from switchboard.outbound.kvmodels import scoped
from switchboard.outbound.outcomes import ERASED, ERASED_REASON, failure_of
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.kv import current, entries_of, replace
from switchboard.runtime.kvwatch import Mirror

RECORDS = "send.>"  # the attempt records (the bucket also holds campaigns and keys)
TOMBSTONES = "erased.>"


def identity_hash(workspace: str, channel: str, recipient: str) -> str:
    """The keyed hash the CRM puts in ``ContactErased.identity_hashes`` for an identity."""
    return pii.identity_hash(workspace, channel, recipient)


MARK = pii.ERASED_MARK
_MARK_B = MARK.encode()


def marker(hash_: str) -> str:
    """What an erased recipient reads as (as in the CRM's tables: ``pii.erased_marker``)."""
    return pii.erased_marker(hash_)


def scrub_rows(
    rows: list[list[Any]], workspace: str, channels: Sequence[str], hashes: frozenset[str]
) -> list[list[Any]] | None:
    """A campaign batch's rows (``[recipient, account]``) with each erased recipient (an
    identity of ``hashes`` on one of the campaign's ``channels``) replaced by its marker;
    None when there is none. Pure: tested without NATS."""
    changed = False
    out: list[list[Any]] = []
    for recipient, account in rows:
        if not recipient.startswith(MARK):
            for channel in channels:
                h = identity_hash(workspace, channel, recipient)
                if h in hashes:
                    recipient, changed = marker(h), True
                    break
        out.append([recipient, account])
    return out if changed else None


def scrub(record: Attempt, workspace: str, hashes: frozenset[str]) -> Attempt | None:
    """The record without the person when its recipient is one of ``hashes`` (in
    ``workspace``), failed as erased if it had not left; None when it is someone else's or
    already scrubbed. Pure: tested without NATS."""
    if record.workspace_id != workspace or record.recipient.startswith(MARK):
        return None
    h = identity_hash(workspace, record.channel, record.recipient)
    if h not in hashes:
        return None
    fixed = blanked(record, marker(h))
    if record.done:
        return fixed
    return fixed.step(
        "failed", reason=f"{ERASED}: {ERASED_REASON}", error_code=ERASED, permanent=True
    )


def blanked(record: Attempt, mark: str) -> Attempt:
    """``record`` naming the person by ``mark``, without the provider's reasons (they can
    quote the recipient)."""
    history = [Step(status=s.status, at=s.at, attempt=s.attempt) for s in record.history]
    return record.model_copy(update={"recipient": mark, "reason": None, "history": history})


class Tombstone(BaseModel):
    """An erasure's line through the lanes: the commands of ``OUTBOUND`` up to sequence
    ``before`` to the identity are the erased person's. ``cause`` is the erasure event's id,
    so a redelivery of it does not move the line over sends made since."""

    before: int
    cause: str = ""


def tombstone_key(workspace: str, hash_: str) -> str:
    return "erased." + scoped(workspace, hash_)


def erased_as(
    tombstones: Mapping[str, Tombstone], workspace: str, channel: str, recipient: str, seq: int
) -> str | None:
    """The marker a command (stream sequence ``seq``) to ``recipient`` names its erased
    person by; None when no erasure drew its line past it. Pure: tested without NATS."""
    if not tombstones or recipient.startswith(MARK):  # no keyed hash while none exist
        return None
    h = identity_hash(workspace, channel, recipient)
    found = tombstones.get(tombstone_key(workspace, h))
    return marker(h) if found is not None and seq <= found.before else None


class ErasedSends(Mirror[Tombstone]):
    """Every sender's copy of the tombstones, so a command is checked without a round trip."""

    def __init__(self, kv: KeyValue) -> None:
        super().__init__(lambda: kv, _tombstone, "erasure tombstone", keys=TOMBSTONES)

    def marker_for(self, workspace: str, channel: str, recipient: str, seq: int) -> str | None:
        return erased_as(self.entries, workspace, channel, recipient, seq)

    def prune(self, first_seq: int) -> None:
        """Forget the lines every command behind them has left the stream by (the bucket's
        TTL drops the tombstones without a word to the watch)."""
        for key in [k for k, t in self.entries.items() if t.before < first_seq]:
            del self.entries[key]


def _tombstone(_key: str, value: bytes) -> Tombstone:
    return Tombstone.model_validate_json(value)


def withdrawn(record: Attempt, workspace: str, markers: frozenset[str]) -> bool:
    """Whether ``record`` is a send this erasure (its hashes' ``markers``) stopped: scrubbed
    now, or on a delivery of the erasure that ended before its command was withdrawn."""
    return (
        record.workspace_id == workspace
        and record.error_code == ERASED
        and record.recipient in markers
    )


async def forget(
    kv: KeyValue, workspace: str, hashes: frozenset[str], bus: Bus, cause: Envelope | None = None
) -> int:
    """Scrub every record of ``workspace`` sent to one of ``hashes`` and withdraw the sends
    among them that had not left; returns how many records were scrubbed."""
    if not hashes:
        return 0
    await _bury(kv, bus, workspace, hashes, cause)
    done = 0
    markers = frozenset(marker(h) for h in hashes)
    for entry in await entries_of(kv, RECORDS):  # every record (a watch could end early)
        record = await _scrub_one(kv, entry.key, entry.value, entry.revision, workspace, hashes)
        if record is not None:
            done += 1
        elif _MARK_B in entry.value:  # scrubbed before: maybe by this erasure, interrupted
            record = Attempt.model_validate(orjson.loads(entry.value))
        if record is not None and withdrawn(record, workspace, markers):
            await _withdraw(bus, record, cause)
    await _scrub_campaigns(kv, workspace, hashes)
    return done


async def _bury(
    kv: KeyValue, bus: Bus, workspace: str, hashes: frozenset[str], cause: Envelope | None
) -> None:
    """A tombstone per identity, before the records are scanned: every command now in
    ``OUTBOUND`` is behind its line (a sender that takes one meanwhile makes a record the
    scan may miss, and checks the line first)."""
    before = (await bus.js.stream_info(OUTBOUND.name)).state.last_seq
    cause_id = "" if cause is None else cause.id
    for h in hashes:
        key = tombstone_key(workspace, h)
        entry = await current(kv, key)
        if entry is not None and cause_id and _tombstone(key, entry.value).cause == cause_id:
            continue  # this erasure delivered again: its line stays where it was drawn
        await kv.put(key, Tombstone(before=before, cause=cause_id).model_dump_json().encode())


async def _scrub_campaigns(kv: KeyValue, workspace: str, hashes: frozenset[str]) -> None:
    """Name the person by the marker in every stored recipient batch of the workspace's
    campaigns (running, waiting for their start or done: the batches are kept as long)."""
    store = CampaignStore(kv)
    every_channel = tuple(c.value for c in Channel)
    for entry in await entries_of(kv, STATE_KEYS):
        state = CampaignState.model_validate_json(entry.value)
        if state.workspace_id != workspace:
            continue
        start = state.start()  # None while the batches wait for their start
        channels = (
            every_channel
            if start is None
            else tuple(dict.fromkeys(m.channel.value for m in members(start)))
        )
        scrubbed = partial(scrub_rows, workspace=workspace, channels=channels, hashes=hashes)
        for batch in state.batches:
            await store.rewrite_batch(state.key, batch, scrubbed)


async def _withdraw(bus: Bus, record: Attempt, cause: Envelope | None) -> None:
    """Delete a stopped send's command from the stream and announce its failure (the
    event's id is fixed by the message id: a second announcement is dropped)."""
    if record.owner is not None and record.campaign_id is None:
        await bus.delete_msg("OUTBOUND", record.owner)  # unless handled or deleted before
    event = DeliveryFailed.model_validate(
        {
            "message_id": record.message_id,
            "channel": record.channel,
            "account": record.account,
            "recipient": record.recipient,  # the marker: no one to seal
            "campaign_id": record.campaign_id,
            **failure_of(record),
        }
    )
    await bus.publish(event, cause=cause, workspace_id=record.workspace_id)


async def _scrub_one(
    kv: KeyValue, key: str, value: bytes, revision: int | None, workspace: str,
    hashes: frozenset[str],
) -> Attempt | None:  # fmt: skip
    """The record as scrubbed now; None when there was nothing to scrub."""
    while True:
        fixed = scrub(Attempt.model_validate(orjson.loads(value)), workspace, hashes)
        if fixed is None or revision is None:
            return None
        fixed_value = fixed.model_dump_json(exclude_none=True).encode()
        if await replace(kv, key, fixed_value, revision) is not None:
            return fixed
        entry = await current(kv, key)  # changed meanwhile: scrub what it holds now
        if entry is None:  # deleted meanwhile
            return None
        value, revision = entry.value, entry.revision
