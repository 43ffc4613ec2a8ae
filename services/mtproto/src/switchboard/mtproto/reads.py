"""Read receipts of the messages a session sent for outbound: Telegram tells the sender
"read up to ``max_id``" per chat; each of our sends in that chat up to it gets one
``delivery.receipt`` (status ``read``), named by the chat's id (outbound files a sent
message under the chat the gateway resolved, not a ``@username`` it was addressed by), so
the CRM marks the message it shows as read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import DeliveryReceipt


@dataclass(frozen=True)
class Unread:
    workspace_id: str
    message_id: str
    provider_message_id: str
    chat_id: str


async def note_sent(pool: asyncpg.Pool, workspace: str, message_id: str, chat_id: str) -> None:
    """Remember a sent message's chat (its read receipt names it later, and outbound files
    the message under it). The recipient as addressed (``@username``) is no longer kept:
    nothing reads it, and it is personal data at rest."""
    await pool.execute(
        "UPDATE sends SET chat_id = $3 WHERE workspace_id = $1 AND message_id = $2",
        workspace,
        message_id,
        chat_id,
    )


async def unread(pool: asyncpg.Pool, session_id: str, chat_id: str, max_id: int) -> list[Unread]:
    """The session's sends in ``chat_id`` up to ``max_id`` without a read receipt yet."""
    rows = await pool.fetch(
        """SELECT workspace_id, message_id, provider_message_id, chat_id FROM sends
           WHERE session_id = $1 AND chat_id = $2 AND status = 'sent' AND read_at IS NULL
             AND provider_message_id::bigint <= $3""",
        session_id,
        chat_id,
        max_id,
    )
    return [
        Unread(r["workspace_id"], r["message_id"], r["provider_message_id"], r["chat_id"])
        for r in rows
    ]


async def mark_read(pool: asyncpg.Pool, items: list[Unread]) -> None:
    """Once their receipts are published (a crash before this publishes them again: their
    ids are fixed, so nothing is doubled)."""
    await pool.executemany(
        "UPDATE sends SET read_at = now() WHERE workspace_id = $1 AND message_id = $2",
        [(i.workspace_id, i.message_id) for i in items],
    )


def receipt(session_id: str, item: Unread, at: datetime) -> DeliveryReceipt:
    return DeliveryReceipt(
        message_id=item.message_id,
        channel=Channel.MTPROTO,
        account=session_id,
        recipient=item.chat_id,
        at=at,
        status="read",
        provider_message_id=item.provider_message_id,
    )
