"""The conversations projection (stream ``CONV``): conversations and messages, both sides,
with edits and deletions applied and erased people's messages blanked on sight."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg

from switchboard.crm import keys
from switchboard.crm.ids import conversation_id
from switchboard.events import Decoded, decode_message
from switchboard.events.catalog.conv import (
    CallbackReceived,
    Content,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    MessageSent,
)
from switchboard.runtime.db import Conn

PROJECTION = "conversations"
STREAM = "CONV"
SUBJECTS = ("conv.>",)
ERASED_CONTENT = json.dumps({"kind": "erased"})


def preview(content: Content) -> tuple[str | None, str]:
    """(searchable text, short preview) of a message's content."""
    text = getattr(content, "text", None) or getattr(content, "caption", None)
    return text, (text or f"[{content.kind}]")[:200]


def _json(content: Content) -> str:
    return json.dumps(content.model_dump(mode="json", exclude_none=True), sort_keys=True)


Prepared = list[tuple[int, Decoded]]
Inserted = MessageReceived | MessageSent | CallbackReceived


def prepare(msgs: Sequence[Msg]) -> Prepared:
    """Decode a batch (CPU work, done while the previous batch is in Postgres)."""
    return [
        (m.metadata.sequence.stream, decode_message(m.subject, dict(m.headers or {}), m.data))
        for m in msgs
    ]


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    """Decode and apply a batch (for callers without a separate prepare step)."""
    await apply_prepared(conn, prepare(msgs))


async def apply_prepared(conn: Conn, batch: Prepared) -> None:
    """Apply a batch with the exact effect of applying its events one by one: new messages
    are inserted in bulk, and an edit or deletion only forces the pending inserts out first
    when it targets one of them (otherwise its order relative to them does not matter)."""
    run: list[tuple[str, str, int, Inserted]] = []
    pending: set[tuple[str, str]] = set()
    for seq, decoded in batch:
        model, ws = decoded.model, decoded.envelope.workspace_id
        if isinstance(model, MessageReceived | MessageSent | CallbackReceived):
            run.append((decoded.envelope.id, ws, seq, model))
            conv = conversation_id(ws, model.channel.value, model.account, model.chat.id)
            pending.add((conv, _provider_id(model)))
            continue
        if isinstance(model, MessageEdited | MessageDeleted):
            conv = conversation_id(ws, model.channel.value, model.account, model.chat.id)
            targets = (
                {model.provider.message_id}
                if isinstance(model, MessageEdited)
                else set(model.message_ids)
            )
            if any((conv, t) in pending for t in targets):
                await insert_messages(conn, run)
                run, pending = [], set()
            if isinstance(model, MessageEdited):
                await _edited(conn, ws, model)
            else:
                await _deleted(conn, ws, model)
    await insert_messages(conn, run)


@dataclass
class _Row:
    """One message row about to be inserted, with what its conversation needs."""

    event_id: str
    conv_id: str
    ws: str
    seq: int
    ev: Inserted
    sent_at: datetime
    direction: str
    sender_id: str | None
    sender_name: str | None
    kind: str
    text: str | None
    content: str
    reply_to: str | None
    received_at: Any
    message_id: str | None
    short: str | None
    title: str | None


async def insert_messages(conn: Conn, run: list[tuple[str, str, int, Inserted]]) -> None:
    """Insert a run of new messages with a handful of set-based statements."""
    if not run:
        return
    erased = await _erased_among(conn, run)
    rows = [_row(event_id, ws, seq, ev, erased) for event_id, ws, seq, ev in run]
    inserted = await conn.fetch(
        """INSERT INTO messages (event_id, conversation_id, workspace_id, direction,
               provider_message_id, sender_id, sender_name, kind, text, content, reply_to,
               sent_at, received_at, stream_seq, message_id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[],
                                $11::text[], $12::timestamptz[], $13::timestamptz[],
                                $14::bigint[], $15::text[])
           ORDER BY 14
           ON CONFLICT DO NOTHING
           RETURNING event_id""",
        [r.event_id for r in rows],
        [r.conv_id for r in rows],
        [r.ws for r in rows],
        [r.direction for r in rows],
        [_provider_id(r.ev) for r in rows],
        [r.sender_id for r in rows],
        [r.sender_name for r in rows],
        [r.kind for r in rows],
        [r.text for r in rows],
        [r.content for r in rows],
        [r.reply_to for r in rows],
        [r.sent_at for r in rows],
        [r.received_at for r in rows],
        [r.seq for r in rows],
        [r.message_id for r in rows],
    )
    new = {rec["event_id"] for rec in inserted}
    # One upsert per conversation, with what one-by-one application would have done: the
    # row exists from its first event; counts, first/last times and the preview (latest by
    # sent_at, later events winning ties) change only for messages that were new; the last
    # non-null title wins.
    convs: dict[str, list[Any]] = {}
    for r in rows:
        c = convs.setdefault(r.conv_id, [r, 0, r.sent_at, r.sent_at, r.short, None, r.seq])
        c[6] = r.seq
        if r.title is not None:
            c[5] = r.title
        if r.event_id not in new:
            continue
        new.discard(r.event_id)  # a duplicate inside the batch counts once
        if c[1] == 0:
            c[2], c[3], c[4] = r.sent_at, r.sent_at, r.short
        else:
            c[2] = min(c[2], r.sent_at)
            if r.sent_at >= c[3]:
                c[3], c[4] = r.sent_at, r.short
        c[1] += 1
    values = list(convs.values())
    await conn.execute(
        """INSERT INTO conversations AS c (id, workspace_id, channel, account, chat_id,
               chat_type, title, first_message_at, last_message_at, message_count,
               last_preview, updated_seq)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[],
                                $10::int[], $11::text[], $12::bigint[])
           ON CONFLICT (id) DO UPDATE SET
               title = COALESCE(EXCLUDED.title, c.title),
               updated_seq = EXCLUDED.updated_seq,
               message_count = c.message_count + EXCLUDED.message_count,
               first_message_at = CASE WHEN EXCLUDED.message_count > 0
                   THEN LEAST(c.first_message_at, EXCLUDED.first_message_at)
                   ELSE c.first_message_at END,
               last_preview = CASE WHEN EXCLUDED.message_count > 0
                                    AND EXCLUDED.last_message_at >= c.last_message_at
                   THEN EXCLUDED.last_preview ELSE c.last_preview END,
               last_message_at = CASE WHEN EXCLUDED.message_count > 0
                   THEN GREATEST(c.last_message_at, EXCLUDED.last_message_at)
                   ELSE c.last_message_at END""",
        [v[0].conv_id for v in values],
        [v[0].ws for v in values],
        [v[0].ev.channel.value for v in values],
        [v[0].ev.account for v in values],
        [v[0].ev.chat.id for v in values],
        [v[0].ev.chat.type.value for v in values],
        [v[5] for v in values],
        [v[2] for v in values],
        [v[3] for v in values],
        [v[1] for v in values],
        [v[4] for v in values],
        [v[6] for v in values],
    )
    if any(v[1] for v in values) and await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pending_edits)"
    ):
        for r in rows:
            if convs[r.conv_id][1] and r.direction == "in":
                await _apply_pending_edits(conn, r.conv_id, _provider_id(r.ev))


def _provider_id(ev: Inserted) -> str:
    return ev.provider_message_id if isinstance(ev, MessageSent) else ev.provider.message_id


async def _erased_among(conn: Conn, run: list[tuple[str, str, int, Inserted]]) -> set[str]:
    hashes = {
        keys.erased_identity_hash(ws, ev.channel.value, ev.sender.id)
        for _, ws, _, ev in run
        if not isinstance(ev, MessageSent)
    }
    rows = await conn.fetch(
        "SELECT key_hash FROM erased_identities WHERE key_hash = ANY($1::text[])", list(hashes)
    )
    return {r["key_hash"] for r in rows}


def _row(event_id: str, ws: str, seq: int, ev: Inserted, erased: set[str]) -> _Row:
    conv_id = conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
    if isinstance(ev, MessageSent):
        content = json.dumps({"kind": ev.content_kind, "text": ev.text}, sort_keys=True)
        return _Row(
            event_id,
            conv_id,
            ws,
            seq,
            ev,
            ev.sent_at,
            "out",
            None,
            None,
            ev.content_kind,
            ev.text,
            content,
            None,
            None,
            ev.message_id,
            (ev.text or f"[{ev.content_kind}]")[:200],
            ev.chat.title,
        )
    if isinstance(ev, CallbackReceived):
        # A pressed button is part of the conversation: a message of kind "callback".
        content = json.dumps(
            {"kind": "callback", "data": ev.data, "message_id": ev.message_id}, sort_keys=True
        )
        row = _Row(
            event_id,
            conv_id,
            ws,
            seq,
            ev,
            ev.received_at,
            "in",
            ev.sender.id,
            ev.sender.display_name,
            "callback",
            ev.data,
            content,
            ev.message_id,
            ev.received_at,
            None,
            f"[button: {ev.data or ''}]"[:200],
            ev.chat.title,
        )
    else:
        text, preview_text = preview(ev.content)
        row = _Row(
            event_id,
            conv_id,
            ws,
            seq,
            ev,
            ev.sent_at,
            "in",
            ev.sender.id,
            ev.sender.display_name,
            ev.content.kind,
            text,
            _json(ev.content),
            ev.reply_to,
            ev.received_at,
            None,
            preview_text,
            ev.chat.title,
        )
    if keys.erased_identity_hash(ws, ev.channel.value, ev.sender.id) in erased:
        row.text = row.short = row.sender_name = row.title = None
        row.content = ERASED_CONTENT
    return row


async def _edited(conn: Conn, ws: str, ev: MessageEdited) -> None:
    conv_id = conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
    text, _ = preview(ev.content)
    updated = await conn.fetchval(
        """UPDATE messages SET text = $3, content = $4::jsonb, kind = $5, edited_at = $6
           WHERE conversation_id = $1 AND provider_message_id = $2 AND direction = 'in'
             AND deleted_at IS NULL AND (edited_at IS NULL OR edited_at < $6)
             AND content <> $7::jsonb
           RETURNING 1""",
        conv_id,
        ev.provider.message_id,
        text,
        _json(ev.content),
        ev.content.kind,
        ev.edited_at,
        ERASED_CONTENT,
    )
    exists = updated or await conn.fetchval(
        "SELECT 1 FROM messages WHERE conversation_id = $1 AND provider_message_id = $2",
        conv_id,
        ev.provider.message_id,
    )
    if not exists:  # the edit overtook its message: keep it until the message lands
        await conn.execute(
            """INSERT INTO pending_edits VALUES ($1, $2, $3, $4, $5, $6::jsonb)
               ON CONFLICT DO NOTHING""",
            conv_id,
            ev.provider.message_id,
            ev.edited_at,
            ev.content.kind,
            text,
            _json(ev.content),
        )


async def _apply_pending_edits(conn: Conn, conv_id: str, provider_message_id: str) -> None:
    """Apply the latest edit that arrived before its message, then forget them all."""
    edit = await conn.fetchrow(
        """SELECT edited_at, kind, text, content FROM pending_edits
           WHERE conversation_id = $1 AND provider_message_id = $2
           ORDER BY edited_at DESC LIMIT 1""",
        conv_id,
        provider_message_id,
    )
    if edit is None:
        return
    await conn.execute(
        "DELETE FROM pending_edits WHERE conversation_id = $1 AND provider_message_id = $2",
        conv_id,
        provider_message_id,
    )
    await conn.execute(
        """UPDATE messages SET text = $3, content = $4::jsonb, kind = $5, edited_at = $6
           WHERE conversation_id = $1 AND provider_message_id = $2 AND content <> $7::jsonb""",
        conv_id,
        provider_message_id,
        edit["text"],
        edit["content"],
        edit["kind"],
        edit["edited_at"],
        ERASED_CONTENT,
    )


async def _deleted(conn: Conn, ws: str, ev: MessageDeleted) -> None:
    conv_id = conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
    await conn.execute(
        """UPDATE messages SET text = NULL, content = '{"kind": "deleted"}'::jsonb,
               deleted_at = $3
           WHERE conversation_id = $1 AND provider_message_id = ANY($2::text[])
             AND deleted_at IS NULL""",
        conv_id,
        list(ev.message_ids),
        ev.deleted_at,
    )
