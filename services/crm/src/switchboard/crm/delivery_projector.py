"""The delivery projection (stream ``DELIVERY``): the state of every sent message, by rank,
so receipts that arrive out of order still end at the right status.

Built for replay speed: ``prepare`` (run while the previous batch is in Postgres) decodes
and computes each row's erasure hash; ``apply_prepared`` folds each key's rows into the one
row that applying them one by one would leave (:func:`fold_receipts`, :func:`fold_deliveries`)
and writes each table with one set-based upsert (pipelined one-row upserts took 0.8-1.0 s of
a 4.8 s rebuild of 100k events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
from switchboard.runtime.db import Conn, RowSet

PROJECTION = "deliveries"
STREAM = "DELIVERY"
SUBJECTS = ("delivery.>",)
STATUS: dict[type, str] = {
    DeliveryQueued: "queued",
    DeliveryRetrying: "retrying",
    DeliverySent: "sent",
    DeliveryFailed: "failed",
}
RANK = {"queued": 0, "retrying": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}

# One row per key (``fold_receipts``): a later receipt replaces the stored one only when it
# ranks higher, or as high and later.
RECEIPT_ROWS = RowSet(
    "staged_receipts",
    (
        ("workspace_id", "text"), ("channel", "text"), ("account", "text"),
        ("provider_message_id", "text"), ("recipient", "text"), ("status", "text"),
        ("rank", "int"), ("reason", "text"), ("at", "timestamptz"),
    ),
)  # fmt: skip
RECEIPT_SQL = """
WITH u AS ({rows})
INSERT INTO receipts SELECT * FROM u
ON CONFLICT (workspace_id, channel, account, provider_message_id, recipient)
DO UPDATE SET status = EXCLUDED.status, rank = EXCLUDED.rank,
    reason = EXCLUDED.reason, at = EXCLUDED.at
WHERE (EXCLUDED.rank, EXCLUDED.at) > (receipts.rank, receipts.at)"""

# One row per key (``fold_deliveries``): the status of the highest rank (the later on a
# tie), and the first provider message id known.
DELIVERY_ROWS = RowSet(
    "staged_deliveries",
    (
        ("workspace_id", "text"), ("message_id", "text"), ("channel", "text"),
        ("account", "text"), ("recipient", "text"), ("status", "text"), ("rank", "int"),
        ("reason", "text"), ("provider_message_id", "text"), ("at", "timestamptz"),
    ),
)  # fmt: skip
DELIVERY_SQL = """
WITH u AS ({rows})
INSERT INTO deliveries SELECT * FROM u
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

Row = tuple[Any, ...]  # a table row, in its column order


@dataclass(slots=True)
class Prepared:
    """A batch's rows in stream order, with the erasure hash of each row's recipient."""

    receipts: list[Row]
    deliveries: list[Row]
    hashes: dict[Row, str]


async def prepare(msgs: Sequence[Msg]) -> Prepared:
    """Open and decode a batch into its rows (CPU work, overlapped with Postgres)."""
    await pii.open_messages(msgs)
    receipts: list[Row] = []
    deliveries: list[Row] = []
    for msg in msgs:
        d = decode_event(msg)
        ev: Any = d.model  # dispatched on its exact type below
        ws = d.workspace_id
        kind = type(ev)  # exact types: pydantic's ABCMeta isinstance check costs (py-spy)
        if kind is DeliveryReceipt:
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
        status = STATUS.get(kind)
        if status is None:
            continue
        reason = ev.reason if kind is DeliveryRetrying or kind is DeliveryFailed else None
        provider_id = ev.provider_message_id if kind is DeliverySent else None
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
    # ``(workspace, channel, recipient)`` sit at (0, 1, 4) of a receipt, (0, 2, 4) of a delivery
    hashes = {
        row: keys.erased_identity_hash(str(row[0]), str(row[ch]), str(row[4]))
        for rows, ch in ((receipts, 1), (deliveries, 2))
        for row in rows
    }
    return Prepared(receipts, deliveries, hashes)


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    """Decode and apply a batch (for callers without a separate prepare step)."""
    await apply_prepared(conn, await prepare(msgs))


async def apply_prepared(conn: Conn, batch: Prepared) -> None:
    """Each table's rows folded per key and upserted at once: the two tables never read each
    other, and the fold is what applying the rows one by one in stream order leaves.
    Recipients who were erased are written as their marker, as ``crm_projector`` rewrites
    those already here."""
    await keys.erasure_barrier(conn)
    receipts, deliveries = await _blank_erased(conn, batch)
    for rows, sql, rowset in (
        (fold_receipts(receipts), RECEIPT_SQL, RECEIPT_ROWS),
        (fold_deliveries(deliveries), DELIVERY_SQL, DELIVERY_ROWS),
    ):
        if rows:
            await rowset.execute(conn, sql, rows)


def fold_receipts(rows: Sequence[Row]) -> list[Row]:
    """One row per receipt key, as ``RECEIPT_SQL`` applied row by row leaves it: the first
    of the highest ``(rank, at)``."""
    best: dict[Row, Row] = {}
    for row in rows:
        key = row[:5]
        kept = best.get(key)
        if kept is None or (row[6], row[8]) > (kept[6], kept[8]):
            best[key] = row
    return list(best.values())


def fold_deliveries(rows: Sequence[Row]) -> list[Row]:
    """One row per message, as ``DELIVERY_SQL`` applied row by row leaves it: status,
    reason and time of the highest rank (the later on a tie), the first provider id."""
    out: dict[Row, Row] = {}
    for row in rows:
        key = row[:2]
        cur = out.get(key)
        if cur is None:
            out[key] = row
            continue
        take = row[6] >= cur[6]
        out[key] = (
            *cur[:5],
            row[5] if take else cur[5],
            max(row[6], cur[6]),
            row[7] if take else cur[7],
            cur[8] if cur[8] is not None else row[8],
            row[9] if take else cur[9],
        )
    return list(out.values())


async def _blank_erased(conn: Conn, batch: Prepared) -> tuple[list[Row], list[Row]]:
    """The rows with each erased recipient replaced by its marker (one query per batch)."""
    receipts, deliveries, hashes = batch.receipts, batch.deliveries, batch.hashes
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
