"""Telegram Update -> conversation events. Pure: same update in, same events out (ids are
derived from the RAW id, itself derived from ``(bot, update_id)``).

The sender is who Telegram means (``telegram_people``: ``sender_chat`` first, placeholders
never); service messages and membership updates are events of their own
(``telegram_service``); ``/start <payload>`` carries its deep link as the referral and an
automatic forward into a discussion group points at its channel post."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, ChatType, MediaFile
from switchboard.events.catalog.conv import (
    AnimationContent,
    AudioContent,
    CallbackReceived,
    ContactContent,
    Content,
    DocumentContent,
    LocationContent,
    MessageEdited,
    MessageReceived,
    PhotoContent,
    PostRef,
    ProviderIds,
    Referral,
    StickerContent,
    TextContent,
    UnsupportedContent,
    UpdateUnsupported,
    VideoContent,
    VoiceContent,
)
from switchboard.ingest.normalize.base import NormalizeError
from switchboard.ingest.normalize.telegram_people import chat_of, message_sender, user_sender
from switchboard.ingest.normalize.telegram_service import (
    bot_member_event,
    chat_member_event,
    is_service,
    service_event,
    ts,
)

_MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")
# Content fields the catalog does not model, in the Bot API's order: an unsupported
# message is named by the one it carries.
_OTHER_CONTENT = (
    "paid_media",
    "story",
    "checklist",
    "dice",
    "game",
    "poll",
    "invoice",
    "successful_payment",
    "refunded_payment",
    "users_shared",
    "chat_shared",
    "gift",
    "unique_gift",
    "passport_data",
    "web_app_data",
    "giveaway",
    "giveaway_winners",
    "checklist_tasks_done",
    "checklist_tasks_added",
)
# Message attributes that are not content (Bot API 10.x): a kind is never named after them.
_NOT_CONTENT = frozenset(
    {
        "message_id", "message_thread_id", "direct_messages_topic", "from", "sender_chat",
        "sender_boost_count", "sender_business_bot", "sender_tag", "date",
        "business_connection_id", "chat", "forward_origin", "is_topic_message",
        "is_automatic_forward", "reply_to_message", "external_reply", "quote",
        "reply_to_story", "reply_to_checklist_task_id", "via_bot", "edit_date",
        "has_protected_content", "is_from_offline", "is_paid_post", "media_group_id",
        "author_signature", "paid_star_count", "link_preview_options", "effect_id",
        "show_caption_above_media", "has_media_spoiler", "reply_markup", "entities",
        "caption", "caption_entities", "suggested_post_info", "forward_from",
        "forward_from_chat", "forward_from_message_id", "forward_signature",
        "forward_sender_name", "forward_date",
    }
)  # fmt: skip
_DEEP_LINK = "/start "
_FileContent = AnimationContent | VideoContent | AudioContent | VoiceContent | DocumentContent
# Message fields that carry one captioned file, in the order they are looked for (animation
# before document: Telegram sends both for GIFs).
_CAPTIONED_FILES: tuple[tuple[str, type[_FileContent]], ...] = (
    ("animation", AnimationContent),
    ("video", VideoContent),
    ("video_note", VideoContent),
    ("audio", AudioContent),
    ("voice", VoiceContent),
    ("document", DocumentContent),
)


def _file(data: dict[str, Any]) -> MediaFile:
    if not data.get("file_id"):
        raise NormalizeError("media without file_id")
    return MediaFile(
        file_id=data["file_id"],
        file_unique_id=data.get("file_unique_id"),
        mime_type=data.get("mime_type"),
        file_size=data.get("file_size"),
        file_name=data.get("file_name"),
        width=data.get("width"),
        height=data.get("height"),
        duration=data.get("duration"),
    )


def content_of(msg: dict[str, Any], raw_id: str) -> Content:
    """The content of a Telegram Message, by the field that is present."""
    caption = msg.get("caption")
    if "text" in msg:
        return TextContent(text=msg["text"])
    if msg.get("photo"):
        sizes = sorted(msg["photo"], key=lambda p: p.get("width", 0) * p.get("height", 0))
        return PhotoContent(
            file=_file(sizes[-1]), sizes=tuple(_file(s) for s in sizes[:-1]), caption=caption
        )
    for field, kind in _CAPTIONED_FILES:
        if field in msg:
            media = msg[field]
            tags = (
                {"title": media.get("title"), "performer": media.get("performer")}
                if kind is AudioContent
                else {}
            )
            return kind(file=_file(media), caption=caption, **tags)
    if "sticker" in msg:
        st = msg["sticker"]
        return StickerContent(file=_file(st), emoji=st.get("emoji"), set_name=st.get("set_name"))
    if "venue" in msg:
        venue = msg["venue"]
        loc = venue.get("location", {})
        return LocationContent(
            latitude=loc["latitude"],
            longitude=loc["longitude"],
            title=venue.get("title"),
            address=venue.get("address"),
        )
    if "location" in msg:
        loc = msg["location"]
        return LocationContent(latitude=loc["latitude"], longitude=loc["longitude"])
    if "contact" in msg:
        c = msg["contact"]
        return ContactContent(
            phone=c["phone_number"],
            first_name=c.get("first_name"),
            last_name=c.get("last_name"),
            user_id=str(c["user_id"]) if c.get("user_id") else None,
            vcard=c.get("vcard"),
        )
    return UnsupportedContent(provider_kind=unknown_kind(msg), raw_ref=raw_id)


def unknown_kind(msg: dict[str, Any]) -> str:
    """The content field of a message the catalog does not model: a known content field if
    present, else the first field that is not a known attribute, else ``unknown``."""
    known = next((k for k in _OTHER_CONTENT if k in msg), None)
    if known is not None:
        return known
    return next((k for k in msg if k not in _NOT_CONTENT), "unknown")


def deep_link(msg: dict[str, Any], chat: Chat) -> Referral | None:
    """``/start <payload>`` in a private chat: the deep link (t.me/bot?start=payload)."""
    text = msg.get("text")
    if chat.type is not ChatType.PRIVATE or not isinstance(text, str):
        return None
    if not text.startswith(_DEEP_LINK):
        return None
    payload = text[len(_DEEP_LINK) :].strip()
    return Referral(source="deep_link", campaign=payload) if payload else None


def forward_of(msg: dict[str, Any]) -> PostRef | None:
    """The channel post an automatic forward into a discussion group copies."""
    if msg.get("is_automatic_forward") is not True:
        return None
    origin = msg.get("forward_origin")
    if isinstance(origin, dict) and isinstance(origin.get("chat"), dict):
        chat_id, message_id = origin["chat"].get("id"), origin.get("message_id")
    else:  # Bot API < 7.0 shape
        source = msg.get("forward_from_chat")
        chat_id = source.get("id") if isinstance(source, dict) else None
        message_id = msg.get("forward_from_message_id")
    if chat_id is None or message_id is None:
        return None
    return PostRef(chat_id=str(chat_id), message_id=str(message_id))


def normalize_update(
    update: Any, *, account: str, raw_id: str, received_at: datetime
) -> list[Event]:
    """The conversation events of one Telegram Update (usually exactly one)."""
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise NormalizeError("not a Telegram Update: no integer update_id")
    update_id = str(update["update_id"])
    try:
        return _normalize(update, account, raw_id, update_id, received_at)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, NormalizeError):
            raise
        raise NormalizeError(f"malformed Telegram update {update_id}: {exc!r}") from None


def _normalize(
    update: dict[str, Any], account: str, raw_id: str, update_id: str, received_at: datetime
) -> list[Event]:
    base: dict[str, Any] = {"channel": Channel.TELEGRAM, "account": account}
    for kind in _MESSAGE_KINDS:
        msg = update.get(kind)
        if msg is None:
            continue
        if not isinstance(msg, dict):
            raise NormalizeError(f"{kind} is not an object")
        ids = ProviderIds(message_id=str(msg["message_id"]), update_id=update_id, raw_id=raw_id)
        if is_service(msg):
            return [service_event(msg, account, ids, received_at)]
        chat = chat_of(msg.get("chat"))
        sender = message_sender(msg, chat)
        content = content_of(msg, raw_id)
        if kind.startswith("edited_"):
            return [
                MessageEdited(
                    **base,
                    chat=chat,
                    provider=ids,
                    received_at=received_at,
                    sender=sender,
                    content=content,
                    edited_at=ts(msg.get("edit_date", msg.get("date"))),
                )
            ]
        reply = msg.get("reply_to_message")
        return [
            MessageReceived(
                **base,
                chat=chat,
                sender=sender,
                content=content,
                provider=ids,
                reply_to=str(reply["message_id"]) if isinstance(reply, dict) else None,
                sent_at=ts(msg["date"]),
                received_at=received_at,
                referral=deep_link(msg, chat),
                forward_of=forward_of(msg),
            )
        ]
    if isinstance(cb := update.get("callback_query"), dict):
        cb_msg = cb.get("message") if isinstance(cb.get("message"), dict) else None
        own_chat = {"id": cb["from"]["id"], "type": "private"}
        chat = chat_of(cb_msg["chat"] if cb_msg else own_chat)
        return [
            CallbackReceived(
                **base,
                chat=chat,
                received_at=received_at,
                provider=ProviderIds(message_id=str(cb["id"]), update_id=update_id, raw_id=raw_id),
                sender=user_sender(cb["from"]),
                callback_id=str(cb["id"]),
                data=cb.get("data"),
                message_id=str(cb_msg["message_id"]) if cb_msg else None,
            )
        ]
    for field, build in (("my_chat_member", bot_member_event), ("chat_member", chat_member_event)):
        if isinstance(member := update.get(field), dict):
            ids = ProviderIds(message_id=f"member:{update_id}", update_id=update_id, raw_id=raw_id)
            return [build(member, account, ids, received_at)]
    kinds = [k for k in update if k != "update_id"]
    return [
        UpdateUnsupported(
            **base,
            provider_kind=kinds[0] if kinds else "empty",
            raw_id=raw_id,
            received_at=received_at,
        )
    ]
