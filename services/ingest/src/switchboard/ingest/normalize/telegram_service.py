"""Telegram service messages and membership updates -> their own events, never customer
messages (so they change no message count or first-response time).

- ``new_chat_members`` / ``left_chat_member`` -> :class:`MembersChanged`;
- ``migrate_to_chat_id`` / ``migrate_from_chat_id`` -> :class:`ChatMigrated` (both reports
  of one migration yield the same event id);
- other service fields (title, photo, pin, forum topics, video chats, timers...) ->
  :class:`ServiceMessageReceived` named by the field;
- ``my_chat_member``: in a private chat the user blocked (``kicked``) or unblocked the bot
  -> :class:`ContactStatusChanged`; elsewhere the bot was added, removed, promoted,
  demoted or restricted -> :class:`BotMembershipChanged`;
- ``chat_member`` (someone else's status, for admin bots) -> :class:`MembersChanged` when
  they joined or left, else a :class:`ServiceMessageReceived` naming the transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, ChatType
from switchboard.events.catalog.conv import (
    BotMembership,
    BotMembershipChanged,
    ChatMigrated,
    ContactStatus,
    ContactStatusChanged,
    MembersChanged,
    MembershipChange,
    ProviderIds,
    ServiceMessageReceived,
)
from switchboard.ingest.normalize.base import NormalizeError
from switchboard.ingest.normalize.telegram_people import (
    actor,
    chat_of,
    message_sender,
    user_sender,
)

# Bot API Message fields that are service messages (Bot API 10.x), in no particular order.
SERVICE_FIELDS = (
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "message_auto_delete_timer_changed",
    "pinned_message",
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "general_forum_topic_hidden",
    "general_forum_topic_unhidden",
    "video_chat_scheduled",
    "video_chat_started",
    "video_chat_ended",
    "video_chat_participants_invited",
    "boost_added",
    "chat_background_set",
    "proximity_alert_triggered",
    "write_access_allowed",
    "giveaway_created",
    "giveaway_completed",
    "direct_message_price_changed",
    "paid_message_price_changed",
)
MEMBER = frozenset({"creator", "administrator", "member"})
OUT = frozenset({"left", "kicked"})


def ts(value: Any) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise NormalizeError(f"date {value!r} is not a unix timestamp")
    return datetime.fromtimestamp(value, UTC)


def is_service(msg: dict[str, Any]) -> bool:
    """True for a Message that reports something about the chat rather than content."""
    return (
        "new_chat_members" in msg
        or "left_chat_member" in msg
        or "migrate_to_chat_id" in msg
        or "migrate_from_chat_id" in msg
        or any(field in msg for field in SERVICE_FIELDS)
    )


def service_event(msg: dict[str, Any], account: str, ids: ProviderIds, received: datetime) -> Event:
    """The event of a service Message (``is_service(msg)`` is true)."""
    chat = chat_of(msg.get("chat"))
    at = ts(msg.get("date"))
    base: dict[str, Any] = {
        "channel": Channel.TELEGRAM,
        "account": account,
        "provider": ids,
        "received_at": received,
    }
    doer = actor(msg.get("from"))
    if "migrate_to_chat_id" in msg:
        return ChatMigrated(**base, chat=chat, to_chat_id=str(msg["migrate_to_chat_id"]), at=at)
    if "migrate_from_chat_id" in msg:
        old = Chat(id=str(msg["migrate_from_chat_id"]), type=ChatType.GROUP, title=chat.title)
        return ChatMigrated(**base, chat=old, to_chat_id=chat.id, at=at)
    if "new_chat_members" in msg or "left_chat_member" in msg:
        joined = "new_chat_members" in msg
        raw = msg["new_chat_members"] if joined else [msg["left_chat_member"]]
        if not isinstance(raw, list) or not raw or not all(isinstance(u, dict) for u in raw):
            raise NormalizeError("new_chat_members / left_chat_member is not a list of users")
        members = tuple(user_sender(u) for u in raw)
        by = doer if doer is not None and doer.id not in {m.id for m in members} else None
        change = MembershipChange.JOINED if joined else MembershipChange.LEFT
        return MembersChanged(**base, chat=chat, change=change, members=members, by=by, at=at)
    action = next(f for f in SERVICE_FIELDS if f in msg)
    return ServiceMessageReceived(
        **base,
        chat=chat,
        action=action,
        by=message_sender(msg, chat) if doer is not None or "sender_chat" in msg else None,
        text=_detail(action, msg[action]),
        at=at,
    )


def _detail(action: str, value: Any) -> str | None:
    """A short human detail of a service message (the new title, the pinned message...)."""
    if action == "new_chat_title" and isinstance(value, str):
        return value
    if action == "pinned_message" and isinstance(value, dict) and "message_id" in value:
        return f"pinned message {value['message_id']}"
    if action in ("forum_topic_created", "forum_topic_edited") and isinstance(value, dict):
        name = value.get("name")
        return name if isinstance(name, str) else None
    if action == "message_auto_delete_timer_changed" and isinstance(value, dict):
        return f"auto-delete after {value.get('message_auto_delete_time')} s"
    return None


@dataclass(frozen=True, slots=True)
class _Transition:
    """What a ``my_chat_member`` or ``chat_member`` update says: a status moved from ``old``
    to ``new`` in ``chat`` at ``at`` (``was_in``/``is_in``: a member before/after)."""

    chat: Chat
    old: str
    new: str
    was_in: bool
    is_in: bool
    at: datetime
    base: dict[str, Any]  # the fields every event of the update shares


def _transition(
    member: dict[str, Any], account: str, ids: ProviderIds, received: datetime
) -> _Transition:
    chat = chat_of(member["chat"])
    old, new = _status(member, "old_chat_member"), _status(member, "new_chat_member")
    return _Transition(
        chat=chat,
        old=old,
        new=new,
        was_in=_is_in(old, member, "old_chat_member"),
        is_in=_is_in(new, member, "new_chat_member"),
        at=ts(member["date"]),
        base={
            "channel": Channel.TELEGRAM,
            "account": account,
            "chat": chat,
            "provider": ids,
            "received_at": received,
        },
    )


def bot_member_event(
    member: dict[str, Any], account: str, ids: ProviderIds, received: datetime
) -> Event:
    """``my_chat_member``: the bot's own status changed in a chat."""
    t = _transition(member, account, ids, received)
    if t.chat.type is ChatType.PRIVATE:
        status = ContactStatus.BLOCKED if t.new in OUT else ContactStatus.UNBLOCKED
        sender = user_sender(member["from"])
        return ContactStatusChanged(**t.base, sender=sender, status=status, at=t.at)
    return BotMembershipChanged(
        **t.base,
        change=bot_membership(t),
        old_status=t.old,
        new_status=t.new,
        by=actor(member["from"]),
        at=t.at,
    )


def bot_membership(t: _Transition) -> BotMembership:
    """What a group or channel status transition of the bot means."""
    old, new = t.old, t.new
    if not t.was_in and t.is_in:
        return BotMembership.ADDED
    if t.was_in and not t.is_in:
        return BotMembership.REMOVED
    if new == "administrator" and old != "administrator":
        return BotMembership.PROMOTED
    if old == "administrator" and new != "administrator":
        return BotMembership.DEMOTED
    if new == "restricted" and old != "restricted":
        return BotMembership.RESTRICTED
    if old == "restricted" and new != "restricted":
        return BotMembership.UNRESTRICTED
    return BotMembership.RIGHTS_CHANGED


def chat_member_event(
    member: dict[str, Any], account: str, ids: ProviderIds, received: datetime
) -> Event:
    """``chat_member``: another member's status changed (bots that administer the chat)."""
    t = _transition(member, account, ids, received)
    user = member["new_chat_member"].get("user")
    if not isinstance(user, dict) or "id" not in user:
        raise NormalizeError("chat_member.new_chat_member.user is missing")
    doer = actor(member.get("from"))
    if t.was_in != t.is_in:
        subject = user_sender(user)
        by = doer if doer is not None and doer.id != subject.id else None
        change = MembershipChange.JOINED if t.is_in else MembershipChange.LEFT
        return MembersChanged(**t.base, change=change, members=(subject,), by=by, at=t.at)
    return ServiceMessageReceived(
        **t.base, action=f"chat_member:{t.old}->{t.new}", by=doer, text=str(user["id"]), at=t.at
    )


def _status(member: dict[str, Any], which: str) -> str:
    part = member.get(which)
    status = part.get("status") if isinstance(part, dict) else None
    if not isinstance(status, str) or not status:
        raise NormalizeError(f"{which}.status is missing")
    return status


def _is_in(status: str, member: dict[str, Any], which: str) -> bool:
    """A member of the chat: creator/administrator/member, or restricted with is_member."""
    if status == "restricted":
        return bool(member[which].get("is_member", False))
    return status in MEMBER
