"""The fake world's users, groups and rendered messages as Telethon TL objects.

The world renders messages as JSON; this turns them into the constructors Telegram sends.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeAlias

from telethon.tl import types

from switchboard.sandbox.mtproto.files import file_ident, file_reference
from switchboard.sandbox.mtproto.world import FakeGroup, FakeUser, Peer, World

TLPeer: TypeAlias = Any  # types.PeerUser | PeerChat | PeerChannel (Telethon is untyped)


def when(ts: float | int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(int(ts), tz=UTC)


def user_tl(user: FakeUser, viewer: FakeUser | None) -> types.User:
    """The user as `viewer` sees it: the phone only to itself and to accounts that have it
    as a contact."""
    me = viewer is not None and viewer.id == user.id
    contact = viewer is not None and user.id in viewer.contacts
    return types.User(
        id=user.id,
        is_self=me,
        bot=user.bot,
        deleted=user.banned and not me,
        access_hash=user.access_hash,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        phone=user.phone if me or contact else None,
        contact=contact,
        mutual_contact=contact and viewer is not None and viewer.id in user.contacts,
        lang_code=user.lang_code,
        status=types.UserStatusRecently(),
    )


def group_tl(group: FakeGroup, viewer: FakeUser | None) -> types.Channel | types.Chat:
    """A channel or megagroup (types.Channel) or a basic group (types.Chat)."""
    member = viewer is not None and viewer.id in group.members
    creator = viewer is not None and viewer.id == group.creator_id
    if not group.is_channel:
        return types.Chat(
            id=group.id,
            title=group.title,
            photo=types.ChatPhotoEmpty(),
            participants_count=len(group.members),
            date=when(0),
            version=1,
            creator=creator,
            left=not member,
        )
    return types.Channel(
        id=group.id,
        title=group.title,
        photo=types.ChatPhotoEmpty(),
        date=when(0),
        creator=creator,
        left=not member,
        broadcast=group.type == "channel",
        megagroup=group.type == "megagroup",
        access_hash=group.access_hash,
        username=group.username,
        participants_count=len(group.members),
    )


def peer_tl(peer: Peer) -> TLPeer:
    if isinstance(peer, FakeUser):
        return types.PeerUser(user_id=peer.id)
    if peer.is_channel:
        return types.PeerChannel(channel_id=peer.id)
    return types.PeerChat(chat_id=peer.id)


def _peer_of_wire(data: dict[str, Any]) -> TLPeer:
    kind, ident = data["type"], int(data["id"])
    if kind == "user":
        return types.PeerUser(user_id=ident)
    if kind == "chat":
        return types.PeerChat(chat_id=ident)
    return types.PeerChannel(channel_id=ident)


def _media_tl(media: dict[str, Any] | None, date: datetime | None, dc_id: int) -> Any:
    """The MessageMedia of a world media dict; files live on `dc_id` (the fake's own DC, so
    Telethon downloads them on its connection instead of exporting its authorization)."""
    if not media:
        return None
    kind = media.get("kind")
    # Stable across processes (Python's str hash is not), as Telegram's file ids are.
    file_id = str(media.get("file_id") or sorted(media.items()))
    ident = file_ident(file_id)
    reference = file_reference(file_id)
    if kind == "location":
        point = types.GeoPoint(
            long=float(media.get("longitude") or 0.0),
            lat=float(media.get("latitude") or 0.0),
            access_hash=ident,
        )
        return types.MessageMediaGeo(geo=point)
    if kind == "contact":
        return types.MessageMediaContact(
            phone_number=str(media.get("phone") or ""),
            first_name=str(media.get("first_name") or ""),
            last_name=str(media.get("last_name") or ""),
            vcard="",
            user_id=0,
        )
    if kind == "photo":
        size = types.PhotoSize(
            type="x",
            w=int(media.get("width") or 800),
            h=int(media.get("height") or 600),
            size=int(media.get("file_size") or 1),
        )
        photo = types.Photo(
            id=ident,
            access_hash=ident,
            file_reference=reference,
            date=date,
            sizes=[size],
            dc_id=dc_id,
        )
        return types.MessageMediaPhoto(photo=photo)
    if kind == "unsupported":
        return types.MessageMediaUnsupported()
    attributes: list[Any] = []
    if media.get("file_name"):
        attributes.append(types.DocumentAttributeFilename(file_name=str(media["file_name"])))
    duration = float(media.get("duration") or 0)
    if kind in ("audio", "voice"):
        attributes.append(
            types.DocumentAttributeAudio(duration=int(duration), voice=kind == "voice")
        )
    if kind in ("video", "animation"):
        attributes.append(
            types.DocumentAttributeVideo(
                duration=duration, w=int(media.get("width") or 0), h=int(media.get("height") or 0)
            )
        )
    if kind == "animation":
        attributes.append(types.DocumentAttributeAnimated())
    if kind == "sticker":
        attributes.append(
            types.DocumentAttributeSticker(alt="", stickerset=types.InputStickerSetEmpty())
        )
    document = types.Document(
        id=ident,
        access_hash=ident,
        file_reference=reference,
        date=date,
        mime_type=str(media.get("mime_type") or "application/octet-stream"),
        size=int(media.get("file_size") or 1),
        dc_id=dc_id,
        attributes=attributes,
    )
    return types.MessageMediaDocument(
        document=document, voice=kind == "voice", video=kind == "video"
    )


# MTProto's message entities by the Bot API's names for them (how the world stores them).
_ENTITY_TYPES: dict[type[Any], str] = {
    types.MessageEntityBold: "bold",
    types.MessageEntityItalic: "italic",
    types.MessageEntityUnderline: "underline",
    types.MessageEntityStrike: "strikethrough",
    types.MessageEntityCode: "code",
    types.MessageEntityPre: "pre",
    types.MessageEntityTextUrl: "text_link",
    types.MessageEntitySpoiler: "spoiler",
    types.MessageEntityBlockquote: "blockquote",
    types.MessageEntityCustomEmoji: "custom_emoji",
    types.MessageEntityUrl: "url",
    types.MessageEntityMention: "mention",
    types.MessageEntityHashtag: "hashtag",
}
_ENTITY_CLASSES = {name: cls for cls, name in _ENTITY_TYPES.items()}
_ENTITY_FIELDS = {"url": "url", "language": "language", "document_id": "custom_emoji_id"}


def entities_of_tl(entities: Iterable[Any] | None) -> list[dict[str, Any]]:
    """A request's message entities as the world stores them (kinds the fake has no name
    for, such as a mention by user id, are not kept: their words are)."""
    found: list[dict[str, Any]] = []
    for entity in entities or ():
        name = _ENTITY_TYPES.get(type(entity))
        if name is None:
            continue
        item: dict[str, Any] = {"type": name, "offset": entity.offset, "length": entity.length}
        for attr, key in _ENTITY_FIELDS.items():
            if getattr(entity, attr, None) is not None:
                item[key] = getattr(entity, attr)
        found.append(item)
    return found


def _entities_tl(entities: Iterable[dict[str, Any]] | None) -> list[Any] | None:
    made = []
    for item in entities or ():
        cls = _ENTITY_CLASSES.get(str(item.get("type")))
        if cls is None:  # a kind the control API was given that MTProto has no class for
            continue
        extra = {a: item[k] for a, k in _ENTITY_FIELDS.items() if k in item}
        if cls is types.MessageEntityPre:
            extra.setdefault("language", "")
        made.append(cls(offset=int(item["offset"]), length=int(item["length"]), **extra))
    return made or None


def _from_id(peer: dict[str, Any], sender: dict[str, Any] | None, out: bool) -> TLPeer | None:
    """The author, as Telegram names it: never on broadcast posts, and not on incoming
    private messages since layer 119 (the chat is the sender there)."""
    if sender is None or (peer["type"] == "user" and not out):
        return None
    return types.PeerUser(user_id=int(sender["id"]))


def message_tl(message: dict[str, Any], dc_id: int) -> types.Message:
    """A message the world rendered (for one viewer) as types.Message."""
    peer = message["peer"]
    sender = message.get("sender")
    date = when(message["date"])
    broadcast = peer["type"] == "channel"
    reply = message.get("reply_to_msg_id")
    return types.Message(
        id=int(message["id"]),
        peer_id=_peer_of_wire(peer),
        date=date,
        message=message.get("text") or "",
        out=bool(message.get("out")),
        post=broadcast,
        from_id=_from_id(peer, sender, bool(message.get("out"))),
        reply_to=None if reply is None else types.MessageReplyHeader(reply_to_msg_id=int(reply)),
        media=_media_tl(message.get("media"), date, dc_id),
        views=message.get("views"),
        forwards=None if message.get("views") is None else 0,  # TL sets both or neither
        edit_date=when(message.get("edit_date")),
        post_author=message.get("post_author"),
        grouped_id=message.get("grouped_id"),
        entities=_entities_tl(message.get("entities")),
    )


class Entities:
    """Collects the users and chats a result mentions, as Telegram lists them beside it."""

    def __init__(self, world: World, viewer: FakeUser | None, dc_id: int) -> None:
        self.world = world
        self.viewer = viewer
        self.dc_id = dc_id
        self._users: dict[int, FakeUser] = {}
        self._groups: dict[int, FakeGroup] = {}

    def add(self, peer: Peer) -> None:
        if isinstance(peer, FakeUser):
            self._users[peer.id] = peer
        else:
            self._groups[peer.id] = peer

    def add_message(self, message: dict[str, Any]) -> None:
        data = message["peer"]
        kind = (
            "user" if data["type"] == "user" else ("chat" if data["type"] == "chat" else "channel")
        )
        self.add(self.world.peer_of_key((kind, int(data["id"]))))
        sender = message.get("sender")
        if sender is not None and int(sender["id"]) in self.world.users:
            self.add(self.world.users[int(sender["id"])])

    def messages(self, messages: Iterable[dict[str, Any]]) -> list[types.Message]:
        out = []
        for message in messages:
            self.add_message(message)
            out.append(message_tl(message, self.dc_id))
        return out

    @property
    def users(self) -> list[types.User]:
        return [user_tl(u, self.viewer) for u in self._users.values()]

    @property
    def chats(self) -> list[types.Channel | types.Chat]:
        return [group_tl(g, self.viewer) for g in self._groups.values()]

    def updates(self, items: list[Any]) -> types.Updates:
        """``items`` as the Updates a client gets now, with the users and chats collected."""
        return types.Updates(
            updates=items, users=self.users, chats=self.chats, date=when(time.time()), seq=0
        )
