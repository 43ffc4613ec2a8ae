"""Erasure in the gateway's records. For each send as a user the gateway keeps the chat
(``reads.note_sent``: the read receipt names it); rows written before it stopped keep the
recipient its caller named too. When the CRM erases a person (``crm.contact_erased``, the
keyed hashes of their identities), every record of the workspace whose chat is one of those
identities names them by the erased marker instead, as the CRM's tables do, and the
sessions stop reading their private chats (the subscriptions, with the name and username
they keep, are deleted). Before, they stayed there for ever."""

from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import ContactErased
from switchboard.runtime import pii
from switchboard.runtime.consumer import decode_or_reject
from switchboard.runtime.subscribers import Subscription, durable

# Where it reads is the topology's (CRM: crm.contact_erased); one erasure at a time is plenty.
SUBSCRIPTION = Subscription(durable("mtproto", "mtproto-erasure"), max_failures=1000, batch=4)
SUBSCRIPTIONS = (SUBSCRIPTION,)


def erased_chats(chats: list[str], workspace: str, hashes: frozenset[str]) -> dict[str, str]:
    """The chats among ``chats`` that are erased identities, each with its marker. Pure."""
    found: dict[str, str] = {}
    for chat in chats:
        if chat.startswith(pii.ERASED_MARK):  # named by the marker already
            continue
        hashed = pii.identity_hash(workspace, Channel.MTPROTO.value, chat)
        if hashed in hashes:
            found[chat] = pii.erased_marker(hashed)
    return found


async def forget(pool: Any, workspace: str, hashes: frozenset[str]) -> int:
    """Name the erased people by their marker in the workspace's send records; how many
    chats were theirs."""
    rows = await pool.fetch(
        "SELECT DISTINCT chat_id FROM sends WHERE workspace_id = $1 AND chat_id IS NOT NULL",
        workspace,
    )
    found = erased_chats([r["chat_id"] for r in rows], workspace, hashes)
    await pool.executemany(
        "UPDATE sends SET chat_id = $3, recipient = $3 WHERE workspace_id = $1 AND chat_id = $2",
        [(workspace, chat, marker) for chat, marker in found.items()],
    )
    # The subscriptions of the workspace's sessions to their private chats (followed because
    # a session wrote to them, or asked for): they hold the person's name and username, and
    # would go on reading the chat. The holders drop them from what they read at their tick.
    subs = await pool.fetch(
        """SELECT s.session_id, s.chat_id FROM subscriptions s
           JOIN sessions x ON x.session_id = s.session_id
           WHERE x.workspace_id = $1 AND s.chat_id IS NOT NULL""",
        workspace,
    )
    theirs = erased_chats([r["chat_id"] for r in subs], workspace, hashes)
    await pool.executemany(
        "DELETE FROM subscriptions WHERE session_id = $1 AND chat_id = $2",
        [(r["session_id"], r["chat_id"]) for r in subs if r["chat_id"] in theirs],
    )
    return len(found)


async def handle(pool: Any, msg: Msg) -> None:
    """One ``crm.contact_erased``."""
    decoded = decode_or_reject(msg)
    if isinstance(decoded.model, ContactErased) and decoded.model.identity_hashes:
        await forget(pool, decoded.envelope.workspace_id, frozenset(decoded.model.identity_hashes))
