"""Applies conversation events to the CRM tables. Called by the runtime's checkpointed
projection inside the transaction that also stores the stream sequence."""

from __future__ import annotations

import json
from collections.abc import Sequence

from nats.aio.msg import Msg

from switchboard.crm.ids import conversation_id
from switchboard.events import decode_message
from switchboard.events.catalog.conv import Content, MessageEdited, MessageReceived
from switchboard.runtime.db import Conn

PROJECTION = "conversations"
SUBJECTS = ("conv.>",)


def preview(content: Content) -> tuple[str | None, str]:
    """(searchable text, short preview) of a message's content."""
    text = getattr(content, "text", None) or getattr(content, "caption", None)
    return text, (text or f"[{content.kind}]")[:200]


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    for msg in msgs:
        decoded = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
        seq = msg.metadata.sequence.stream
        model = decoded.model
        workspace = decoded.envelope.workspace_id
        if isinstance(model, MessageReceived):
            await _received(conn, decoded.envelope.id, workspace, model, seq)
        elif isinstance(model, MessageEdited):
            await _edited(conn, workspace, model)


async def _received(
    conn: Conn, event_id: str, workspace: str, ev: MessageReceived, seq: int
) -> None:
    conv_id = conversation_id(workspace, ev.channel.value, ev.account, ev.chat.id)
    text, short = preview(ev.content)
    await conn.execute(
        """INSERT INTO conversations (id, workspace_id, channel, account, chat_id, chat_type,
               title, first_message_at, last_message_at, message_count, last_preview, updated_seq)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 0, $9, $10)
           ON CONFLICT (id) DO UPDATE SET
               title = COALESCE(EXCLUDED.title, conversations.title),
               updated_seq = EXCLUDED.updated_seq""",
        conv_id,
        workspace,
        ev.channel.value,
        ev.account,
        ev.chat.id,
        ev.chat.type.value,
        ev.chat.title,
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
        workspace,
        ev.provider.message_id,
        ev.sender.id,
        ev.sender.display_name,
        ev.content.kind,
        text,
        json.dumps(ev.content.model_dump(mode="json", exclude_none=True), sort_keys=True),
        ev.reply_to,
        ev.sent_at,
        ev.received_at,
        seq,
    )
    if inserted:
        # Counted only when the message is new: a duplicate event changes nothing.
        await conn.execute(
            """UPDATE conversations SET message_count = message_count + 1,
                   first_message_at = LEAST(first_message_at, $2),
                   last_message_at = GREATEST(last_message_at, $2),
                   last_preview = CASE WHEN $2 >= last_message_at THEN $3 ELSE last_preview END
               WHERE id = $1""",
            conv_id,
            ev.sent_at,
            short,
        )


async def _edited(conn: Conn, workspace: str, ev: MessageEdited) -> None:
    conv_id = conversation_id(workspace, ev.channel.value, ev.account, ev.chat.id)
    text, _ = preview(ev.content)
    await conn.execute(
        """UPDATE messages SET text = $3, content = $4::jsonb, kind = $5,
               edited_at = GREATEST(COALESCE(edited_at, $6), $6)
           WHERE conversation_id = $1 AND provider_message_id = $2 AND direction = 'in'
             AND (edited_at IS NULL OR edited_at <= $6)""",
        conv_id,
        ev.provider.message_id,
        text,
        json.dumps(ev.content.model_dump(mode="json", exclude_none=True), sort_keys=True),
        ev.content.kind,
        ev.edited_at,
    )
