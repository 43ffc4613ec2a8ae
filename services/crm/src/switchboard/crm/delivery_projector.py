"""The delivery projection (stream ``DELIVERY``): the state of every sent message, by rank,
so receipts that arrive out of order still end at the right status."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from switchboard.crm import keys
from switchboard.crm.decoding import decode_event
from switchboard.events.catalog.delivery import (
    DeliveryFailed,
    DeliveryQueued,
    DeliveryReceipt,
    DeliveryRetrying,
    DeliverySent,
)
from switchboard.runtime import pii
from switchboard.runtime.db import Conn

PROJECTION = "deliveries"
STREAM = "DELIVERY"
SUBJECTS = ("delivery.>",)
RANK = {"queued": 0, "retrying": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}


RECEIPT_SQL = """
INSERT INTO receipts VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (workspace_id, channel, account, provider_message_id, recipient)
DO UPDATE SET status = EXCLUDED.status, rank = EXCLUDED.rank,
    reason = EXCLUDED.reason, at = EXCLUDED.at
WHERE (EXCLUDED.rank, EXCLUDED.at) > (receipts.rank, receipts.at)"""

DELIVERY_SQL = """
INSERT INTO deliveries VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (workspace_id, message_id) DO UPDATE SET
    status = CASE WHEN EXCLUDED.rank >= deliveries.rank
                  THEN EXCLUDED.status ELSE deliveries.status END,
    reason = CASE WHEN EXCLUDED.rank >= deliveries.rank
                  THEN EXCLUDED.reason ELSE deliveries.reason END,
    at = CASE WHEN EXCLUDED.rank >= deliveries.rank
              THEN EXCLUDED.at ELSE deliveries.at END,
    rank = GREATEST(EXCLUDED.rank, deliveries.rank),
    provider_message_id = COALESCE(deliveries.provider_message_id,
                                   EXCLUDED.provider_message_id)"""


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    """Each table's upserts in stream order, pipelined (one round trip per table): the two
    tables never read each other, so only the order within each matters. Recipients who
    were erased are written as their marker, as ``crm_projector`` rewrites those already
    here."""
    await pii.open_messages(msgs)
    receipts: list[tuple[object, ...]] = []
    deliveries: list[tuple[object, ...]] = []
    for msg in msgs:
        d = decode_event(msg)
        ev, ws = d.model, d.workspace_id
        if isinstance(ev, DeliveryReceipt):
            receipts.append(
                (
                    ws,
                    ev.channel.value,
                    ev.account,
                    ev.provider_message_id,
                    ev.recipient,
                    ev.status,
                    RANK[ev.status],
                    ev.reason,
                    ev.at,
                )
            )
            continue
        if not isinstance(ev, DeliveryQueued | DeliveryRetrying | DeliverySent | DeliveryFailed):
            continue
        status, reason, provider_id = None, None, None
        if isinstance(ev, DeliveryQueued):
            status = "queued"
        elif isinstance(ev, DeliveryRetrying):
            status, reason = "retrying", ev.reason
        elif isinstance(ev, DeliverySent):
            status, provider_id = "sent", ev.provider_message_id
        elif isinstance(ev, DeliveryFailed):
            status, reason = "failed", ev.reason
        assert status is not None
        deliveries.append(
            (
                ws,
                ev.message_id,
                ev.channel.value,
                ev.account,
                ev.recipient,
                status,
                RANK[status],
                reason,
                provider_id,
                ev.at,
            )
        )
    receipts, deliveries = await _blank_erased(conn, receipts, deliveries)
    if receipts:
        await conn.executemany(RECEIPT_SQL, receipts)
    if deliveries:
        await conn.executemany(DELIVERY_SQL, deliveries)


Row = tuple[object, ...]


async def _blank_erased(
    conn: Conn, receipts: list[Row], deliveries: list[Row]
) -> tuple[list[Row], list[Row]]:
    """The rows with each erased recipient replaced by its marker (one query per batch).
    ``(workspace, channel, recipient)`` sit at (0, 1, 4) of a receipt and (0, 2, 4) of a
    delivery."""
    hashes = {
        row: keys.erased_identity_hash(str(row[0]), str(row[ch]), str(row[4]))
        for rows, ch in ((receipts, 1), (deliveries, 2))
        for row in rows
    }
    if not hashes:
        return receipts, deliveries
    await keys.note_shredded(conn, {h for row, h in hashes.items() if pii.is_erased(str(row[4]))})
    erased = {
        r["key_hash"]
        for r in await conn.fetch(
            "SELECT key_hash FROM erased_identities WHERE key_hash = ANY($1::text[])",
            list(set(hashes.values())),
        )
    }
    if not erased:
        return receipts, deliveries

    def blank(row: Row) -> Row:
        h = hashes[row]
        return (*row[:4], keys.erased_marker(h), *row[5:]) if h in erased else row

    return [blank(r) for r in receipts], [blank(r) for r in deliveries]
