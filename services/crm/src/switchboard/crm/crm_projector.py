"""The CRM projection (stream ``CRM``): contacts, identities, notes, leads and stage
history, exactly as the aggregate events say; erasure blanks the person everywhere."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from nats.aio.msg import Msg

from switchboard.crm import keys
from switchboard.crm.projector import ERASED_CONTENT
from switchboard.events import decode_message
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactErased,
    ContactIdentityLinked,
    ContactMerged,
    ContactSplit,
    ContactUpdated,
    Identity,
    LeadAssigned,
    LeadCreated,
    LeadStageChanged,
)
from switchboard.runtime import pii
from switchboard.runtime.db import Conn

PROJECTION = "crm"
STREAM = "CRM"
SUBJECTS = ("crm.>",)


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    await pii.open_messages(msgs)
    for msg in msgs:
        d = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
        seq, at, ws, ev = (
            msg.metadata.sequence.stream,
            d.envelope.time,
            d.envelope.workspace_id,
            d.model,
        )
        if isinstance(ev, ContactCreated):
            await conn.execute(
                """INSERT INTO contacts (id, workspace_id, display_name, phone, attributes,
                       source_channel, created_at, updated_at, version)
                   VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $7, $8)
                   ON CONFLICT (id) DO NOTHING""",
                ev.contact_id,
                ws,
                ev.display_name,
                ev.phone,
                json.dumps(ev.attributes, sort_keys=True),
                ev.source_channel.value,
                at,
                seq,
            )
            for identity in ev.identities:
                await _identity(conn, ws, ev.contact_id, identity)
        elif isinstance(ev, ContactIdentityLinked):
            await _identity(conn, ws, ev.contact_id, ev.identity)
            await _touch(conn, ev.contact_id, at, seq)
        elif isinstance(ev, ContactUpdated):
            await _updated(conn, ev, at, seq)
        elif isinstance(ev, ContactMerged):
            await conn.execute(
                """UPDATE contacts SET merged_into = $1, updated_at = $2
                   WHERE id = $3 OR merged_into = $3""",
                ev.contact_id,
                at,
                ev.merged_contact_id,
            )
            await conn.execute(
                "UPDATE contact_identities SET contact_id = $1 WHERE contact_id = $2",
                ev.contact_id,
                ev.merged_contact_id,
            )
            await conn.execute(
                "UPDATE leads SET contact_id = $1 WHERE contact_id = $2",
                ev.contact_id,
                ev.merged_contact_id,
            )
            await _touch(conn, ev.contact_id, at, seq)
        elif isinstance(ev, ContactSplit):
            await conn.execute(
                """INSERT INTO contacts (id, workspace_id, display_name, phone, source_channel,
                       created_at, updated_at, version)
                   VALUES ($1, $2, $3, $4, $5, $6, $6, $7) ON CONFLICT (id) DO NOTHING""",
                ev.new_contact_id,
                ws,
                ev.identity.username,
                ev.identity.phone,
                ev.identity.channel.value,
                at,
                seq,
            )
            await conn.execute(
                """UPDATE contact_identities SET contact_id = $1
                   WHERE workspace_id = $2 AND channel = $3 AND external_id = $4""",
                ev.new_contact_id,
                ws,
                ev.identity.channel.value,
                ev.identity.external_id,
            )
            await _touch(conn, ev.contact_id, at, seq)
        elif isinstance(ev, ContactErased):
            await _erased(conn, ws, ev.contact_id, at, seq)
        elif isinstance(ev, LeadCreated):
            await conn.execute(
                """INSERT INTO leads (id, workspace_id, contact_id, stage, source_channel,
                       campaign_id, value, currency, assignee, created_at, updated_at, version,
                       referral_source, referral_campaign, click_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14)
                   ON CONFLICT (id) DO NOTHING""",
                ev.lead_id,
                ws,
                ev.contact_id,
                ev.stage,
                ev.source_channel.value if ev.source_channel else None,
                ev.campaign_id,
                ev.value,
                ev.currency,
                ev.assignee,
                at,
                seq,
                ev.referral.source if ev.referral else None,
                ev.referral.campaign if ev.referral else None,
                ev.referral.click_id if ev.referral else None,
            )
            await _history(conn, ev.lead_id, seq, None, ev.stage, None, None, at)
        elif isinstance(ev, LeadStageChanged):
            await conn.execute(
                """UPDATE leads SET stage = $2, value = COALESCE($3, value), updated_at = $4,
                       version = $5 WHERE id = $1""",
                ev.lead_id,
                ev.to_stage,
                ev.value,
                at,
                seq,
            )
            await _history(conn, ev.lead_id, seq, ev.from_stage, ev.to_stage, ev.by, ev.reason, at)
        elif isinstance(ev, LeadAssigned):
            await conn.execute(
                "UPDATE leads SET assignee = $2, updated_at = $3, version = $4 WHERE id = $1",
                ev.lead_id,
                ev.assignee,
                at,
                seq,
            )


async def _identity(conn: Conn, ws: str, contact_id: str, i: Identity) -> None:
    await conn.execute(
        """INSERT INTO contact_identities (workspace_id, channel, external_id, contact_id,
               account, username, phone)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (workspace_id, channel, external_id) DO UPDATE SET
               contact_id = EXCLUDED.contact_id,
               username = COALESCE(EXCLUDED.username, contact_identities.username),
               phone = COALESCE(EXCLUDED.phone, contact_identities.phone)""",
        ws,
        i.channel.value,
        i.external_id,
        contact_id,
        i.account,
        i.username,
        i.phone,
    )


async def _touch(conn: Conn, contact_id: str, at: datetime, seq: int) -> None:
    await conn.execute(
        "UPDATE contacts SET updated_at = $2, version = $3 WHERE id = $1", contact_id, at, seq
    )


async def _updated(conn: Conn, ev: ContactUpdated, at: datetime, seq: int) -> None:
    await conn.execute(
        """UPDATE contacts SET
               display_name = COALESCE($2, display_name),
               phone = COALESCE($3, phone),
               attributes = attributes || $4::jsonb,
               tags = ARRAY(SELECT DISTINCT t FROM unnest(array_cat(tags, $5::text[])) t
                            WHERE t <> ALL($6::text[]) ORDER BY t),
               updated_at = $7, version = $8
           WHERE id = $1 AND NOT erased""",
        ev.contact_id,
        ev.display_name,
        ev.phone,
        json.dumps(ev.attributes, sort_keys=True),
        list(ev.tags_added),
        list(ev.tags_removed),
        at,
        seq,
    )
    if ev.note:
        await conn.execute(
            "INSERT INTO contact_notes VALUES ($1, $2, $3, NULL, $4) ON CONFLICT DO NOTHING",
            ev.contact_id,
            seq,
            ev.note,
            at,
        )


async def _history(
    conn: Conn,
    lead_id: str,
    seq: int,
    src: str | None,
    dst: str,
    by: str | None,
    reason: str | None,
    at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO lead_stage_history VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT DO NOTHING""",
        lead_id,
        seq,
        src,
        dst,
        by,
        reason,
        at,
    )


async def _by_hash(conn: Conn, ws: str, channel: str, key_hash: str) -> list[str]:
    """The ids of ``channel`` in chats, senders and recipients whose keyed hash is
    ``key_hash`` (a scan of the workspace's ids on that channel: only for a replay of an
    erasure whose identity was shredded)."""
    candidates = await conn.fetch(
        """SELECT c.chat_id AS id FROM conversations c
               WHERE c.workspace_id = $1 AND c.channel = $2
           UNION SELECT m.sender_id FROM messages m JOIN conversations c
               ON c.id = m.conversation_id AND c.workspace_id = $1 AND c.channel = $2
               WHERE m.sender_id IS NOT NULL
           UNION SELECT recipient FROM deliveries WHERE workspace_id = $1 AND channel = $2
           UNION SELECT recipient FROM receipts WHERE workspace_id = $1 AND channel = $2""",
        ws,
        channel,
    )
    ids = [str(r["id"]) for r in candidates if r["id"] is not None]
    return [i for i in ids if keys.erased_identity_hash(ws, channel, i) == key_hash]


async def _erased(conn: Conn, ws: str, contact_id: str, at: datetime, seq: int) -> None:
    """Forget the person: contact fields, notes, identities (kept only as keyed hashes, so
    the other projections can blank what arrives or replays later), their messages and our
    replies in their one-to-one chats, and their id wherever it stands (chat ids, sender
    ids, recipients) replaced by a marker. The conversation and delivery projections blank
    rows of erased people on insert to exactly the same values, so a rebuild equals the
    live tables whichever projection replays first."""
    ids = await conn.fetch(
        "SELECT channel, external_id FROM contact_identities WHERE contact_id = $1", contact_id
    )
    for row in ids:
        channel, external_id = row["channel"], row["external_id"]
        key_hash = keys.erased_identity_hash(ws, channel, external_id)
        marker = keys.erased_marker(key_hash)
        await conn.execute(
            "INSERT INTO erased_identities VALUES ($1) ON CONFLICT DO NOTHING", key_hash
        )
        # An identity replayed after its key was shredded is only its hash: the rows still
        # holding it in the clear (from producers that did not seal) are found by hash.
        found = [external_id]
        if pii.is_erased(external_id):
            found = await _by_hash(conn, ws, channel, key_hash)
        for external_id in found:
            # Their messages, and ours in their one-to-one chats; event ids name the chat.
            rows = await conn.fetch(
                """SELECT m.event_id FROM messages m JOIN conversations c
                       ON c.id = m.conversation_id AND c.workspace_id = $1 AND c.channel = $2
                   WHERE m.workspace_id = $1
                     AND ((m.direction = 'in' AND m.sender_id = $3)
                          OR (m.direction = 'out' AND c.chat_id = $3
                              AND c.chat_type = 'private'))""",
                ws,
                channel,
                external_id,
            )
            await conn.executemany(
                """UPDATE messages SET event_id = $2, text = NULL, sender_name = NULL,
                       sender_id = NULL, content = $3::jsonb
                   WHERE event_id = $1""",
                [
                    (r["event_id"], keys.erased_event_id(r["event_id"]), ERASED_CONTENT)
                    for r in rows
                ],
            )
            await conn.execute(
                """UPDATE conversations SET title = NULL, last_preview = NULL,
                       chat_id = CASE WHEN chat_type = 'private' THEN $4 ELSE chat_id END
                   WHERE workspace_id = $1 AND channel = $2 AND chat_id = $3""",
                ws,
                channel,
                external_id,
                marker,
            )
            for table in ("receipts", "deliveries"):
                await conn.execute(
                    f"""UPDATE {table} SET recipient = $4
                        WHERE workspace_id = $1 AND channel = $2 AND recipient = $3""",
                    ws,
                    channel,
                    external_id,
                    marker,
                )
    await conn.execute("DELETE FROM contact_identities WHERE contact_id = $1", contact_id)
    await conn.execute("DELETE FROM contact_notes WHERE contact_id = $1", contact_id)
    await conn.execute(
        """UPDATE contacts SET display_name = NULL, phone = NULL, attributes = '{}',
               tags = '{}', erased = true, updated_at = $2, version = $3 WHERE id = $1""",
        contact_id,
        at,
        seq,
    )
