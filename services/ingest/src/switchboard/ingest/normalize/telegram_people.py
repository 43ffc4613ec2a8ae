"""Who a Telegram message is from, as the Bot API means it (PROTOCOLS "Who sent it").

``sender_chat`` is the real sender whenever present (a channel speaking in a group, a
channel post, an anonymous admin); ``from`` then holds a placeholder account that must
never become a contact. Anonymous admins all share ``sender_chat`` = the group, so when
the message carries the admin's ``author_signature`` (their custom title, which Telegram
shows under the message) the sender is keyed ``<group id>/<signature>``: two signed
anonymous admins are two people. Without a signature Telegram gives nothing that tells
them apart, and the group itself is the sender.
"""

from __future__ import annotations

from typing import Any

from switchboard.events.catalog.common import Chat, ChatType, Sender
from switchboard.ingest.normalize.base import NormalizeError, as_int_id

GROUP_ANONYMOUS_BOT = 1087968824
SERVICE_ACCOUNT = 777000
CHANNEL_BOT = 136817688
PLACEHOLDERS = frozenset({GROUP_ANONYMOUS_BOT, SERVICE_ACCOUNT, CHANNEL_BOT})
_CHAT_TYPES = {t.value for t in ChatType}


def chat_of(data: Any) -> Chat:
    """A Telegram Chat object as the catalog's chat."""
    if not isinstance(data, dict) or "id" not in data:
        raise NormalizeError("message has no chat.id")
    ctype = data.get("type", "unknown")
    title = data.get("title") or " ".join(
        p for p in (data.get("first_name"), data.get("last_name")) if p
    )
    return Chat(
        id=as_int_id(data["id"], "chat.id"),
        type=ChatType(ctype) if ctype in _CHAT_TYPES else ChatType.UNKNOWN,
        title=title or None,
        username=data.get("username"),
    )


def user_sender(user: dict[str, Any]) -> Sender:
    """A Telegram User object as a sender."""
    names = [user.get("first_name"), user.get("last_name")]
    return Sender(
        id=as_int_id(user.get("id"), "from.id"),
        username=user.get("username"),
        first_name=user.get("first_name"),
        last_name=user.get("last_name"),
        display_name=" ".join(p for p in names if p) or user.get("username"),
        language_code=user.get("language_code"),
        is_bot=bool(user.get("is_bot", False)),
    )


def chat_sender(chat: Chat) -> Sender:
    """A chat speaking for itself (a channel, or a group through an anonymous admin)."""
    return Sender(id=chat.id, username=chat.username, display_name=chat.title)


def is_placeholder(user: Any) -> bool:
    """GroupAnonymousBot, the 777000 service account or the old Channel_Bot."""
    return isinstance(user, dict) and user.get("id") in PLACEHOLDERS


def message_sender(msg: dict[str, Any], chat: Chat) -> Sender:
    """The real sender of a Message (see the module docstring)."""
    sender_chat = msg.get("sender_chat")
    if isinstance(sender_chat, dict) and "id" in sender_chat:
        speaker = chat_of(sender_chat)
        signature = msg.get("author_signature")
        in_group = chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
        if in_group and speaker.id == chat.id and isinstance(signature, str) and signature:
            # An anonymous admin who signs: one person per signature within the group. (A
            # channel's signed posts stay the channel's: it is the channel that speaks.)
            return Sender(id=f"{chat.id}/{signature}", display_name=signature)
        return chat_sender(speaker)
    user = msg.get("from")
    if not isinstance(user, dict) or "id" not in user or is_placeholder(user):
        # No person behind it (a channel post, or a placeholder without sender_chat):
        # the chat itself speaks, never the placeholder account.
        return chat_sender(chat)
    return user_sender(user)


def actor(user: Any) -> Sender | None:
    """Who performed a service action, when it is a real person."""
    if not isinstance(user, dict) or "id" not in user or is_placeholder(user):
        return None
    return user_sender(user)
