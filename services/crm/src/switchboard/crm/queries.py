"""Read queries of the CRM API, with keyset (cursor) pagination scoped to a workspace."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import asyncpg

from switchboard.runtime.db import Conn


class BadCursorError(ValueError):
    """The cursor was not produced by this API."""


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError):
        raise BadCursorError("cursor is not valid") from None
    if not isinstance(values, list) or len(values) != size:
        raise BadCursorError("cursor is not valid")
    return values


def _row(record: asyncpg.Record) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif key == "content" and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out


async def list_conversations(
    conn: Conn,
    workspace: str,
    *,
    limit: int,
    cursor: str | None,
    channel: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    where = ["workspace_id = $1"]
    args: list[Any] = [workspace]
    if channel:
        args.append(channel)
        where.append(f"channel = ${len(args)}")
    if account:
        args.append(account)
        where.append(f"account = ${len(args)}")
    if cursor:
        last_at, last_id = decode_cursor(cursor, 2)
        args += [datetime.fromisoformat(last_at), last_id]
        where.append(f"(last_message_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    rows = await conn.fetch(
        f"""SELECT id, channel, account, chat_id, chat_type, title, first_message_at,
                   last_message_at, message_count, last_preview
            FROM conversations WHERE {" AND ".join(where)}
            ORDER BY last_message_at DESC, id DESC LIMIT ${len(args)}""",
        *args,
    )
    items = [_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return {
        "items": items,
        "next_cursor": encode_cursor(last["last_message_at"], last["id"]) if last else None,
    }


async def conversation_exists(conn: Conn, workspace: str, conversation_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM conversations WHERE id = $1 AND workspace_id = $2",
        conversation_id,
        workspace,
    )
    return bool(found)


async def list_messages(
    conn: Conn, workspace: str, conversation_id: str, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    args: list[Any] = [conversation_id, workspace]
    where = "conversation_id = $1 AND workspace_id = $2"
    if cursor:
        sent_at, seq = decode_cursor(cursor, 2)
        args += [datetime.fromisoformat(sent_at), int(seq)]
        where += " AND (sent_at, stream_seq) > ($3, $4)"
    args.append(limit + 1)
    rows = await conn.fetch(
        f"""SELECT event_id AS id, direction, provider_message_id, sender_id, sender_name, kind,
                   text, content, reply_to, sent_at, received_at, edited_at, stream_seq
            FROM messages WHERE {where}
            ORDER BY sent_at, stream_seq LIMIT ${len(args)}""",
        *args,
    )
    items = [_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return {
        "items": items,
        "next_cursor": encode_cursor(last["sent_at"], last["stream_seq"]) if last else None,
    }
