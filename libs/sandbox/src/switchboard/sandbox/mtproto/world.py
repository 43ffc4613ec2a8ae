"""The fake cloud's world: users, basic groups, channels and their numbered message boxes.

Message ids follow Telegram: a channel or megagroup numbers its messages in its own box;
private chats and basic groups live in each account's box, so one message sent to a basic
group gets a different id for every member. A `Post` is stored once and referenced from
every box it appears in.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.files import FileStore, decode_data

if TYPE_CHECKING:
    from typing_extensions import Unpack

CHANNEL_MARK = 1_000_000_000_000  # marked channel id = -(CHANNEL_MARK + id), as Telethon does
ID_BASE = 7_000_000_000  # ids above 2**32, so 32-bit assumptions break in tests, not in prod
USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
MAX_TEXT = 4096
MEDIA_KINDS = (
    "photo",
    "video",
    "audio",
    "voice",
    "document",
    "animation",
    "sticker",
    "location",
    "contact",
    "unsupported",
)

# A box holds messages of several peers; this names the peer inside the box.
PeerKey = tuple[str, int]
# (user id, update JSON, connection to skip): how the world hands updates to connections.
Notify = Callable[[int, dict[str, Any], str | None], None]


@dataclass
class Post:
    """One message as stored once; boxes map their local ids to it."""

    uid: int
    date: int
    text: str
    sender_id: int | None
    media: dict[str, Any] | None = None
    reply_to: Post | None = None
    grouped_id: int | None = None
    views: int | None = None
    post_author: str | None = None
    edit_date: int | None = None
    owners: list[int] = field(default_factory=list)  # accounts whose box holds it (non-channel)
    # Its formatting as the Bot API's MessageEntity JSON (type, offset, length, url, ...).
    entities: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class BoxEvent:
    """One change of a box at `pts` (each counts 1): what a client's difference replays."""

    pts: int
    kind: str  # new, edited, deleted
    message_id: int
    key: PeerKey


@dataclass
class Box:
    """A numbered message box: a channel's own, or an account's.

    `pts` counts the box's changes (one per new, edited or deleted message), as Telegram's
    per-channel and per-account update sequences do; `events` keeps them for differences.
    """

    next_id: int = 1
    entries: dict[int, tuple[PeerKey, Post]] = field(default_factory=dict)
    by_peer: dict[PeerKey, list[int]] = field(default_factory=dict)
    local_id: dict[int, int] = field(default_factory=dict)  # post uid -> id in this box
    pts: int = 0  # where the sequence starts, then its last change
    events: list[BoxEvent] = field(default_factory=list)
    start: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.start = self.pts

    def record(self, kind: str, message_id: int, key: PeerKey) -> int:
        """Count one change; its pts."""
        self.pts += 1
        self.events.append(BoxEvent(self.pts, kind, message_id, key))
        return self.pts

    def since(self, pts: int) -> list[BoxEvent]:
        """The changes after `pts`, oldest first."""
        return self.events[max(0, pts - self.start) :]  # event i has pts start + i + 1

    def add(self, key: PeerKey, post: Post) -> int:
        message_id = self.next_id
        self.next_id += 1
        self.entries[message_id] = (key, post)
        self.by_peer.setdefault(key, []).append(message_id)  # ids only grow: stays sorted
        self.local_id[post.uid] = message_id
        self.record("new", message_id, key)
        return message_id

    def remove(self, message_id: int) -> Post | None:
        entry = self.entries.pop(message_id, None)
        if entry is None:
            return None
        key, post = entry
        self.record("deleted", message_id, key)
        ids = self.by_peer.get(key, [])
        at = bisect.bisect_left(ids, message_id)
        if at < len(ids) and ids[at] == message_id:
            del ids[at]
        self.local_id.pop(post.uid, None)
        return post

    def history(self, key: PeerKey, offset_id: int, limit: int, min_id: int) -> list[int]:
        """messages.getHistory: ids < offset_id (if > 0) and > min_id, newest first."""
        ids = self.by_peer.get(key, [])
        hi = bisect.bisect_left(ids, offset_id) if offset_id > 0 else len(ids)
        lo = bisect.bisect_right(ids, min_id)
        start = max(lo, hi - limit)
        return ids[start:hi][::-1] if hi > start else []


@dataclass
class FakeUser:
    """A Telegram account (or a user other accounts talk to)."""

    id: int
    phone: str
    access_hash: int
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    password: str | None = None
    lang_code: str | None = None
    bot: bool = False
    banned: bool = False
    login_code: str | None = None  # fixed "SMS" code for scripted logins (random when None)
    # An account's sequence starts at 1, as Telegram's: clients take pts 0 for "no state".
    box: Box = field(default_factory=lambda: Box(pts=1), repr=False)
    # The account's contact list (user ids): contacts.getContacts, which is how a client
    # finds a user by phone number, and whose phones the account sees.
    contacts: set[int] = field(default_factory=set, repr=False)

    def to_wire(self, viewer: int | None = None) -> dict[str, Any]:
        """The user as `viewer` sees it (the phone only to the account itself)."""
        return {
            "id": self.id,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "phone": self.phone if viewer == self.id else None,
            "bot": self.bot,
            "lang_code": self.lang_code,
        }

    def peer_wire(self) -> dict[str, Any]:
        name = " ".join(p for p in (self.first_name, self.last_name) if p) or None
        return {
            "id": self.id,
            "type": "user",
            "title": name,
            "username": self.username,
            "access_hash": self.access_hash,
        }

    def summary(self) -> dict[str, Any]:
        return {**self.to_wire(self.id), "has_password": bool(self.password), "banned": self.banned}


@dataclass
class FakeGroup:
    """A basic group ("chat"), a broadcast channel or a megagroup."""

    id: int
    type: str  # chat, channel, megagroup
    title: str
    access_hash: int
    username: str | None = None
    creator_id: int | None = None
    admins: set[int] = field(default_factory=set)
    members: set[int] = field(default_factory=set)
    restricted: set[int] = field(default_factory=set)
    box: Box = field(default_factory=Box, repr=False)  # used by channels and megagroups

    @property
    def is_channel(self) -> bool:
        return self.type != "chat"

    @property
    def marked_id(self) -> int:
        return -(CHANNEL_MARK + self.id) if self.is_channel else -self.id

    def peer_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "title": self.title,
            "username": self.username,
            "access_hash": self.access_hash,
        }

    def summary(self) -> dict[str, Any]:
        out = {
            **self.peer_wire(),
            "marked_id": self.marked_id,
            "creator": self.creator_id,
            "admins": sorted(self.admins),
            "members": sorted(self.members),
            "restricted": sorted(self.restricted),
        }
        if self.is_channel:
            out["messages"] = len(self.box.entries)
        return out


Peer = FakeUser | FakeGroup


def normalize_phone(phone: str) -> str:
    """Digits of a phone number (PHONE_NUMBER_INVALID unless 7 to 15 of them)."""
    digits = re.sub(r"[\s()+\-.]", "", str(phone))
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise RpcError("PHONE_NUMBER_INVALID")
    return digits


def _media(data: Any, files: FileStore) -> dict[str, Any] | None:
    """The media dict a post keeps; its `data` (base64 bytes) goes to the file store, so
    the post names the file (`file_id`, `file_size`) and upload.getFile serves it."""
    if data is None:
        return None
    if not isinstance(data, dict) or data.get("kind") not in MEDIA_KINDS:
        raise ValueError(f"media needs a kind among {', '.join(MEDIA_KINDS)}")
    media = dict(data)
    if "data" in media:
        content = decode_data(media.pop("data"))
        media.setdefault("file_id", "file:" + hashlib.sha256(content).hexdigest()[:32])
        media["file_size"] = len(content)
        files.put(str(media["file_id"]), content)
    return media


class UserProfile(TypedDict, total=False):
    """What an account is registered with besides its phone and first name
    (``World.add_user``'s keywords)."""

    last_name: str | None
    username: str | None
    password: str | None
    lang_code: str | None


class PostOptions(TypedDict, total=False):
    """What a message may carry besides its text and sender (``World.post``'s keywords)."""

    reply_to: int | None
    media: dict[str, Any] | None
    grouped_id: int | None
    date: int | None
    views: int | None
    post_author: str | None
    notify: bool
    entities: list[dict[str, Any]] | None


_INVITE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def _check_entities(text: str, entities: list[dict[str, Any]]) -> None:
    """Telegram refuses formatting that reaches outside the text (offsets count UTF-16 code
    units, as a client computes them): ENTITY_BOUNDS_INVALID."""
    size = len(text.encode("utf-16-le")) // 2
    for entity in entities:
        offset, length = int(entity["offset"]), int(entity["length"])
        if offset < 0 or length <= 0 or offset + length > size:
            raise RpcError("ENTITY_BOUNDS_INVALID")


class World:
    """All users, groups and messages of one fake cloud."""

    def __init__(self, seed: int = 0, clock_time: Callable[[], float] | None = None) -> None:
        self.rng = random.Random(f"mtproto:{seed}")
        self.now = clock_time or (lambda: 0.0)
        self.users: dict[int, FakeUser] = {}
        self.groups: dict[int, FakeGroup] = {}
        self.by_phone: dict[str, FakeUser] = {}
        self.by_username: dict[str, Peer] = {}
        self._ids = itertools.count(ID_BASE + self.rng.randrange(1_000_000))
        self._posts = itertools.count(1)
        self.notify: Notify = lambda user_id, update, skip: None
        self.files = FileStore()
        # An invite link's hash -> (the group's id, whether an admin approves each join).
        self.invites: dict[str, tuple[int, bool]] = {}

    # -- creation ---------------------------------------------------------------------

    def _hash(self) -> int:
        return self.rng.randrange(-(2**63), 2**63)

    def _claim_username(self, username: str | None, peer: Peer) -> str | None:
        if not username:
            return None
        name = username.lstrip("@")
        if not USERNAME.match(name):
            raise ValueError(f"invalid username {username!r}")
        if name.lower() in self.by_username:
            raise ValueError(f"username @{name} is taken")
        self.by_username[name.lower()] = peer
        return name

    def add_user(
        self,
        phone: str,
        first_name: str | None = None,
        *,
        bot: bool = False,
        login_code: str | None = None,
        **profile: Unpack[UserProfile],
    ) -> FakeUser:
        try:
            digits = normalize_phone(phone)
        except RpcError as exc:
            raise ValueError(f"invalid phone {phone!r}") from exc
        if digits in self.by_phone:
            raise ValueError(f"a user with phone {digits} exists")
        user = FakeUser(
            id=next(self._ids),
            phone=digits,
            access_hash=self._hash(),
            first_name=first_name or f"User {digits[-4:]}",
            last_name=profile.get("last_name"),
            password=profile.get("password") or None,
            lang_code=profile.get("lang_code"),
            bot=bot,
            login_code=login_code,
        )
        if login_code is not None and not re.fullmatch(r"\d{5}", login_code):
            raise ValueError("code must be 5 digits")
        user.username = self._claim_username(profile.get("username"), user)
        self.users[user.id] = user
        self.by_phone[digits] = user
        return user

    def add_group(
        self,
        kind: str,
        title: str,
        username: str | None = None,
        creator: FakeUser | None = None,
        admins: Iterable[FakeUser] = (),
        members: Iterable[FakeUser] = (),
    ) -> FakeGroup:
        if kind not in ("chat", "channel", "megagroup"):
            raise ValueError("a group is a chat, channel or megagroup")
        if kind == "chat" and username:
            raise ValueError("basic groups have no username")
        group = FakeGroup(id=next(self._ids), type=kind, title=title, access_hash=self._hash())
        group.username = self._claim_username(username, group)
        if creator is not None:
            group.creator_id = creator.id
            group.members.add(creator.id)
        for user in admins:
            group.admins.add(user.id)
            group.members.add(user.id)
        group.members.update(user.id for user in members)
        self.groups[group.id] = group
        return group

    def add_invite(self, group: FakeGroup, *, request_needed: bool = False) -> str:
        """A new invite link's hash (``t.me/+<hash>``) into ``group``; with
        ``request_needed`` a join waits for an admin (INVITE_REQUEST_SENT)."""
        invite = "".join(self.rng.choice(_INVITE_ALPHABET) for _ in range(16))
        self.invites[invite] = (group.id, request_needed)
        return invite

    def invite(self, invite: str) -> tuple[FakeGroup, bool]:
        """The group an invite hash opens and whether joins need approval (KeyError)."""
        group_id, request_needed = self.invites[invite]
        return self.groups[group_id], request_needed

    # -- lookup -----------------------------------------------------------------------

    def user(self, ref: str | int) -> FakeUser:
        """A user by id, phone or @username (KeyError when none)."""
        text = str(ref).strip()
        if text.startswith("@"):
            found = self.by_username.get(text[1:].lower())
            if isinstance(found, FakeUser):
                return found
        elif text.lstrip("+").isdigit():
            number = int(text.lstrip("+"))
            if number in self.users:
                return self.users[number]
            with_phone = self.by_phone.get(text.lstrip("+"))
            if with_phone is not None:
                return with_phone
        else:
            found = self.by_username.get(text.lower())
            if isinstance(found, FakeUser):
                return found
        raise KeyError(f"no user {ref!r}")

    def add_contact(self, owner: str | int, contact: str | int) -> FakeUser:
        """Put ``contact`` in ``owner``'s contact list (both by id, phone or @username)."""
        user, other = self.user(owner), self.user(contact)
        if other.id == user.id:
            raise ValueError("an account is not its own contact")
        user.contacts.add(other.id)
        return other

    def peer(self, ref: str | int) -> Peer:
        """Any peer by @username, marked id or bare id (KeyError when none)."""
        text = str(ref).strip()
        if text.lstrip("-").isdigit():
            number = int(text)
            if number <= -CHANNEL_MARK:
                found = self.groups.get(-number - CHANNEL_MARK)
                if found is not None and found.is_channel:
                    return found
            elif number < 0:
                found = self.groups.get(-number)
                if found is not None and not found.is_channel:
                    return found
            elif number in self.users:
                return self.users[number]
            elif number in self.groups:
                return self.groups[number]
            raise KeyError(f"no peer {ref!r}")
        found_name = self.by_username.get(text.lstrip("@").lower())
        if found_name is None:
            raise KeyError(f"no peer {ref!r}")
        return found_name

    def from_wire(self, data: Any) -> Peer:
        """The peer an RPC names with `{"id", "type", "access_hash"}` (PEER_ID_INVALID...)."""
        if not isinstance(data, dict) or "id" not in data:
            raise RpcError("PEER_ID_INVALID")
        kind, ident, given = data.get("type"), int(data["id"]), data.get("access_hash")
        if kind == "user":
            user = self.users.get(ident)
            if user is None or (given is not None and int(given) != user.access_hash):
                raise RpcError("PEER_ID_INVALID")
            return user
        group = self.groups.get(ident)
        if group is None or (kind == "chat") != (not group.is_channel):
            raise RpcError("CHANNEL_INVALID" if kind != "chat" else "CHAT_ID_INVALID")
        if group.is_channel and given is not None and int(given) != group.access_hash:
            raise RpcError("CHANNEL_INVALID")
        return group

    # -- reading ----------------------------------------------------------------------

    def can_read(self, viewer: FakeUser, peer: Peer) -> None:
        """Raise as Telegram does when `viewer` may not read `peer`'s history."""
        if isinstance(peer, FakeUser):
            return
        if peer.is_channel:
            if viewer.id not in peer.members and not peer.username:
                raise RpcError("CHANNEL_PRIVATE")
        elif viewer.id not in peer.members:
            raise RpcError("CHAT_ID_INVALID")

    def can_see(self, viewer: FakeUser, peer: Peer) -> bool:
        """Whether resolving `peer` by id works for `viewer` (it has met it)."""
        if isinstance(peer, FakeUser):
            return True
        return viewer.id in peer.members or bool(peer.username)

    def box_of(self, viewer: FakeUser, peer: Peer) -> tuple[Box, PeerKey]:
        if isinstance(peer, FakeGroup) and peer.is_channel:
            return peer.box, ("channel", peer.id)
        if isinstance(peer, FakeGroup):
            return viewer.box, ("chat", peer.id)
        return viewer.box, ("user", peer.id)

    def peer_of_key(self, key: PeerKey) -> Peer:
        kind, ident = key
        return self.users[ident] if kind == "user" else self.groups[ident]

    def render(self, viewer: FakeUser | None, box: Box, message_id: int) -> dict[str, Any] | None:
        """The wire message with `message_id` in `box` as `viewer` sees it (None if gone)."""
        entry = box.entries.get(message_id)
        if entry is None:
            return None
        key, post = entry
        peer = self.peer_of_key(key)
        viewer_id = None if viewer is None else viewer.id
        sender = self.users.get(post.sender_id) if post.sender_id is not None else None
        if isinstance(peer, FakeGroup) and peer.type == "channel":
            sender = None  # broadcast posts are signed by the channel (post_author at most)
        reply = box.local_id.get(post.reply_to.uid) if post.reply_to is not None else None
        return {
            "peer": peer.peer_wire(),
            "id": message_id,
            "date": post.date,
            "text": post.text,
            "sender": None if sender is None else sender.to_wire(viewer_id),
            "out": viewer_id is not None and post.sender_id == viewer_id,
            "reply_to_msg_id": reply,
            "edit_date": post.edit_date,
            "media": post.media,
            "grouped_id": post.grouped_id,
            "views": post.views,
            "post_author": post.post_author,
            "entities": post.entities,
        }

    def history(
        self, viewer: FakeUser, peer: Peer, offset_id: int, limit: int, min_id: int
    ) -> list[dict[str, Any]]:
        self.can_read(viewer, peer)
        box, key = self.box_of(viewer, peer)
        out = (self.render(viewer, box, i) for i in box.history(key, offset_id, limit, min_id))
        return [m for m in out if m is not None]

    # -- writing ----------------------------------------------------------------------

    def audience(self, peer: Peer, sender: FakeUser | None) -> list[FakeUser]:
        """Accounts whose own box gets a message sent to a private chat or basic group."""
        if isinstance(peer, FakeUser):
            if sender is None:
                raise ValueError("a private message needs a sender")
            return [sender] if sender.id == peer.id else [sender, peer]
        return [self.users[i] for i in sorted(peer.members) if i in self.users]

    def check_can_send(self, sender: FakeUser, peer: Peer) -> None:
        """Raise as Telegram does when `sender` may not write to `peer`."""
        if isinstance(peer, FakeUser):
            if peer.banned:
                raise RpcError("INPUT_USER_DEACTIVATED")
            return
        if sender.id not in peer.members or sender.id in peer.restricted:
            raise RpcError("CHAT_WRITE_FORBIDDEN")
        if peer.type == "channel" and sender.id != peer.creator_id and sender.id not in peer.admins:
            raise RpcError("CHAT_WRITE_FORBIDDEN")

    def post(
        self,
        peer: Peer,
        sender: FakeUser | None,
        text: str = "",
        *,
        reply_to: int | None = None,
        reply_box_owner: FakeUser | None = None,
        media: dict[str, Any] | None = None,
        grouped_id: int | None = None,
        date: int | None = None,
        views: int | None = None,
        post_author: str | None = None,
        notify: bool = True,
        skip_connection: str | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> dict[int, int]:
        """Store one message; returns {account id: local id} (channels: {0: id}).

        `reply_to` is an id in the box of `reply_box_owner` (the sender by default) or of the
        channel. Connected members get a `new` update unless `notify` is false.
        """
        if len(text) > MAX_TEXT:
            raise RpcError("MESSAGE_TOO_LONG")
        if not text and media is None:
            raise RpcError("MESSAGE_EMPTY")
        _check_entities(text, entities or [])
        if isinstance(peer, FakeGroup) and peer.type == "megagroup" and sender is None:
            raise ValueError("a megagroup message needs a sender")
        post = Post(
            uid=next(self._posts),
            date=int(self.now()) if date is None else int(date),
            text=text,
            sender_id=None if sender is None else sender.id,
            media=_media(media, self.files),
            grouped_id=grouped_id,
            views=views,
            post_author=post_author,
            entities=list(entities or []),
        )
        if isinstance(peer, FakeGroup) and peer.is_channel:
            if reply_to is not None:
                post.reply_to = self._post_at(peer.box, reply_to)
            if peer.type == "channel" and post.views is None:
                post.views = 1
            message_id = peer.box.add(("channel", peer.id), post)
            if notify:
                for member in sorted(peer.members):
                    self._send_update(member, peer.box, message_id, "new", skip_connection)
            return {0: message_id}
        owner = reply_box_owner or sender
        if reply_to is not None and owner is not None:
            post.reply_to = self._post_at(owner.box, reply_to)
        ids: dict[int, int] = {}
        for account in self.audience(peer, sender):
            key: PeerKey = ("chat", peer.id)
            if isinstance(peer, FakeUser):
                # A private chat is filed under the other side (saved messages: oneself).
                assert sender is not None
                key = ("user", peer.id if account.id == sender.id else sender.id)
            ids[account.id] = account.box.add(key, post)
            post.owners.append(account.id)
            if notify:
                self._send_update(account.id, account.box, ids[account.id], "new", skip_connection)
        return ids

    def _post_at(self, box: Box, message_id: int) -> Post | None:
        entry = box.entries.get(message_id)
        return None if entry is None else entry[1]

    def _send_update(
        self, user_id: int, box: Box, message_id: int, kind: str, skip: str | None
    ) -> None:
        viewer = self.users.get(user_id)
        if viewer is None:
            return
        message = self.render(viewer, box, message_id)
        if message is not None:
            update = {"kind": kind, "message": message, "pts": box.pts, "pts_count": 1}
            self.notify(user_id, update, skip)

    def locate(self, peer: Peer, message_id: int, owner: FakeUser | None) -> Post:
        """The post behind `message_id` of `peer` (in `owner`'s box outside channels)."""
        if isinstance(peer, FakeGroup) and peer.is_channel:
            box = peer.box
        elif owner is None:
            raise ValueError("outside channels, say whose message id this is (user)")
        else:
            box = owner.box
        found = self._post_at(box, message_id)
        if found is None:
            raise KeyError(f"no message {message_id}")
        return found

    def _boxes_of(self, post: Post, peer: Peer) -> Iterator[tuple[FakeUser | None, Box]]:
        if isinstance(peer, FakeGroup) and peer.is_channel:
            yield None, peer.box
            return
        for owner in post.owners:
            user = self.users.get(owner)
            if user is not None and post.uid in user.box.local_id:
                yield user, user.box

    def edit(
        self,
        peer: Peer,
        post: Post,
        text: str | None = None,
        media: dict[str, Any] | None = None,
        notify: bool = True,
        entities: list[dict[str, Any]] | None = None,
    ) -> None:
        if text is not None:
            if len(text) > MAX_TEXT:
                raise RpcError("MESSAGE_TOO_LONG")
            _check_entities(text, entities or [])
            post.text = text
            post.entities = list(entities or [])  # a new text comes with its own formatting
        if media is not None:
            post.media = _media(media, self.files)
        post.edit_date = int(self.now())
        for user, box in self._boxes_of(post, peer):
            message_id = box.local_id[post.uid]
            box.record("edited", message_id, box.entries[message_id][0])
            if not notify:
                continue
            members = sorted(peer.members) if user is None and isinstance(peer, FakeGroup) else []
            for account in [user.id] if user is not None else members:
                self._send_update(account, box, message_id, "edited", None)

    def delete(self, peer: Peer, posts: list[Post], notify: bool = True) -> int:
        """Delete for everyone; non-channel deletions name no peer (ids are per account)."""
        deleted = 0
        if isinstance(peer, FakeGroup) and peer.is_channel:
            ids = [peer.box.local_id[p.uid] for p in posts if p.uid in peer.box.local_id]
            for message_id in ids:
                peer.box.remove(message_id)
            deleted = len(ids)
            if notify and ids:
                update = {
                    "kind": "deleted",
                    "ids": ids,
                    "peer": peer.peer_wire(),
                    "pts": peer.box.pts,
                    "pts_count": len(ids),
                }
                for member in sorted(peer.members):
                    self.notify(member, update, None)
            return deleted
        per_user: dict[int, list[int]] = {}
        for post in posts:
            for user, box in list(self._boxes_of(post, peer)):
                assert user is not None
                message_id = box.local_id[post.uid]
                box.remove(message_id)
                per_user.setdefault(user.id, []).append(message_id)
            deleted += 1
        if notify:
            for user_id, ids in per_user.items():
                pts = self.users[user_id].box.pts
                update = {"kind": "deleted", "ids": ids, "peer": None, "pts": pts}
                self.notify(user_id, {**update, "pts_count": len(ids)}, None)
        return deleted
