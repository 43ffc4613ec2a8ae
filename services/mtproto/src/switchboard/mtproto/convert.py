"""Messages read through the port -> ``conv.*`` events (channel ``mtproto``, account = session).

Pure functions. The event id follows from (session, chat, message id) through the catalog's
``message_event_id``, so a live message, its catch-up copy after a reconnect and its
backfilled copy are one event.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from switchboard.events.catalog.common import Channel, Chat, ChatType, MediaFile, Sender
from switchboard.events.catalog.conv import (
    AnimationContent,
    AudioContent,
    ContactContent,
    Content,
    DocumentContent,
    LocationContent,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PhotoContent,
    ProviderIds,
    StickerContent,
    TextContent,
    UnsupportedContent,
    VideoContent,
    VoiceContent,
)
from switchboard.mtproto.ports import Media, Message, Peer, PeerType

_CHAT_TYPES = {
    PeerType.USER: ChatType.PRIVATE,
    PeerType.CHAT: ChatType.GROUP,
    PeerType.CHANNEL: ChatType.CHANNEL,
    PeerType.MEGAGROUP: ChatType.SUPERGROUP,
}
_FILE_KINDS: dict[str, type[Any]] = {
    "photo": PhotoContent,
    "video": VideoContent,
    "audio": AudioContent,
    "voice": VoiceContent,
    "document": DocumentContent,
    "animation": AnimationContent,
    "sticker": StickerContent,
}
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_LINK = re.compile(r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me)/(?:s/)?([A-Za-z0-9_]+)/?$")
# An invite link (``t.me/+<hash>``, formerly ``t.me/joinchat/<hash>``): the hash is
# case-sensitive, and its one spelling keeps the link form so it is never read as a phone.
_INVITE = re.compile(
    r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me)/(?:\+|joinchat/)([A-Za-z0-9_-]{8,64})/?$"
)
INVITE_PREFIX = "https://t.me/+"


def invite_hash(ref: str) -> str | None:
    """The hash of an invite link reference (as :func:`normalize_ref` writes it), else None."""
    return ref.removeprefix(INVITE_PREFIX) if ref.startswith(INVITE_PREFIX) else None


def chat_id(peer: Peer) -> str:
    """The marked id Telegram's Bot API and Telethon use: users as is, basic groups
    ``-<id>``, channels and supergroups ``-100<id>``."""
    if peer.type is PeerType.USER:
        return str(peer.id)
    if peer.type is PeerType.CHAT:
        return f"-{peer.id}"
    return f"-100{peer.id}"


def is_channel(peer: Peer) -> bool:
    """Channels and supergroups number their messages per peer; everything else per account."""
    return peer.type in (PeerType.CHANNEL, PeerType.MEGAGROUP)


def chat_of(peer: Peer) -> Chat:
    return Chat(
        id=chat_id(peer), type=_CHAT_TYPES[peer.type], title=peer.title, username=peer.username
    )


def normalize_ref(ref: str) -> str:
    """One spelling per peer reference: ``@name`` (lower case) for usernames and links,
    digits (with their sign) for ids, ``https://t.me/+<hash>`` for invite links."""
    text = ref.strip()
    if invite := _INVITE.match(text):
        return INVITE_PREFIX + invite.group(1)
    link = _LINK.match(text)
    if link:
        text = link.group(1)
    if re.fullmatch(r"-?[0-9]+", text):
        return text
    name = text.removeprefix("@")
    if _USERNAME.fullmatch(name):
        return "@" + name.lower()
    raise ValueError(f"{ref!r} is not a @username, t.me link, invite link or numeric id")


def peer_json(peer: Peer) -> str:
    data = asdict(peer)
    data["type"] = peer.type.value
    return json.dumps(data)


def peer_from_json(raw: str | None) -> Peer | None:
    if not raw:
        return None
    data = json.loads(raw)
    data["type"] = PeerType(data["type"])
    return Peer(**data)


def sender_of(message: Message) -> Sender:
    user = message.sender
    if user is None:  # a channel post signed by the channel
        title = message.post_author or message.peer.title
        return Sender(id=chat_id(message.peer), username=message.peer.username, display_name=title)
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or None
    return Sender(
        id=str(user.id),
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        display_name=name or user.username,
        phone=user.phone,
        language_code=user.lang_code,
        is_bot=user.bot,
    )


def content_of(message: Message) -> Content:
    """The message's content; a kind the catalog cannot hold becomes ``unsupported``
    (recorded, never dropped)."""
    media = message.media
    caption = message.text or None
    if media is None:
        if message.text:
            return TextContent(text=message.text)
        return UnsupportedContent(provider_kind="empty")
    cls = _FILE_KINDS.get(media.kind)
    if cls is not None and media.file_id:
        return cls(caption=caption, file=_file(media))  # type: ignore[no-any-return]
    if media.kind == "location" and media.latitude is not None and media.longitude is not None:
        return LocationContent(latitude=media.latitude, longitude=media.longitude)
    if media.kind == "contact" and media.phone:
        return ContactContent(
            phone=media.phone, first_name=media.first_name, last_name=media.last_name
        )
    return UnsupportedContent(provider_kind=media.provider_kind or media.kind)


def _file(media: Media) -> MediaFile:
    """The file fields of a Media are MediaFile's own, by name (the rest keep their defaults)."""
    assert media.file_id
    return MediaFile.model_validate(media, from_attributes=True)


def from_others(message: Message) -> bool:
    """Whether a message read in a chat is someone else's, to publish as received: the
    account's own (``out``: typed on another of its devices, or sent through us, whose send
    is recorded as ``conv.message_sent`` already) is no customer's message, in a private chat
    or a group; a broadcast channel's posts are the channel's, whichever admin wrote them."""
    return not message.out or message.peer.type is PeerType.CHANNEL


def received(session_id: str, message: Message, received_at: datetime) -> MessageReceived:
    return MessageReceived(
        **_message(session_id, message),
        reply_to=str(message.reply_to_msg_id) if message.reply_to_msg_id else None,
        sent_at=message.date,
        received_at=received_at,
    )


def edited(session_id: str, message: Message, received_at: datetime) -> MessageEdited:
    return MessageEdited(
        **_message(session_id, message),
        edited_at=message.edit_date or received_at,
        received_at=received_at,
    )


def _message(session_id: str, message: Message) -> dict[str, Any]:
    """What a received and an edited message event both say of the message."""
    return {
        "channel": Channel.MTPROTO,
        "account": session_id,
        "chat": chat_of(message.peer),
        "sender": sender_of(message),
        "content": content_of(message),
        "provider": ProviderIds(message_id=str(message.id)),
    }


def deleted(session_id: str, chat: Chat, ids: list[int], received_at: datetime) -> MessageDeleted:
    """Deleted messages of one chat; the event id is derived from the lowest id."""
    ordered = sorted(ids)
    return MessageDeleted(
        channel=Channel.MTPROTO,
        account=session_id,
        chat=chat,
        provider=ProviderIds(message_id=str(ordered[0])),
        message_ids=tuple(str(i) for i in ordered),
        deleted_at=received_at,
        received_at=received_at,
    )
