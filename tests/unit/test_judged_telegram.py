"""Telegram Updates judged by two real client libraries: every payload must parse in aiogram
(``Update.model_validate``, strict pydantic models of the Bot API) and python-telegram-bot
(``Update.de_json``), and the normalizer's event must say what they say: the sender is
PTB's ``effective_sender`` (placeholders never), the kind is aiogram's ``content_type``, a
membership change is what aiogram's transition filters call it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import telegram
from aiogram.filters.chat_member_updated import (
    ADMINISTRATOR,
    JOIN_TRANSITION,
    LEAVE_TRANSITION,
    MEMBER,
    PROMOTED_TRANSITION,
    RESTRICTED,
    ChatMemberUpdatedFilter,
)
from aiogram.filters.command import Command
from aiogram.types import Update as AiogramUpdate
from tests.support.normalized import only

from switchboard.events import Event
from switchboard.events.catalog.conv import (
    BotMembership,
    BotMembershipChanged,
    CallbackReceived,
    ChatMigrated,
    ContactStatus,
    ContactStatusChanged,
    MembersChanged,
    MembershipChange,
    MessageEdited,
    MessageReceived,
    ServiceMessageReceived,
    UpdateUnsupported,
)
from switchboard.ingest.normalize.telegram import normalize_update
from switchboard.ingest.normalize.telegram_people import PLACEHOLDERS

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DATE = 1763640000
BOT = {"id": 7000001, "is_bot": True, "first_name": "Shop", "username": "shop_bot"}
ADA = {"id": 555, "is_bot": False, "first_name": "Ada", "last_name": "L", "username": "ada"}
BOB = {"id": 556, "is_bot": False, "first_name": "Bob", "language_code": "de"}
ANON = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
PRIVATE = {"id": 555, "type": "private", "first_name": "Ada", "username": "ada"}
GROUP = {"id": -4001, "type": "group", "title": "Support"}
SUPER = {"id": -1004001, "type": "supergroup", "title": "Support", "is_forum": True}
CHANNEL = {"id": -1009, "type": "channel", "title": "News", "username": "news"}
OTHER_CHANNEL = {"id": -1010, "type": "channel", "title": "Partner"}

FILE = {"file_id": "AgACAgIAAxk", "file_unique_id": "AQADx"}
PHOTO = [
    {**FILE, "width": 90, "height": 51},
    {**FILE, "file_id": "big", "width": 1280, "height": 720},
]
ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_send_welcome_messages": False,
}
RESTRICTIONS = {
    "is_member": True,
    "can_send_messages": False,
    "can_send_audios": False,
    "can_send_documents": False,
    "can_send_photos": False,
    "can_send_videos": False,
    "can_send_video_notes": False,
    "can_send_voice_notes": False,
    "can_send_polls": False,
    "can_send_other_messages": False,
    "can_add_web_page_previews": False,
    "can_change_info": False,
    "can_invite_users": False,
    "can_pin_messages": False,
    "can_manage_topics": False,
    "can_react_to_messages": False,
    "can_edit_tag": False,
    "until_date": 0,
}

_next_id = iter(range(10_000, 20_000))


def update(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"update_id": next(_next_id), kind: payload}


def msg(
    chat: dict[str, Any] = PRIVATE, sender: dict[str, Any] | None = ADA, **fields: Any
) -> dict[str, Any]:
    m: dict[str, Any] = {"message_id": 42, "date": DATE, "chat": chat, **fields}
    if sender is not None:
        m["from"] = sender
    return update("message", m)


def member(status: str, user: dict[str, Any] = BOT) -> dict[str, Any]:
    if status == "administrator":
        return {"status": status, "user": user, **ADMIN_RIGHTS}
    if status == "restricted":
        return {"status": status, "user": user, **RESTRICTIONS}
    if status == "kicked":
        return {"status": status, "user": user, "until_date": 0}
    return {"status": status, "user": user}


def member_update(
    kind: str, chat: dict[str, Any], old: str, new: str, user: dict[str, Any] = BOT
) -> dict[str, Any]:
    return update(
        kind,
        {
            "chat": chat,
            "from": ADA,
            "date": DATE,
            "old_chat_member": member(old, user),
            "new_chat_member": member(new, user),
        },
    )


POLL = {
    "id": "5",
    "question": "Which day?",
    "options": [
        {"persistent_id": "m", "text": "Mon", "voter_count": 0},
        {"persistent_id": "t", "text": "Tue", "voter_count": 0},
    ],
    "total_voter_count": 0,
    "is_closed": False,
    "is_anonymous": True,
    "type": "regular",
    "allows_multiple_answers": False,
    "allows_revoting": False,
    "members_only": False,
}

CASES: list[tuple[str, dict[str, Any], type[Event]]] = [
    # content kinds
    ("text", msg(text="hi"), MessageReceived),
    ("photo", msg(photo=PHOTO, caption="look"), MessageReceived),
    ("video", msg(video={**FILE, "width": 640, "height": 360, "duration": 12}), MessageReceived),
    ("video_note", msg(video_note={**FILE, "length": 240, "duration": 5}), MessageReceived),
    ("audio", msg(audio={**FILE, "duration": 200, "title": "Song"}), MessageReceived),
    ("voice", msg(voice={**FILE, "duration": 3}), MessageReceived),
    ("document", msg(document={**FILE, "file_name": "offer.pdf"}), MessageReceived),
    (
        "animation",
        msg(
            animation={**FILE, "width": 320, "height": 240, "duration": 2},
            document={**FILE, "file_name": "a.gif.mp4"},
        ),
        MessageReceived,
    ),
    (
        "sticker",
        msg(
            sticker={
                **FILE,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "\N{GRINNING FACE}",
            }
        ),
        MessageReceived,
    ),
    ("location", msg(location={"latitude": 52.5, "longitude": 13.4}), MessageReceived),
    (
        "venue",
        msg(
            location={"latitude": 52.5, "longitude": 13.4},
            venue={
                "location": {"latitude": 52.5, "longitude": 13.4},
                "title": "HQ",
                "address": "Main 1",
            },
        ),
        MessageReceived,
    ),
    (
        "contact",
        msg(contact={"phone_number": "+16505551234", "first_name": "Bob"}),
        MessageReceived,
    ),
    # kinds the catalog does not model: named by content, never by an attribute
    ("dice", msg(dice={"emoji": "\N{GAME DIE}", "value": 4}), MessageReceived),
    (
        "poll",
        msg(chat=SUPER, poll=POLL, message_thread_id=7, is_topic_message=True),
        MessageReceived,
    ),
    ("story", msg(story={"chat": CHANNEL, "id": 3}), MessageReceived),
    (
        "dice in a topic with a quote",
        msg(
            chat=SUPER,
            message_thread_id=9,
            is_topic_message=True,
            link_preview_options={"is_disabled": True},
            dice={"emoji": "\N{DIRECT HIT}", "value": 6},
        ),
        MessageReceived,
    ),
    # replies and deep links
    (
        "reply",
        msg(text="yes", reply_to_message={"message_id": 41, "date": DATE, "chat": PRIVATE}),
        MessageReceived,
    ),
    ("deep link /start", msg(text="/start spring_sale-42"), MessageReceived),
    ("plain /start", msg(text="/start"), MessageReceived),
    # who sent it
    ("group member", msg(chat=GROUP, sender=BOB, text="hello"), MessageReceived),
    (
        "anonymous admin signed A",
        msg(chat=SUPER, sender=ANON, sender_chat=SUPER, author_signature="Owner", text="hi"),
        MessageReceived,
    ),
    (
        "anonymous admin signed B",
        msg(chat=SUPER, sender=ANON, sender_chat=SUPER, author_signature="Support", text="hi"),
        MessageReceived,
    ),
    (
        "anonymous admin unsigned",
        msg(chat=SUPER, sender=ANON, sender_chat=SUPER, text="hi"),
        MessageReceived,
    ),
    (
        "on behalf of a channel",
        msg(chat=SUPER, sender=CHANNEL_BOT, sender_chat=OTHER_CHANNEL, text="promo"),
        MessageReceived,
    ),
    (
        "automatic forward",
        msg(
            chat=SUPER,
            sender=SERVICE,
            sender_chat=CHANNEL,
            is_automatic_forward=True,
            forward_origin={
                "type": "channel",
                "chat": CHANNEL,
                "message_id": 88,
                "date": DATE - 5,
            },
            text="New post",
        ),
        MessageReceived,
    ),
    (
        "service account without sender_chat",
        msg(sender=SERVICE, text="code 12345"),
        MessageReceived,
    ),
    (
        "channel post",
        update(
            "channel_post",
            {
                "message_id": 5,
                "date": DATE,
                "chat": CHANNEL,
                "sender_chat": CHANNEL,
                "text": "news",
            },
        ),
        MessageReceived,
    ),
    (
        "signed channel post",
        update(
            "channel_post",
            {
                "message_id": 6,
                "date": DATE,
                "chat": CHANNEL,
                "sender_chat": CHANNEL,
                "author_signature": "Editor",
                "text": "signed news",
            },
        ),
        MessageReceived,
    ),
    (
        "edited message",
        update(
            "edited_message",
            {
                "message_id": 42,
                "date": DATE,
                "edit_date": DATE + 60,
                "chat": PRIVATE,
                "from": ADA,
                "text": "fixed",
            },
        ),
        MessageEdited,
    ),
    (
        "edited channel post",
        update(
            "edited_channel_post",
            {
                "message_id": 5,
                "date": DATE,
                "edit_date": DATE + 9,
                "chat": CHANNEL,
                "sender_chat": CHANNEL,
                "text": "news!",
            },
        ),
        MessageEdited,
    ),
    # buttons
    (
        "callback",
        update(
            "callback_query",
            {
                "id": "4382",
                "from": ADA,
                "chat_instance": "-77",
                "data": "buy:1",
                "message": {
                    "message_id": 40,
                    "date": DATE,
                    "chat": PRIVATE,
                    "from": BOT,
                    "text": "Buy?",
                },
            },
        ),
        CallbackReceived,
    ),
    (
        "inline callback",
        update(
            "callback_query",
            {
                "id": "4383",
                "from": BOB,
                "chat_instance": "-78",
                "inline_message_id": "AAE",
                "data": "x",
            },
        ),
        CallbackReceived,
    ),
    # service messages: never customer text
    ("members joined", msg(chat=GROUP, new_chat_members=[BOB]), MembersChanged),
    (
        "member added by another",
        msg(chat=SUPER, sender=ADA, new_chat_members=[BOB, {**BOT}]),
        MembersChanged,
    ),
    ("member left", msg(chat=GROUP, sender=BOB, left_chat_member=BOB), MembersChanged),
    ("member removed", msg(chat=GROUP, sender=ADA, left_chat_member=BOB), MembersChanged),
    ("title changed", msg(chat=GROUP, new_chat_title="Support desk"), ServiceMessageReceived),
    ("photo changed", msg(chat=GROUP, new_chat_photo=PHOTO), ServiceMessageReceived),
    ("photo deleted", msg(chat=GROUP, delete_chat_photo=True), ServiceMessageReceived),
    ("group created", msg(chat=GROUP, group_chat_created=True), ServiceMessageReceived),
    (
        "pinned",
        msg(
            chat=SUPER,
            pinned_message={"message_id": 40, "date": DATE, "chat": SUPER, "text": "rules"},
        ),
        ServiceMessageReceived,
    ),
    (
        "auto-delete timer",
        msg(chat=GROUP, message_auto_delete_timer_changed={"message_auto_delete_time": 86400}),
        ServiceMessageReceived,
    ),
    (
        "forum topic created",
        msg(
            chat=SUPER,
            message_thread_id=9,
            forum_topic_created={"name": "Orders", "icon_color": 7322096},
        ),
        ServiceMessageReceived,
    ),
    (
        "forum topic closed",
        msg(chat=SUPER, message_thread_id=9, forum_topic_closed={}),
        ServiceMessageReceived,
    ),
    ("video chat started", msg(chat=SUPER, video_chat_started={}), ServiceMessageReceived),
    (
        "video chat ended",
        msg(chat=SUPER, video_chat_ended={"duration": 600}),
        ServiceMessageReceived,
    ),
    ("migrated to supergroup", msg(chat=GROUP, migrate_to_chat_id=-1004001), ChatMigrated),
    (
        "migrated from group",
        msg(chat=SUPER, sender=ANON, sender_chat=SUPER, migrate_from_chat_id=-4001),
        ChatMigrated,
    ),
    # the bot's own status
    (
        "private: blocked",
        member_update("my_chat_member", PRIVATE, "member", "kicked"),
        ContactStatusChanged,
    ),
    (
        "private: unblocked",
        member_update("my_chat_member", PRIVATE, "kicked", "member"),
        ContactStatusChanged,
    ),
    (
        "group: bot added",
        member_update("my_chat_member", GROUP, "left", "member"),
        BotMembershipChanged,
    ),
    (
        "group: bot added as admin",
        member_update("my_chat_member", SUPER, "left", "administrator"),
        BotMembershipChanged,
    ),
    (
        "group: bot removed",
        member_update("my_chat_member", GROUP, "member", "left"),
        BotMembershipChanged,
    ),
    (
        "group: bot kicked",
        member_update("my_chat_member", SUPER, "administrator", "kicked"),
        BotMembershipChanged,
    ),
    (
        "group: bot promoted",
        member_update("my_chat_member", SUPER, "member", "administrator"),
        BotMembershipChanged,
    ),
    (
        "group: bot demoted",
        member_update("my_chat_member", SUPER, "administrator", "member"),
        BotMembershipChanged,
    ),
    (
        "group: bot restricted",
        member_update("my_chat_member", SUPER, "member", "restricted"),
        BotMembershipChanged,
    ),
    (
        "channel: bot added",
        member_update("my_chat_member", CHANNEL, "left", "administrator"),
        BotMembershipChanged,
    ),
    # other members (admin bots)
    (
        "chat_member joined",
        member_update("chat_member", SUPER, "left", "member", BOB),
        MembersChanged,
    ),
    (
        "chat_member left",
        member_update("chat_member", SUPER, "member", "left", BOB),
        MembersChanged,
    ),
    # updates the catalog does not model: kept, named by their field
    (
        "message_reaction",
        update(
            "message_reaction",
            {
                "chat": PRIVATE,
                "message_id": 40,
                "user": ADA,
                "date": DATE,
                "old_reaction": [],
                "new_reaction": [{"type": "emoji", "emoji": "\N{THUMBS UP SIGN}"}],
            },
        ),
        UpdateUnsupported,
    ),
]

# aiogram's content_type -> the catalog's content kind
KINDS = {
    "text": "text",
    "photo": "photo",
    "video": "video",
    "video_note": "video",
    "audio": "audio",
    "voice": "voice",
    "document": "document",
    "animation": "animation",
    "sticker": "sticker",
    "location": "location",
    "venue": "location",
    "contact": "contact",
}
MEMBER_SERVICE = {
    "new_chat_members": MembershipChange.JOINED,
    "left_chat_member": MembershipChange.LEFT,
}
MIGRATION = {"migrate_to_chat_id", "migrate_from_chat_id"}
DEMOTED_TRANSITION = ADMINISTRATOR >> (MEMBER | RESTRICTED)


def judge(data: dict[str, Any]) -> tuple[AiogramUpdate, telegram.Update]:
    return AiogramUpdate.model_validate(data), telegram.Update.de_json(data, None)


def transition(update: AiogramUpdate, rule: Any) -> bool:
    event = update.my_chat_member or update.chat_member
    return bool(asyncio.run(ChatMemberUpdatedFilter(rule)(event)))


def expected_sender(ptb: telegram.Update, message: Any) -> str:
    """PTB's effective_sender, keyed the way the normalizer documents: an anonymous admin's
    signature tells admins apart, and a placeholder account is never a sender."""
    sender = ptb.effective_sender
    assert sender is not None
    chat = ptb.effective_chat
    assert chat is not None
    if isinstance(sender, telegram.User) and sender.id in PLACEHOLDERS:
        return str(chat.id)
    in_group = chat.type in ("group", "supergroup")
    signed = in_group and message.author_signature
    if isinstance(sender, telegram.Chat) and sender.id == chat.id and signed:
        return f"{chat.id}/{message.author_signature}"
    return str(sender.id)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_normalizer_agrees_with_aiogram_and_ptb(
    name: str, data: dict[str, Any], expected: type[Event]
) -> None:
    aio, ptb = judge(data)
    event = only(
        normalize_update(data, account="shop_bot", raw_id="tg:shop_bot:1", received_at=NOW)
    )
    assert type(event) is expected
    if isinstance(event, UpdateUnsupported):
        assert event.provider_kind == aio.event_type
        return
    if aio.callback_query is not None:
        cb = aio.callback_query
        assert isinstance(event, CallbackReceived)
        assert event.sender.id == str(cb.from_user.id)
        assert event.data == cb.data
        assert event.callback_id == cb.id
        assert event.message_id == (str(cb.message.message_id) if cb.message else None)
        assert event.chat.id == str(cb.message.chat.id if cb.message else cb.from_user.id)
        return
    if aio.my_chat_member is not None or aio.chat_member is not None:
        _judge_membership(aio, event)
        return
    message = aio.message or aio.edited_message or aio.channel_post or aio.edited_channel_post
    assert message is not None
    kind = message.content_type
    ptb_message = ptb.effective_message
    assert ptb_message is not None
    if kind in MEMBER_SERVICE:
        assert isinstance(event, MembersChanged)
        assert event.change is MEMBER_SERVICE[kind]
        people = message.new_chat_members or [message.left_chat_member]
        assert [m.id for m in event.members] == [str(p.id) for p in people if p]
        actor = message.from_user
        acted_for_others = actor is not None and actor.id not in {p.id for p in people if p}
        assert (event.by is not None) == acted_for_others
        return
    if kind in MIGRATION:
        assert isinstance(event, ChatMigrated)
        old = message.migrate_from_chat_id or message.chat.id
        new = message.migrate_to_chat_id or message.chat.id
        assert (event.chat.id, event.to_chat_id) == (str(old), str(new))
        return
    if isinstance(event, ServiceMessageReceived):
        assert event.action == kind
        assert event.chat.id == str(message.chat.id)
        return
    assert isinstance(event, MessageReceived | MessageEdited)
    assert event.chat.id == str(message.chat.id)
    assert event.chat.type.value == message.chat.type
    assert event.provider.message_id == str(message.message_id)
    assert event.provider.update_id == str(aio.update_id)
    assert event.sender is not None
    assert event.sender.id == expected_sender(ptb, message)
    assert int(event.sender.id.split("/")[0]) not in PLACEHOLDERS
    assert event.content.kind == KINDS.get(kind, "unsupported")
    if event.content.kind == "unsupported":
        assert event.content.provider_kind == kind  # type: ignore[union-attr]
    text = getattr(event.content, "text", None) or getattr(event.content, "caption", None)
    assert text == (message.text or message.caption)
    if isinstance(event, MessageEdited):
        assert message.edit_date is not None
        assert event.edited_at.timestamp() == message.edit_date
        return
    reply = message.reply_to_message
    assert event.reply_to == (str(reply.message_id) if reply else None)
    command = (
        Command.extract_command(message.text) if (message.text or "").startswith("/") else None
    )
    if command is not None and command.command == "start" and command.args:
        assert event.referral is not None
        assert (event.referral.source, event.referral.campaign) == ("deep_link", command.args)
    else:
        assert event.referral is None
    origin = message.forward_origin
    if message.is_automatic_forward and origin is not None:
        assert event.forward_of is not None
        assert event.forward_of.chat_id == str(origin.chat.id)  # type: ignore[union-attr]
        assert event.forward_of.message_id == str(origin.message_id)  # type: ignore[union-attr]
    else:
        assert event.forward_of is None


def _judge_membership(aio: AiogramUpdate, event: Event) -> None:
    change = aio.my_chat_member or aio.chat_member
    assert change is not None
    assert isinstance(event, MembersChanged | ContactStatusChanged | BotMembershipChanged)
    assert event.chat.id == str(change.chat.id)
    if aio.chat_member is not None:
        assert isinstance(event, MembersChanged)
        joined = transition(aio, JOIN_TRANSITION)
        assert event.change is (MembershipChange.JOINED if joined else MembershipChange.LEFT)
        assert [m.id for m in event.members] == [str(change.new_chat_member.user.id)]
        return
    if change.chat.type == "private":
        assert isinstance(event, ContactStatusChanged)
        blocked = change.new_chat_member.status == "kicked"
        assert event.status is (ContactStatus.BLOCKED if blocked else ContactStatus.UNBLOCKED)
        return
    assert isinstance(event, BotMembershipChanged)
    assert (event.old_status, event.new_status) == (
        change.old_chat_member.status,
        change.new_chat_member.status,
    )
    if transition(aio, JOIN_TRANSITION):
        assert event.change is BotMembership.ADDED
    elif transition(aio, LEAVE_TRANSITION):
        assert event.change is BotMembership.REMOVED
    elif transition(aio, PROMOTED_TRANSITION):
        assert event.change is BotMembership.PROMOTED
    elif transition(aio, DEMOTED_TRANSITION):
        assert event.change is BotMembership.DEMOTED
    else:
        assert event.change is BotMembership.RESTRICTED
