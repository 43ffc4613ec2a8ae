"""Stable, URL-safe ids of projected rows, derived from what identifies them in events."""

from __future__ import annotations

from switchboard.runtime.identity import keyed_hash
from switchboard.runtime.pii import identity_hash


def conversation_id(workspace_id: str, channel: str, account: str, chat_id: str) -> str:
    """Keyed (a chat id is often a phone number), and of the chat's identity hash, so a chat
    id that decodes as erased (its key shredded) still names the same conversation."""
    chat = identity_hash(workspace_id, channel, chat_id)
    return "cv_" + keyed_hash("conversation", workspace_id, channel, account, chat)[:24]
