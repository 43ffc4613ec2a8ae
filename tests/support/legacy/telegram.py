"""Telegram Update -> conversation events. Pure: same update in, same events out (ids are
derived from the RAW id, itself derived from ``(bot, update_id)``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, ChatType, MediaFile, Sender
from switchboard.events.catalog.conv import (
    AnimationContent,
    AudioContent,
    CallbackReceived,
    ContactContent,
    ContactStatus,
    ContactStatusChanged,
    Content,
    DocumentContent,
    LocationContent,
    MessageEdited,
    MessageReceived,
    PhotoContent,
    ProviderIds,
    StickerContent,
    TextContent,
    UnsupportedContent,
    UpdateUnsupported,
    VideoContent,
    VoiceContent,
)
from switchboard.ingest.normalize.base import NormalizeError

_CHAT_TYPES = {t.value for t in ChatType}
_MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")


def _ts(value: Any) -> datetime:
    if not isinstance(value, int | float):
        raise NormalizeError(f"date {value!r} is not a unix timestamp")
    return datetime.fromtimestamp(value, UTC)


def _chat(data: Any) -> Chat:
    if not isinstance(data, dict) or "id" not in data:
        raise NormalizeError("message has no chat.id")
    ctype = data.get("type", "unknown")
    title = data.get("title") or " ".join(
        p for p in (data.get("first_name"), data.get("last_name")) if p
    )
    return Chat(
        id=str(data["id"]),
        type=ChatType(ctype) if ctype in _CHAT_TYPES else ChatType.UNKNOWN,
        title=title or None,
        username=data.get("username"),
    )


def _sender(user: Any, chat: Chat) -> Sender:
    if not isinstance(user, dict) or "id" not in user:
        # Channel posts have no `from`: the channel itself speaks.
        return Sender(id=chat.id, username=chat.username, display_name=chat.title)
    names = [user.get("first_name"), user.get("last_name")]
    return Sender(
        id=str(user["id"]),
        username=user.get("username"),
        first_name=user.get("first_name"),
        last_name=user.get("last_name"),
        display_name=" ".join(p for p in names if p) or user.get("username"),
        language_code=user.get("language_code"),
        is_bot=bool(user.get("is_bot", False)),
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
    if "animation" in msg:  # before document: Telegram sends both for GIFs
        return AnimationContent(file=_file(msg["animation"]), caption=caption)
    if "video" in msg:
        return VideoContent(file=_file(msg["video"]), caption=caption)
    if "video_note" in msg:
        return VideoContent(file=_file(msg["video_note"]), caption=caption)
    if "audio" in msg:
        audio = msg["audio"]
        return AudioContent(
            file=_file(audio),
            caption=caption,
            title=audio.get("title"),
            performer=audio.get("performer"),
        )
    if "voice" in msg:
        return VoiceContent(file=_file(msg["voice"]), caption=caption)
    if "document" in msg:
        return DocumentContent(file=_file(msg["document"]), caption=caption)
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
    known = ("message_id", "from", "chat", "date", "sender_chat", "reply_to_message")
    kind = next((k for k in msg if k not in known and not k.startswith("forward")), "unknown")
    return UnsupportedContent(provider_kind=kind, raw_ref=raw_id)


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
        chat = _chat(msg.get("chat"))
        ids = ProviderIds(message_id=str(msg["message_id"]), update_id=update_id, raw_id=raw_id)
        sender = _sender(msg.get("from"), chat)
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
                    edited_at=_ts(msg.get("edit_date", msg.get("date"))),
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
                sent_at=_ts(msg["date"]),
                received_at=received_at,
            )
        ]
    if isinstance(cb := update.get("callback_query"), dict):
        cb_msg = cb.get("message") if isinstance(cb.get("message"), dict) else None
        sender_chat = {"id": cb["from"]["id"], "type": "private"}
        chat = _chat(cb_msg["chat"] if cb_msg else sender_chat)
        return [
            CallbackReceived(
                **base,
                chat=chat,
                received_at=received_at,
                provider=ProviderIds(message_id=str(cb["id"]), update_id=update_id, raw_id=raw_id),
                sender=_sender(cb["from"], chat),
                callback_id=str(cb["id"]),
                data=cb.get("data"),
                message_id=str(cb_msg["message_id"]) if cb_msg else None,
            )
        ]
    if isinstance(member := update.get("my_chat_member"), dict):
        chat = _chat(member["chat"])
        new_status = member.get("new_chat_member", {}).get("status")
        status = (
            ContactStatus.BLOCKED if new_status in ("kicked", "left") else ContactStatus.UNBLOCKED
        )
        return [
            ContactStatusChanged(
                **base,
                chat=chat,
                received_at=received_at,
                sender=_sender(member["from"], chat),
                provider=ProviderIds(
                    message_id=f"member:{update_id}", update_id=update_id, raw_id=raw_id
                ),
                status=status,
                at=_ts(member["date"]),
            )
        ]
    kinds = [k for k in update if k != "update_id"]
    return [
        UpdateUnsupported(
            **base,
            provider_kind=kinds[0] if kinds else "empty",
            raw_id=raw_id,
            received_at=received_at,
        )
    ]
