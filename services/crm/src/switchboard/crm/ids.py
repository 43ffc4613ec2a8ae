"""Stable, URL-safe ids of projected rows, derived from what identifies them in events."""

from __future__ import annotations

from switchboard.events.ids import stable_hash


def conversation_id(workspace_id: str, channel: str, account: str, chat_id: str) -> str:
    return "cv_" + stable_hash(workspace_id, channel, account, chat_id)[:24]
