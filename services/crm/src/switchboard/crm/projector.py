"""The conversations projection (stream ``CONV``): conversations and messages, both sides,
with edits and deletions applied and erased people's messages blanked on sight."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nats.aio.msg import Msg

from switchboard.crm import keys
from switchboard.crm.ids import conversation_id
from switchboard.events import decode_message
from switchboard.events.catalog.conv import (
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


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    for msg in msgs:
        decoded = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
        seq = msg.metadata.sequence.stream
        model = decoded.model
        ws = decoded.envelope.workspace_id
        if isinstance(model, MessageReceived):
            await _received(conn, decoded.envelope.id, ws, model, seq)
        elif isinstance(model, MessageSent):
            await _sent(conn, decoded.envelope.id, ws, model, seq)
        elif isinstance(model, MessageEdited):
            await _edited(conn, ws, model)
        elif isinstance(model, MessageDeleted):
            await _deleted(conn, ws, model)


async def _is_erased(conn: Conn, ws: str, channel: str, external_id: str) -> bool:
    key = keys.erased_identity_hash(ws, channel, external_id)
    return bool(await conn.fetchval("SELECT 1 FROM erased_identities WHERE key_hash = $1", key))


async def _conversation(
    conn: Conn, ws: str, ev: MessageReceived | MessageSent, at: Any, short: str | None, seq: int
) -> str:
    conv_id = conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
    await conn.execute(
        """INSERT INTO conversations (id, workspace_id, channel, account, chat_id, chat_type,
               title, first_message_at, last_message_at, message_count, last_preview, updated_seq)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 0, $9, $10)
           ON CONFLICT (id) DO UPDATE SET
               title = COALESCE(EXCLUDED.title, conversations.title),
               updated_seq = EXCLUDED.updated_seq""",
        conv_id,
        ws,
        ev.channel.value,
        ev.account,
        ev.chat.id,
        ev.chat.type.value,
        ev.chat.title,
        at,
        short,
        seq,
    )
    return conv_id


async def _count(conn: Conn, conv_id: str, at: Any, short: str | None) -> None:
    # Counted only when the message row is new: a duplicate event changes nothing.
    await conn.execute(
        """UPDATE conversations SET message_count = message_count + 1,
               first_message_at = LEAST(first_message_at, $2),
               last_message_at = GREATEST(last_message_at, $2),
               last_preview = CASE WHEN $2 >= last_message_at THEN $3 ELSE last_preview END
           WHERE id = $1""",
        conv_id,
        at,
        short,
    )


async def _received(conn: Conn, event_id: str, ws: str, ev: MessageReceived, seq: int) -> None:
    text, preview_text = preview(ev.content)
    short: str | None = preview_text
    content, sender_name, title = _json(ev.content), ev.sender.display_name, ev.chat.title
    if await _is_erased(conn, ws, ev.channel.value, ev.sender.id):
        text, short, content, sender_name, title = None, None, ERASED_CONTENT, None, None
    conv_id = await _conversation(
        conn,
        ws,
        ev.model_copy(update={"chat": ev.chat.model_copy(update={"title": title})}),
        ev.sent_at,
        short,
        seq,
    )
    inserted = await conn.fetchval(
        """INSERT INTO messages (event_id, conversation_id, workspace_id, direction,
               provider_message_id, sender_id, sender_name, kind, text, content, reply_to,
               sent_at, received_at, stream_seq)
           VALUES ($1, $2, $3, 'in', $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13)
           ON CONFLICT DO NOTHING
           RETURNING 1""",
        event_id,
        conv_id,
        ws,
        ev.provider.message_id,
        ev.sender.id,
        sender_name,
        ev.content.kind,
        text,
        content,
        ev.reply_to,
        ev.sent_at,
        ev.received_at,
        seq,
    )
    if inserted:
        await _count(conn, conv_id, ev.sent_at, short)
        await _apply_pending_edits(conn, conv_id, ev.provider.message_id)


async def _sent(conn: Conn, event_id: str, ws: str, ev: MessageSent, seq: int) -> None:
    short = (ev.text or f"[{ev.content_kind}]")[:200]
    conv_id = await _conversation(conn, ws, ev, ev.sent_at, short, seq)
    inserted = await conn.fetchval(
        """INSERT INTO messages (event_id, conversation_id, workspace_id, direction,
               provider_message_id, kind, text, content, sent_at, stream_seq, message_id)
           VALUES ($1, $2, $3, 'out', $4, $5, $6, $7::jsonb, $8, $9, $10)
           ON CONFLICT DO NOTHING
           RETURNING 1""",
        event_id,
        conv_id,
        ws,
        ev.provider_message_id,
        ev.content_kind,
        ev.text,
        json.dumps({"kind": ev.content_kind, "text": ev.text}, sort_keys=True),
        ev.sent_at,
        seq,
        ev.message_id,
    )
    if inserted:
        await _count(conn, conv_id, ev.sent_at, short)


async def _edited(conn: Conn, ws: str, ev: MessageEdited) -> None:
    conv_id = conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
    text, _ = preview(ev.content)
    if ev.sender is not None and await _is_erased(conn, ws, ev.channel.value, ev.sender.id):
        return
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
