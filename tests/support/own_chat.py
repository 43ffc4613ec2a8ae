"""What the normalizer tests check alike of an event a user caused in their own chat with
the business (a Viber or WhatsApp one-to-one conversation)."""

from __future__ import annotations

from typing import Any

from switchboard.events.catalog.common import ChatType


def assert_own_chat(event: Any, user_id: str, name: str | None) -> None:
    """``event`` comes from ``user_id``, shown as ``name``, in their private chat, which is
    keyed by them and titled with their name."""
    assert (event.chat.id, event.chat.type, event.chat.title) == (user_id, ChatType.PRIVATE, name)
    assert (event.sender.id, event.sender.display_name) == (user_id, name)
