"""The narrow port between the gateway's logic and Telegram's MTProto.

Everything the gateway decides (leases, the login state machine, paging, flood waits,
reconnects) is written against :class:`MtprotoAdapter` / :class:`MtprotoClient`, whose one
implementation is Telethon (``telethon_adapter``): against Telegram in production, against
the sandbox's wire-level MTProto fake in tests. The types here are plain frozen
dataclasses: no Telethon object ever crosses the port.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from switchboard.mtproto.errors import MtprotoServiceError
from switchboard.runtime.markup import Span

# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class Proxy:
    """A SOCKS5 proxy or an MTProxy (``secret`` set) the session connects through."""

    type: Literal["socks5", "mtproxy"]
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    secret: str | None = None  # MTProxy secret (hex)


@dataclass(frozen=True, slots=True)
class Device:
    """What Telegram shows in the account's list of active sessions."""

    device_model: str = "Switchboard"
    system_version: str = "Linux"
    app_version: str = "1.0"
    lang_code: str = "en"
    system_lang_code: str = "en"


@dataclass(frozen=True, slots=True)
class ChannelPts:
    """Where one channel's update sequence stood; the access hash is what lets the client
    ask for the channel's difference in a new process."""

    channel_id: int
    pts: int
    access_hash: int


@dataclass(frozen=True, slots=True)
class UpdateState:
    """Where the account's update sequences stood (``updates.getState`` plus a pts per
    channel): a client given it asks for the difference since then on connect, so what
    happened while no instance held the session (edits and deletions too) still arrives."""

    pts: int
    qts: int
    date: int  # unix seconds
    seq: int
    channels: tuple[ChannelPts, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "pts": self.pts,
            "qts": self.qts,
            "date": self.date,
            "seq": self.seq,
            "channels": [[c.channel_id, c.pts, c.access_hash] for c in self.channels],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UpdateState:
        """From :meth:`to_json` (ValueError when it is not one)."""
        try:
            channels = tuple(ChannelPts(int(c), int(p), int(h)) for c, p, h in data["channels"])
            return cls(int(data["pts"]), int(data["qts"]), int(data["date"]), int(data["seq"]),
                       channels)  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an update state: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How to open one user session. ``session`` is a Telethon ``StringSession`` string
    ("" before login); it is decrypted only in memory, just before connecting.
    ``update_state`` is where the last holder of the session stood (None: start from now)."""

    session_id: str
    api_id: int
    api_hash: str
    session: str = ""
    device: Device = field(default_factory=Device)
    proxy: Proxy | None = None
    update_state: UpdateState | None = None


# --------------------------------------------------------------------------- data


class PeerType(StrEnum):
    USER = "user"
    CHAT = "chat"  # basic group
    CHANNEL = "channel"  # broadcast channel
    MEGAGROUP = "megagroup"  # supergroup


@dataclass(frozen=True, slots=True)
class Peer:
    """A user, group or channel as MTProto identifies it (``id`` is the bare positive id)."""

    id: int
    type: PeerType
    title: str | None = None
    username: str | None = None
    access_hash: int | None = None


@dataclass(frozen=True, slots=True)
class User:
    """A Telegram user (the account itself, or a message's author)."""

    id: int
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None  # digits only, when visible
    bot: bool = False
    lang_code: str | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """A message's media, reduced to what ``conv.*`` content needs."""

    kind: Literal[
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
    ]
    file_id: str | None = None  # a stable reference: "<type>:<id>:<access_hash>"
    mime_type: str | None = None
    file_size: int | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    provider_kind: str | None = None  # the MTProto constructor name when unsupported


@dataclass(frozen=True, slots=True)
class Message:
    """One message in a peer's history. ``id`` is per peer (per channel for channels)."""

    peer: Peer
    id: int
    date: datetime
    text: str = ""
    sender: User | None = None  # None for channel posts signed by the channel
    out: bool = False  # sent by this account
    reply_to_msg_id: int | None = None
    edit_date: datetime | None = None
    media: Media | None = None
    grouped_id: int | None = None
    views: int | None = None
    post_author: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMedia:
    """Media to send as the user: a file by URL (Telegram fetches it) or by its bytes
    (uploaded), or a location. ``kind`` is the content kind of ``outbound.send``."""

    kind: Literal["photo", "video", "audio", "voice", "document", "animation", "location"]
    url: str | None = None
    data: bytes | None = None
    file_name: str | None = None
    mime_type: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    message: Message


@dataclass(frozen=True, slots=True)
class MessageEdited:
    message: Message


@dataclass(frozen=True, slots=True)
class MessagesDeleted:
    """Deleted ids. MTProto names the peer only for channels; for private chats and basic
    groups ``peer`` is None and the ids are unique per account."""

    ids: tuple[int, ...]
    peer: Peer | None = None


@dataclass(frozen=True, slots=True)
class OutboxRead:
    """The peer read this account's messages in its chat up to ``max_id``
    (updateReadHistoryOutbox / updateReadChannelOutbox)."""

    peer: Peer
    max_id: int


Update = NewMessage | MessageEdited | MessagesDeleted | OutboxRead


@dataclass(frozen=True, slots=True)
class SentCode:
    """The answer to ``send_code``: what ``sign_in`` needs next."""

    phone_code_hash: str
    type: str = "app"  # app, sms, call, flash_call, ...
    timeout_s: int | None = None


# --------------------------------------------------------------------------- errors


class MtprotoError(MtprotoServiceError):
    """A failure Telegram reported; ``reason`` is the RPC error name (``FLOOD_WAIT_X``...)."""

    reason: str = "MTPROTO_ERROR"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or (reason or self.reason))
        if reason is not None:
            self.reason = reason


class FloodWaitError(MtprotoError):
    """420 FLOOD_WAIT_X: do not repeat the request for ``seconds``."""

    reason = "FLOOD_WAIT"

    def __init__(self, seconds: int) -> None:
        super().__init__(f"flood wait of {seconds}s", reason=f"FLOOD_WAIT_{seconds}")
        self.seconds = seconds


class AuthKeyDuplicatedError(MtprotoError):
    """406 AUTH_KEY_DUPLICATED: the auth key was used from two connections at once and
    Telegram has destroyed it for good; the session must log in again."""

    reason = "AUTH_KEY_DUPLICATED"


class AuthKeyUnregisteredError(MtprotoError):
    """401 AUTH_KEY_UNREGISTERED / SESSION_REVOKED: logged out elsewhere or never signed in."""

    reason = "AUTH_KEY_UNREGISTERED"


class UserDeactivatedError(MtprotoError):
    """401 USER_DEACTIVATED(_BAN): the account is banned or deleted."""

    reason = "USER_DEACTIVATED"


class PhoneNumberInvalidError(MtprotoError):
    reason = "PHONE_NUMBER_INVALID"


class PhoneNumberBannedError(MtprotoError):
    reason = "PHONE_NUMBER_BANNED"


class PhoneNumberUnoccupiedError(MtprotoError):
    """No Telegram account uses the number (sign up in a Telegram app first)."""

    reason = "PHONE_NUMBER_UNOCCUPIED"


class PhoneCodeInvalidError(MtprotoError):
    reason = "PHONE_CODE_INVALID"


class PhoneCodeExpiredError(MtprotoError):
    reason = "PHONE_CODE_EXPIRED"


class PasswordNeededError(MtprotoError):
    """SESSION_PASSWORD_NEEDED: the account has two-step verification; send the password."""

    reason = "SESSION_PASSWORD_NEEDED"


class PasswordInvalidError(MtprotoError):
    reason = "PASSWORD_HASH_INVALID"


class PeerNotFoundError(MtprotoError):
    """The username or id does not resolve, or the account cannot see the peer."""

    reason = "PEER_ID_INVALID"


class ChatWriteForbiddenError(MtprotoError):
    reason = "CHAT_WRITE_FORBIDDEN"


class JoinRefusedError(MtprotoError):
    """Telegram would not add the account to a channel: at its limit of channels
    (CHANNELS_TOO_MUCH), or the channel takes members on an admin's approval
    (INVITE_REQUEST_SENT: the request waits there)."""

    reason = "CHANNELS_TOO_MUCH"


class DisconnectedError(MtprotoError):
    """The connection dropped (network, server restart); reconnect with backoff."""

    reason = "DISCONNECTED"


# RPC error names (as Telegram sends them, and Telethon names its classes) -> port errors.
_WAIT = re.compile(r"^(?:FLOOD_WAIT|FLOOD_PREMIUM_WAIT)_(\d+)$")
_ERRORS: dict[str, type[MtprotoError]] = {
    "AUTH_KEY_DUPLICATED": AuthKeyDuplicatedError,
    "AUTH_KEY_UNREGISTERED": AuthKeyUnregisteredError,
    "AUTH_KEY_INVALID": AuthKeyUnregisteredError,
    "AUTH_KEY_PERM_EMPTY": AuthKeyUnregisteredError,
    "SESSION_REVOKED": AuthKeyUnregisteredError,
    "SESSION_EXPIRED": AuthKeyUnregisteredError,
    "USER_DEACTIVATED": UserDeactivatedError,
    "USER_DEACTIVATED_BAN": UserDeactivatedError,
    "PHONE_NUMBER_INVALID": PhoneNumberInvalidError,
    "PHONE_NUMBER_BANNED": PhoneNumberBannedError,
    "PHONE_NUMBER_UNOCCUPIED": PhoneNumberUnoccupiedError,
    "PHONE_CODE_INVALID": PhoneCodeInvalidError,
    "PHONE_CODE_EMPTY": PhoneCodeInvalidError,
    "PHONE_CODE_EXPIRED": PhoneCodeExpiredError,
    "PHONE_CODE_HASH_EMPTY": PhoneCodeExpiredError,
    "SESSION_PASSWORD_NEEDED": PasswordNeededError,
    "PASSWORD_HASH_INVALID": PasswordInvalidError,
    "PEER_ID_INVALID": PeerNotFoundError,
    "USERNAME_NOT_OCCUPIED": PeerNotFoundError,
    "USERNAME_INVALID": PeerNotFoundError,
    "CHANNEL_INVALID": PeerNotFoundError,
    "CHANNEL_PRIVATE": PeerNotFoundError,
    "CHAT_ID_INVALID": PeerNotFoundError,
    "CHAT_WRITE_FORBIDDEN": ChatWriteForbiddenError,
    "CHAT_ADMIN_REQUIRED": ChatWriteForbiddenError,
    "USER_BANNED_IN_CHANNEL": ChatWriteForbiddenError,
    "CHAT_RESTRICTED": ChatWriteForbiddenError,
    "INVITE_HASH_INVALID": PeerNotFoundError,
    "INVITE_HASH_EXPIRED": PeerNotFoundError,
    "INVITE_HASH_EMPTY": PeerNotFoundError,
    "CHANNELS_TOO_MUCH": JoinRefusedError,
    "USER_CHANNELS_TOO_MUCH": JoinRefusedError,
    "INVITE_REQUEST_SENT": JoinRefusedError,
    "USERS_TOO_MUCH": JoinRefusedError,
    "CONNECTION_CLOSED": DisconnectedError,
}


def error_from_rpc(name: str, message: str = "") -> MtprotoError:
    """The port's exception for an RPC error name, as Telethon would raise it."""
    wait = _WAIT.match(name)
    if wait:
        return FloodWaitError(int(wait.group(1)))
    cls = _ERRORS.get(name)
    if cls is None:
        return MtprotoError(message or name, reason=name)
    if cls.reason == name:
        return cls(message or name)
    return cls(message or name, reason=name)


# --------------------------------------------------------------------------- ports


class MtprotoClient(Protocol):
    """One user session's connection. Calls raise the errors above."""

    async def connect(self) -> None:
        """Open the connection (raises AuthKeyDuplicatedError, DisconnectedError, ...)."""

    async def disconnect(self) -> None:
        """Close the connection; idempotent."""

    def is_connected(self) -> bool: ...

    async def is_authorized(self) -> bool: ...

    def export_session(self) -> str:
        """The current ``StringSession`` string (auth key, DC): encrypt before storing."""

    def update_state(self) -> UpdateState | None:
        """Where the update sequences stand now; None before the client has one, and while
        updates it received wait to be read from :meth:`updates` (it is ahead of them)."""

    async def get_me(self) -> User: ...

    async def send_code(self, phone: str) -> SentCode: ...

    async def sign_in_code(self, phone: str, code: str, phone_code_hash: str) -> User:
        """Raises PasswordNeededError when two-step verification is on."""

    async def sign_in_password(self, password: str) -> User: ...

    async def log_out(self) -> None:
        """Revoke the authorization at Telegram (the auth key stops working)."""

    async def resolve_peer(self, ref: str) -> Peer:
        """``@username``, ``t.me/...`` link or numeric id (marked or bare) -> Peer."""

    async def join_channel(self, peer: Peer) -> bool:
        """Make the account a member of a broadcast channel or supergroup it has not joined,
        as Telegram sends a channel's updates to its members only. True if it joined, False
        if it was a member already (raises JoinRefusedError, PeerNotFoundError,
        ChatWriteForbiddenError when banned there)."""

    async def leave(self, peer: Peer) -> None:
        """Leave a channel, supergroup or basic group (already out: nothing happens)."""

    async def join_invite(self, invite: str) -> tuple[Peer, bool]:
        """The group or channel an invite link's hash opens, the account made a member of
        it: the peer, and True if it joined (False: a member already). Raises
        PeerNotFoundError for a link that is unknown or expired, JoinRefusedError as
        join_channel."""

    async def get_history(
        self, peer: Peer, *, offset_id: int = 0, limit: int = 100, min_id: int = 0
    ) -> list[Message]:
        """Messages older than ``offset_id`` (0 = newest), newest first, at most ``limit``
        (<= 100) and newer than ``min_id``."""

    async def get_messages(self, peer: Peer, ids: list[int]) -> list[Message | None]:
        """Messages by id (None where deleted or missing), in the order asked."""

    async def send_message(
        self, peer: Peer, text: str, *, reply_to: int | None = None, spans: Sequence[Span] = ()
    ) -> Message:
        """Send a text; ``spans`` format it (bold, links, ...: what a Bot API parse mode
        means, ``switchboard.runtime.markup.spans``), sent as Telegram's message entities."""

    async def edit_message(
        self, peer: Peer, message_id: int, text: str, *, spans: Sequence[Span] = ()
    ) -> Message:
        """Change the text (or a media message's caption) of a message the account sent."""

    async def delete_messages(self, peer: Peer, ids: Sequence[int]) -> int:
        """Delete messages for everyone; how many Telegram deleted (0: none were there)."""

    async def send_media(
        self,
        peer: Peer,
        media: OutgoingMedia,
        *,
        caption: str | None = None,
        reply_to: int | None = None,
        spans: Sequence[Span] = (),
    ) -> Message:
        """Send a photo, video, audio, voice note, document or location (``send_file``)."""

    def updates(self) -> AsyncIterator[Update]:
        """Live updates while connected; the iterator ends (or raises DisconnectedError) when the
        connection drops."""


class MtprotoAdapter(Protocol):
    """Makes clients: the Telethon adapter in production, the sandbox fake in tests."""

    def client(self, config: SessionConfig) -> MtprotoClient: ...
