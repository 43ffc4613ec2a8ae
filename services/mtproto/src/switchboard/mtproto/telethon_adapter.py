"""The MTProto port in production: Telethon ``TelegramClient`` behind ``MtprotoAdapter``.

Nothing Telethon-shaped leaves this module: Telethon's RPC errors become the port's errors
(FloodWaitError keeps its seconds), and Telethon messages, entities and events become the
port's frozen dataclasses. The client never sleeps on flood waits
(``flood_sleep_threshold=0``) and never reconnects by itself (``auto_reconnect=False``):
the gateway decides both, because only it knows whether it still holds the session's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import re
import struct
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from telethon import TelegramClient, errors, events, functions, helpers, types, utils
from telethon.crypto import AuthKey, rsa
from telethon.network.connection.tcpmtproxy import (
    ConnectionTcpMTProxyRandomizedIntermediate,
    TcpMTProxy,
)
from telethon.sessions import StringSession

from switchboard.mtproto.convert import INVITE_PREFIX, invite_hash
from switchboard.mtproto.dialogs import Dialog, Found
from switchboard.mtproto.media_fetch import MediaDownload
from switchboard.mtproto.ports import (
    AuthKeyUnregisteredError,
    DisconnectedError,
    FloodWaitError,
    Media,
    Message,
    MessageEdited,
    MessagesDeleted,
    MtprotoError,
    NewMessage,
    OutboxRead,
    OutgoingMedia,
    Peer,
    PeerNotFoundError,
    PeerType,
    Proxy,
    SentCode,
    SessionConfig,
    Update,
    UpdateState,
    User,
    error_from_rpc,
)
from switchboard.mtproto.rpc_metrics import instrument, watch_queue
from switchboard.mtproto.update_state import load_update_state, read_update_state
from switchboard.runtime.markup import Span

T = TypeVar("T")

# Telethon raises one class per RPC error name; invert its table to get the name back.
_NAME_OF: dict[type[BaseException], str] = {
    cls: name for name, cls in errors.rpc_errors_dict.items()
}
_NAME_OF.update({cls: pattern.replace("(\\d+)", "X") for pattern, cls in errors.rpc_errors_re})
_AUTH_KEY_SIZE = 256  # bytes of an MTProto auth key (a 2048-bit number, big-endian)
_UNAUTHORIZED = ("AUTH_KEY_UNREGISTERED", "SESSION_REVOKED", "SESSION_EXPIRED", "USER_DEACTIVATED")


# --------------------------------------------------------------------------- errors


def rpc_name(exc: errors.RPCError) -> str:
    """The Telegram error name behind a Telethon RPC error (``FLOOD_WAIT_17``...)."""
    name = _NAME_OF.get(type(exc))
    if name is None:
        return str(exc.message or type(exc).__name__)
    seconds = getattr(exc, "seconds", None)
    if "X" in name.split("_") and seconds is not None:
        return re.sub(r"(?<=_)X(?=_|$)", str(seconds), name)
    return name


def error_label(exc: BaseException) -> str:
    """A failure's metric label: the RPC error name with any number left as X
    (``FLOOD_WAIT_X``), or the exception's type when Telegram did not answer."""
    if isinstance(exc, errors.RPCError):
        return _NAME_OF.get(type(exc)) or str(exc.message or type(exc).__name__)
    return type(exc).__name__


def map_error(exc: BaseException) -> BaseException:
    """The port's exception for what Telethon raised (the same object if it is not ours)."""
    if isinstance(exc, MtprotoError):
        return exc
    if isinstance(exc, errors.FloodWaitError | errors.FloodPremiumWaitError):
        return FloodWaitError(int(exc.seconds))
    if isinstance(exc, errors.RPCError):
        return error_from_rpc(rpc_name(exc), str(exc))
    if isinstance(exc, errors.AuthKeyNotFound):
        return error_from_rpc("AUTH_KEY_UNREGISTERED", str(exc))
    if isinstance(exc, ConnectionError | OSError | TimeoutError | errors.InvalidBufferError):
        return DisconnectedError(f"{type(exc).__name__}: {exc}")
    return exc


# --------------------------------------------------------------------------- entities


def _username(entity: Any) -> str | None:
    name = getattr(entity, "username", None)
    if name:
        return str(name)
    for extra in getattr(entity, "usernames", None) or []:
        if getattr(extra, "active", False):
            return str(extra.username)
    return None


def map_user(entity: Any) -> User:
    """A Telethon ``User`` -> the port's User (digits-only phone when visible)."""
    return User(
        id=int(entity.id),
        username=_username(entity),
        first_name=getattr(entity, "first_name", None),
        last_name=getattr(entity, "last_name", None),
        phone=getattr(entity, "phone", None) or None,
        bot=bool(getattr(entity, "bot", False)),
        lang_code=getattr(entity, "lang_code", None),
    )


def map_entity(entity: Any) -> Peer:
    """A Telethon ``User``/``Chat``/``Channel`` (or forbidden variants) -> Peer."""
    if isinstance(entity, types.User | types.UserEmpty):
        names = [getattr(entity, "first_name", None), getattr(entity, "last_name", None)]
        return Peer(
            id=int(entity.id),
            type=PeerType.USER,
            title=" ".join(n for n in names if n) or None,
            username=_username(entity),
            access_hash=getattr(entity, "access_hash", None),
        )
    if isinstance(entity, types.Chat | types.ChatForbidden | types.ChatEmpty):
        return Peer(id=int(entity.id), type=PeerType.CHAT, title=getattr(entity, "title", None))
    if isinstance(entity, types.Channel | types.ChannelForbidden):
        return Peer(
            id=int(entity.id),
            type=PeerType.MEGAGROUP if getattr(entity, "megagroup", False) else PeerType.CHANNEL,
            title=getattr(entity, "title", None),
            username=_username(entity),
            access_hash=getattr(entity, "access_hash", None),
        )
    raise PeerNotFoundError(f"not a peer: {type(entity).__name__}")


def input_peer(peer: Peer) -> Any:
    """The InputPeer of a Peer (the access hash is what lets Telegram accept it)."""
    if peer.type is PeerType.USER:
        return types.InputPeerUser(peer.id, peer.access_hash or 0)
    if peer.type is PeerType.CHAT:
        return types.InputPeerChat(peer.id)
    return types.InputPeerChannel(peer.id, peer.access_hash or 0)


def peer_of_tl(tl_peer: Any, entities: Mapping[int, Any], post: bool = False) -> Peer:
    """Peer of a ``PeerUser``/``PeerChat``/``PeerChannel``, named from ``entities`` if known.

    Without the entity a channel is taken for a broadcast channel when the message is a
    ``post`` and for a megagroup otherwise (only broadcast channels sign posts).
    """
    entity = entities.get(utils.get_peer_id(tl_peer))
    if entity is not None:
        return map_entity(entity)
    if isinstance(tl_peer, types.PeerUser):
        return Peer(id=int(tl_peer.user_id), type=PeerType.USER)
    if isinstance(tl_peer, types.PeerChat):
        return Peer(id=int(tl_peer.chat_id), type=PeerType.CHAT)
    kind = PeerType.CHANNEL if post else PeerType.MEGAGROUP
    return Peer(id=int(tl_peer.channel_id), type=kind)


def entities_of(result: Any) -> dict[int, Any]:
    """Marked id -> entity for the ``users`` and ``chats`` of an RPC result."""
    found: dict[int, Any] = {}
    for entity in [*getattr(result, "users", []), *getattr(result, "chats", [])]:
        found[utils.get_peer_id(entity)] = entity
    return found


# --------------------------------------------------------------------------- media


def _file_id(kind: str, obj: Any) -> str:
    return f"{kind}:{obj.id}:{obj.access_hash}"


def _photo(photo: Any) -> Media:
    if not isinstance(photo, types.Photo):
        return Media(kind="photo")
    width = height = size = None
    best = -1
    for item in photo.sizes:
        w, h = getattr(item, "w", None), getattr(item, "h", None)
        if w is None or h is None or w * h <= best:
            continue
        best, width, height = w * h, int(w), int(h)
        sizes = getattr(item, "sizes", None)  # PhotoSizeProgressive
        size = int(max(sizes)) if sizes else getattr(item, "size", None)
        if size is None and isinstance(item, types.PhotoCachedSize):
            size = len(item.bytes)
    return Media(
        kind="photo",
        file_id=_file_id("photo", photo),
        mime_type="image/jpeg",
        file_size=size,
        width=width,
        height=height,
    )


def _document(document: Any) -> Media:
    if not isinstance(document, types.Document):
        return Media(kind="document")
    kind = "document"
    file_name = width = height = duration = None
    attrs = document.attributes or []
    for attr in attrs:
        if isinstance(attr, types.DocumentAttributeFilename):
            file_name = attr.file_name
        elif isinstance(attr, types.DocumentAttributeVideo | types.DocumentAttributeImageSize):
            width, height = attr.w, attr.h
        if isinstance(attr, types.DocumentAttributeVideo | types.DocumentAttributeAudio):
            duration = round(attr.duration) if attr.duration is not None else None
    # The most specific attribute wins: a GIF is a Video *and* Animated, a sticker may be
    # a video sticker.
    if any(isinstance(a, types.DocumentAttributeSticker) for a in attrs):
        kind = "sticker"
    elif any(isinstance(a, types.DocumentAttributeAnimated) for a in attrs):
        kind = "animation"
    elif any(isinstance(a, types.DocumentAttributeAudio) and a.voice for a in attrs):
        kind = "voice"
    elif any(isinstance(a, types.DocumentAttributeAudio) for a in attrs):
        kind = "audio"
    elif any(isinstance(a, types.DocumentAttributeVideo) for a in attrs):
        kind = "video"
    return Media(
        kind=kind,  # type: ignore[arg-type]  # one of the literals above
        file_id=_file_id("document", document),
        mime_type=document.mime_type,
        file_size=int(document.size),
        file_name=file_name,
        width=width,
        height=height,
        duration=duration,
    )


def map_media(media: Any) -> Media | None:
    """A Telethon ``MessageMedia*`` -> Media; link previews are not media (None)."""
    if media is None or isinstance(media, types.MessageMediaEmpty | types.MessageMediaWebPage):
        return None
    if isinstance(media, types.MessageMediaPhoto):
        return _photo(media.photo)
    if isinstance(media, types.MessageMediaDocument):
        return _document(media.document)
    if isinstance(
        media, types.MessageMediaGeo | types.MessageMediaGeoLive | types.MessageMediaVenue
    ):
        geo = media.geo
        if isinstance(geo, types.GeoPoint):
            return Media(kind="location", latitude=float(geo.lat), longitude=float(geo.long))
        return Media(kind="location")
    if isinstance(media, types.MessageMediaContact):
        return Media(
            kind="contact",
            phone=media.phone_number or None,
            first_name=media.first_name or None,
            last_name=media.last_name or None,
        )
    return Media(kind="unsupported", provider_kind=type(media).__name__)


# --------------------------------------------------------------------------- messages


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def map_message(
    msg: Any, entities: Mapping[int, Any] | None = None, peer: Peer | None = None
) -> Message:
    """A Telethon ``Message``/``MessageService`` -> Message.

    ``entities`` (marked id -> entity) name the chat and sender; entities Telethon attached
    to the message (live events) are used too. ``peer`` overrides the chat when known.
    Service messages (joins, pins...) keep their id as "unsupported" media with the action's
    constructor name, so history pages never shrink.
    """
    known: dict[int, Any] = dict(entities or {})
    for attached in (getattr(msg, "_chat", None), getattr(msg, "_sender", None)):
        if attached is not None:
            known.setdefault(utils.get_peer_id(attached), attached)
    post = bool(getattr(msg, "post", False))
    chat = peer or peer_of_tl(msg.peer_id, known, post)
    sender: User | None = None
    from_id = getattr(msg, "from_id", None)
    if from_id is None and isinstance(msg.peer_id, types.PeerUser) and not msg.out:
        from_id = msg.peer_id  # incoming private messages carry no from_id (layer 119+)
    if isinstance(from_id, types.PeerUser):
        entity = known.get(from_id.user_id)
        sender = map_user(entity) if entity is not None else User(id=int(from_id.user_id))
    reply = getattr(msg, "reply_to", None)
    reply_id = getattr(reply, "reply_to_msg_id", None)
    date = _aware(msg.date)
    if date is None:
        raise ValueError("a message without a date")
    if isinstance(msg, types.MessageService):
        media: Media | None = Media(kind="unsupported", provider_kind=type(msg.action).__name__)
        text = ""
    else:
        media, text = map_media(msg.media), msg.message or ""
    return Message(
        peer=chat,
        id=int(msg.id),
        date=date,
        text=text,
        sender=sender,
        out=bool(msg.out),
        reply_to_msg_id=None if reply_id is None else int(reply_id),
        edit_date=_aware(getattr(msg, "edit_date", None)),
        media=media,
        grouped_id=getattr(msg, "grouped_id", None),
        views=getattr(msg, "views", None),
        post_author=getattr(msg, "post_author", None),
    )


def map_event(event: Any, known: Mapping[int, Peer] | None = None) -> Update | None:
    """A Telethon NewMessage / MessageEdited / MessageDeleted / MessageRead event -> Update."""
    if isinstance(event, events.MessageRead.Event):
        if not event.outbox or event.chat_id is None or not event.max_id:
            return None
        bare, kind = utils.resolve_id(event.chat_id)
        peer_type = {types.PeerUser: PeerType.USER, types.PeerChat: PeerType.CHAT}.get(
            kind, PeerType.CHANNEL
        )
        return OutboxRead(Peer(id=bare, type=peer_type), int(event.max_id))
    if isinstance(event, events.MessageDeleted.Event):
        peer = None
        if event.chat_id is not None:  # only channel deletions name their chat
            channel_id, _ = utils.resolve_id(event.chat_id)
            peer = (known or {}).get(channel_id) or Peer(id=channel_id, type=PeerType.CHANNEL)
        return MessagesDeleted(ids=tuple(int(i) for i in event.deleted_ids), peer=peer)
    message = getattr(event, "message", None)
    if message is None:
        return None
    chat_peer = None
    if isinstance(message.peer_id, types.PeerChannel):
        chat_peer = (known or {}).get(int(message.peer_id.channel_id))
    if getattr(message, "_chat", None) is not None:
        chat_peer = None  # Telethon knows the entity: it is the better name
    mapped = map_message(message, peer=chat_peer)
    if isinstance(event, events.MessageEdited.Event):
        return MessageEdited(mapped)
    return NewMessage(mapped)


_SENT_CODE_TYPES = {
    "SentCodeTypeApp": "app",
    "SentCodeTypeSms": "sms",
    "SentCodeTypeCall": "call",
    "SentCodeTypeFlashCall": "flash_call",
    "SentCodeTypeMissedCall": "missed_call",
    "SentCodeTypeEmailCode": "email",
    "SentCodeTypeFragmentSms": "fragment_sms",
    "SentCodeTypeFirebaseSms": "firebase_sms",
}


def map_sent_code(sent: Any) -> SentCode:
    if not hasattr(sent, "phone_code_hash"):
        raise MtprotoError(f"unexpected answer {type(sent).__name__}", reason="SENT_CODE_UNUSABLE")
    kind = type(sent.type).__name__
    return SentCode(
        phone_code_hash=str(sent.phone_code_hash),
        type=_SENT_CODE_TYPES.get(kind, kind),
        timeout_s=sent.timeout,
    )


# --------------------------------------------------------------------------- client


def proxy_arguments(proxy: Proxy | None) -> dict[str, Any]:
    """``TelegramClient`` keyword arguments for a proxy (ValueError when unusable).

    SOCKS5 goes through python-socks (a dict as Telethon's ``_parse_proxy`` takes it);
    MTProxy through ``ConnectionTcpMTProxyRandomizedIntermediate`` with ``(host, port,
    secret)``.
    """
    if proxy is None:
        return {}
    if proxy.type == "socks5":
        if importlib.util.find_spec("python_socks") is None:
            # Telethon would silently connect without the proxy: refuse instead.
            raise ValueError("a SOCKS5 proxy needs the python-socks package")
        return {
            "proxy": {
                "proxy_type": "socks5",
                "addr": proxy.host,
                "port": proxy.port,
                "username": proxy.username,
                "password": proxy.password,
                "rdns": True,
            }
        }
    if proxy.type == "mtproxy":
        if not proxy.secret:
            raise ValueError("an MTProxy needs its secret")
        if len(TcpMTProxy.normalize_secret(proxy.secret)) != 16:
            raise ValueError("an MTProxy secret is 16 bytes in hex (dd/ee prefix allowed)")
        return {
            "connection": ConnectionTcpMTProxyRandomizedIntermediate,
            "proxy": (proxy.host, proxy.port, proxy.secret),
        }
    raise ValueError(f"unknown proxy type {proxy.type!r}")


@dataclass(frozen=True, slots=True)
class DataCenter:
    """A server to use instead of the address a session string carries (and of Telegram's
    DC 2 for a new login): the sandbox's wire-level MTProto fake, whose RSA key (PKCS#1
    PEM) must be trusted too. ``None`` everywhere in production."""

    dc_id: int
    host: str
    port: int
    rsa_public_key: str | None = None

    @classmethod
    def from_descriptor(cls, data: Mapping[str, Any]) -> DataCenter:
        """From the sandbox's ``GET /mtproto/server`` answer (ValueError if incomplete)."""
        try:
            return cls(
                int(data["dc_id"]),
                str(data["host"]),
                int(data["port"]),
                str(data["rsa_public_key"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an MTProto server descriptor: {exc}") from exc


Locator = Callable[[], Awaitable[DataCenter]]


def save_session(session: Any) -> str:
    """``session`` as a StringSession string ("" without a key), its auth key in the 256-byte
    form MTProto defines. Telethon keeps a key made by its own key exchange without leading
    zero bytes (1 key in 256 has one), and StringSession pads a short key at the end: saved as
    it is, that is another key, and the restored session is refused (-404, AuthKeyNotFound).
    A session with no such key is saved exactly as Telethon saves it."""
    key = session.auth_key
    if key is None or key.key is None or len(key.key) >= _AUTH_KEY_SIZE:
        return str(StringSession.save(session) or "")
    whole = StringSession()
    whole.set_dc(session.dc_id, session.server_address, session.port)
    whole.auth_key = AuthKey(key.key.rjust(_AUTH_KEY_SIZE, b"\0"))
    return str(whole.save())


def load_session(text: str) -> StringSession:
    """The StringSession in ``text`` ("" = a new one); a string Telethon cannot read is a
    key that can never be authorized (AUTH_KEY_INVALID), not a fault to retry."""
    try:
        return StringSession(text or None)
    except (ValueError, struct.error) as exc:
        raise AuthKeyUnregisteredError(
            f"not a Telethon session string: {exc}", reason="AUTH_KEY_INVALID"
        ) from exc


def point_at(client: TelegramClient, data_center: DataCenter) -> None:
    """Send ``client`` to ``data_center`` (trusting its RSA key); the auth key stays."""
    if data_center.rsa_public_key:
        rsa.add_key(data_center.rsa_public_key, old=False)
    client.session.set_dc(data_center.dc_id, data_center.host, data_center.port)


def build_client(
    config: SessionConfig, *, request_retries: int = 2, data_center: DataCenter | None = None
) -> TelegramClient:
    """The TelegramClient for one session (no network until ``connect``)."""
    device = config.device
    proxy = proxy_arguments(config.proxy)
    with warnings.catch_warnings():
        # Telethon warns that a proxy "will be ignored" without python-socks even for an
        # MTProxy, which does not use python-socks (SOCKS5 without it is refused above).
        warnings.filterwarnings("ignore", "proxy argument will be ignored")
        client = TelegramClient(
            load_session(config.session),
            config.api_id,
            config.api_hash,
            device_model=device.device_model,
            system_version=device.system_version,
            app_version=device.app_version,
            lang_code=device.lang_code,
            system_lang_code=device.system_lang_code,
            flood_sleep_threshold=0,  # every flood wait reaches the gateway
            auto_reconnect=False,  # the gateway reconnects, and only while it holds the lease
            sequential_updates=True,  # keep NewMessage / MessageEdited in order
            request_retries=request_retries,
            receive_updates=True,
            # A StringSession keeps no update state: the gateway stores it and hands it back,
            # and with it Telethon asks for the difference since then on connect.
            catch_up=config.update_state is not None,
            **proxy,
        )
    if config.update_state is not None:
        load_update_state(client.session, config.update_state)
    if data_center is not None:  # keeps the auth key: only the address changes
        point_at(client, data_center)
    return client


_DEFAULT_NAMES = {
    "photo": "photo.jpg",
    "video": "video.mp4",
    "animation": "animation.mp4",
    "audio": "audio.mp3",
    "voice": "voice.ogg",
    "document": "document.bin",
}


def telethon_file(media: OutgoingMedia) -> Any:
    """What ``send_file`` takes for ``media``: an InputMedia for a location or a URL
    (Telegram fetches the URL itself), else a named stream of the bytes to upload."""
    if media.kind == "location":
        if media.latitude is None or media.longitude is None:
            raise ValueError("a location needs latitude and longitude")
        return types.InputMediaGeoPoint(types.InputGeoPoint(media.latitude, media.longitude))
    if media.url is not None:
        if media.kind == "photo":
            return types.InputMediaPhotoExternal(media.url)
        return types.InputMediaDocumentExternal(media.url)
    if media.data is None:
        raise ValueError(f"{media.kind} needs a url or data")
    stream = io.BytesIO(media.data)
    stream.name = media.file_name or _DEFAULT_NAMES[media.kind]
    return stream


def media_attributes(media: OutgoingMedia) -> list[Any] | None:
    """The document attributes that make an upload play as its kind (Telethon would guess
    them from the file name and its metadata, which uploaded bytes may lack)."""
    if media.url is not None or media.data is None:
        return None
    if media.kind in ("video", "animation"):
        attributes: list[Any] = [types.DocumentAttributeVideo(0, 1, 1)]
        if media.kind == "animation":
            attributes.append(types.DocumentAttributeAnimated())
        return attributes
    if media.kind in ("audio", "voice"):
        return [types.DocumentAttributeAudio(0, voice=media.kind == "voice")]
    return None


_ENTITIES: dict[str, Callable[[int, int], Any]] = {
    "bold": types.MessageEntityBold,
    "italic": types.MessageEntityItalic,
    "underline": types.MessageEntityUnderline,
    "strike": types.MessageEntityStrike,
    "code": types.MessageEntityCode,
    "spoiler": types.MessageEntitySpoiler,
    "quote": types.MessageEntityBlockquote,
}


def formatting(text: str, spans: Sequence[Span]) -> tuple[str, list[Any]]:
    """``text`` and its spans as MTProto's message entities, trimmed as Telegram trims a
    message (Telethon's own ``strip_text``, which its parse modes use). A span Telegram has
    no entity for (a custom emoji without its id) is dropped: its words stay."""
    entities: list[Any] = []
    for span in spans:
        if span.kind == "pre":
            entities.append(types.MessageEntityPre(span.offset, span.length, span.value or ""))
        elif span.kind == "link" and span.value:
            entities.append(types.MessageEntityTextUrl(span.offset, span.length, span.value))
        elif span.kind == "emoji" and (span.value or "").isdigit():
            entities.append(
                types.MessageEntityCustomEmoji(span.offset, span.length, int(span.value or 0))
            )
        elif span.kind in _ENTITIES:
            entities.append(_ENTITIES[span.kind](span.offset, span.length))
    if entities:  # offsets count UTF-16 units: strip_text works on surrogate pairs
        text = helpers.del_surrogate(helpers.strip_text(helpers.add_surrogate(text), entities))
    return text, entities


class _Closed:
    def __init__(self, error: MtprotoError | None) -> None:
        self.error = error


class TelethonClient:
    """One session on Telethon, speaking the port."""

    def __init__(self, config: SessionConfig, options: TelethonAdapter) -> None:
        self.config = config
        self._locate = options.locate
        self._timeout = options.timeout
        self._client = build_client(
            config, request_retries=options.request_retries, data_center=options.data_center
        )
        self._queue: asyncio.Queue[Update | _Closed] = asyncio.Queue()
        self._closing = False
        self._peers: dict[int, Peer] = {}  # channel id -> Peer, to name channel deletions
        self._handlers: list[tuple[Callable[[Any], Awaitable[None]], Any]] = []
        instrument(self._client, error_label)
        watch_queue(self)

    async def _run(self, call: Awaitable[T]) -> T:
        """Await a Telethon call with the timeout, raising the port's errors."""
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except TimeoutError as exc:
            raise DisconnectedError(f"no answer within {self._timeout}s") from exc
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this task was cancelled
            # Telethon cancelled the request itself: its connection went down under the call
            # (its update loop disconnects when the difference says the account is banned or
            # the key unauthorized). That is an answer, not a cancel of the session's work:
            # raised as one, it ended the session's runner silently, over and over.
            raise self._updates_error() or DisconnectedError("the connection closed") from exc
        except Exception as exc:
            mapped = map_error(exc)
            if mapped is exc:
                raise
            if isinstance(mapped, DisconnectedError) and (why := self._updates_error()):
                raise why from exc
            raise mapped from exc

    def _updates_error(self) -> MtprotoError | None:
        """Why Telethon dropped the connection itself: its update loop disconnects when the
        difference it fetches on connect says the key is unauthorized or the account banned
        (``_updates_error``); that, not "disconnected", is the answer to the call."""
        error = getattr(self._client, "_updates_error", None)
        mapped = map_error(error) if isinstance(error, BaseException) else None
        return mapped if isinstance(mapped, MtprotoError) else None

    # -- connection -------------------------------------------------------------------

    async def connect(self) -> None:
        if self._client.is_connected():
            return
        self._queue = asyncio.Queue()
        self._closing = False
        if self._locate is not None:
            point_at(self._client, await self._run(self._locate()))
        # Handlers first: the difference fetched on connect is dispatched to them.
        self._install_handlers()
        await self._run(self._client.connect())
        self._client.disconnected.add_done_callback(self._on_disconnected)
        state = self.config.update_state
        if state is not None and state.channels:
            # Telethon asks for the account's difference by itself; a channel's only on a
            # gap or after 15 idle minutes. Mark each known channel as having a gap now.
            box = self._client._message_box
            for channel in state.channels:
                box.try_begin_get_diff(channel.channel_id, "catch up after reconnect")
            await self._client.catch_up()  # wakes the update loop

    def _install_handlers(self) -> None:
        if self._handlers:
            return

        async def on_event(event: Any) -> None:
            update = map_event(event, self._peers)
            if update is not None:
                self._queue.put_nowait(update)

        for builder in (
            events.NewMessage(),
            events.MessageEdited(),
            events.MessageDeleted(),
            events.MessageRead(inbox=False),  # our messages read by their recipients
        ):
            self._client.add_event_handler(on_event, builder)
            self._handlers.append((on_event, builder))

    def _on_disconnected(self, future: asyncio.Future[Any]) -> None:
        if self._closing:
            return
        error: MtprotoError = self._updates_error() or DisconnectedError(
            "the connection to Telegram dropped"
        )
        if not future.cancelled() and future.exception() is not None:
            mapped = map_error(future.exception() or Exception())
            if isinstance(mapped, MtprotoError):
                error = mapped
        self._queue.put_nowait(_Closed(error))

    async def disconnect(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timeout):
                await self._client.disconnect()
        self._queue.put_nowait(_Closed(None))

    def is_connected(self) -> bool:
        return bool(self._client.is_connected())

    def export_session(self) -> str:
        return save_session(self._client.session) or self.config.session

    def update_state(self) -> UpdateState | None:
        if not self._queue.empty():  # the state is ahead of updates not yet read
            return None
        return read_update_state(self._client)

    # -- account ----------------------------------------------------------------------

    async def is_authorized(self) -> bool:
        """True when the key is signed in; False for 401s (not signed in, revoked, banned,
        password pending); other errors (AUTH_KEY_DUPLICATED, flood...) are raised."""
        try:
            await self._run(self._client(functions.updates.GetStateRequest()))
        except MtprotoError as exc:
            if exc.reason.startswith(_UNAUTHORIZED) or exc.reason == "SESSION_PASSWORD_NEEDED":
                return False
            raise
        return True

    async def get_me(self) -> User:
        users = await self._run(
            self._client(functions.users.GetUsersRequest([types.InputUserSelf()]))
        )
        return map_user(users[0])

    async def send_code(self, phone: str) -> SentCode:
        return map_sent_code(await self._run(self._client.send_code_request(phone)))

    async def sign_in_code(self, phone: str, code: str, phone_code_hash: str) -> User:
        user = await self._run(
            self._client.sign_in(phone=phone, code=code, phone_code_hash=phone_code_hash)
        )
        return map_user(user)

    async def sign_in_password(self, password: str) -> User:
        return map_user(await self._run(self._client.sign_in(password=password)))

    async def log_out(self) -> None:
        # Not client.log_out(): it swallows RPC errors and returns False.
        await self._run(self._client(functions.auth.LogOutRequest()))

    # -- peers and messages -----------------------------------------------------------

    def _remember(self, peer: Peer) -> Peer:
        if peer.type in (PeerType.CHANNEL, PeerType.MEGAGROUP):
            self._peers[peer.id] = peer
        return peer

    async def resolve_peer(self, ref: str) -> Peer:
        if (invite := invite_hash(ref.strip())) is not None:
            found = await self._invite(invite)
            if found is None:
                raise PeerNotFoundError(f"{ref}: not a member yet (subscribe with it to join)")
            return found
        text = ref.strip()
        target: str | int = int(text) if re.fullmatch(r"-?\d+", text) else text
        try:
            entity = await self._run(self._client.get_entity(target))
        except ValueError as exc:
            # Telethon's "Could not find the input entity" / "No user has ... as username".
            raise PeerNotFoundError(str(exc)) from exc
        return self._remember(map_entity(entity))

    async def join_channel(self, peer: Peer) -> bool:
        # The channel is read again, not taken from the entity cache: whether the account
        # has left is the point, and Telethon's cache keeps what it was when first seen.
        channel = types.InputChannel(peer.id, peer.access_hash or 0)
        found = await self._run(self._client(functions.channels.GetChannelsRequest([channel])))
        if any(isinstance(c, types.Channel) and not c.left for c in found.chats):
            return False
        await self._run(self._client(functions.channels.JoinChannelRequest(channel)))
        return True

    async def _check_invite(self, invite: str) -> Any:
        """What an invite link opens (``messages.checkChatInvite``): the chat for a member
        (ChatInviteAlready), a channel's preview (ChatInvitePeek), else a ChatInvite."""
        return await self._run(self._client(functions.messages.CheckChatInviteRequest(invite)))

    async def _invite(self, invite: str) -> Peer | None:
        """The chat an invite link opens, if the account may read it (a member, or a
        channel's preview); None when it must join first."""
        found = await self._check_invite(invite)
        if isinstance(found, types.ChatInviteAlready | types.ChatInvitePeek):
            return self._remember(map_entity(found.chat))
        return None

    async def leave(self, peer: Peer) -> None:
        if peer.type is PeerType.CHAT:
            request: Any = functions.messages.DeleteChatUserRequest(
                peer.id, types.InputUserSelf(), revoke_history=False
            )
        elif peer.type in (PeerType.CHANNEL, PeerType.MEGAGROUP):
            request = functions.channels.LeaveChannelRequest(
                types.InputChannel(peer.id, peer.access_hash or 0)
            )
        else:
            return
        try:
            await self._run(self._client(request))
        except MtprotoError as exc:
            # Out already (left by hand, removed, the chat gone): what leaving wanted.
            if exc.reason not in ("USER_NOT_PARTICIPANT", "CHANNEL_PRIVATE", "CHAT_ID_INVALID"):
                raise

    async def join_invite(self, invite: str) -> tuple[Peer, bool]:
        checked = await self._check_invite(invite)
        if isinstance(checked, types.ChatInviteAlready):
            return self._remember(map_entity(checked.chat)), False
        try:
            result = await self._run(
                self._client(functions.messages.ImportChatInviteRequest(invite))
            )
        except MtprotoError as exc:
            # Joined meanwhile (on another of the account's devices): the chat, as a member.
            if exc.reason == "USER_ALREADY_PARTICIPANT" and (found := await self._invite(invite)):
                return found, False
            raise
        chat = next(iter(getattr(result, "chats", [])), None)
        if chat is None:
            raise PeerNotFoundError(f"joining {INVITE_PREFIX}{invite} named no chat")
        return self._remember(map_entity(chat)), True

    async def get_history(
        self, peer: Peer, *, offset_id: int = 0, limit: int = 100, min_id: int = 0
    ) -> list[Message]:
        self._remember(peer)
        request = functions.messages.GetHistoryRequest(
            peer=input_peer(peer),
            offset_id=offset_id,
            offset_date=None,
            add_offset=0,
            limit=min(limit, 100),
            max_id=0,
            min_id=min_id,
            hash=0,
        )
        result = await self._run(self._client(request))
        known = entities_of(result)
        return [
            map_message(m, known, peer)
            for m in result.messages
            if not isinstance(m, types.MessageEmpty)
        ]

    async def get_messages(self, peer: Peer, ids: list[int]) -> list[Message | None]:
        wanted = [types.InputMessageID(i) for i in ids]
        channel = peer.type in (PeerType.CHANNEL, PeerType.MEGAGROUP)
        if channel:
            request: Any = functions.channels.GetMessagesRequest(
                types.InputChannel(peer.id, peer.access_hash or 0), wanted
            )
        else:
            request = functions.messages.GetMessagesRequest(wanted)
        result = await self._run(self._client(request))
        known = entities_of(result)
        by_id: dict[int, Message] = {}
        for item in result.messages:
            if isinstance(item, types.MessageEmpty):
                continue
            # messages.getMessages reads the whole account box: keep this peer's only.
            if not channel and utils.get_peer_id(item.peer_id) != utils.get_peer_id(
                input_peer(peer)
            ):
                continue
            by_id[int(item.id)] = map_message(item, known, peer)
        return [by_id.get(i) for i in ids]

    async def open_media(self, peer: Peer, message_id: int) -> MediaDownload | None:
        """The message's file for download: the message is read again first, as Telegram's
        file references expire, then its largest photo size or its document streams in
        ``upload.getFile`` windows (each window under the call timeout)."""
        self._remember(peer)
        [message] = await self.get_raw_messages(peer, [message_id])
        media = None if message is None else message.media
        if isinstance(media, types.MessageMediaPhoto) and isinstance(media.photo, types.Photo):
            found = _photo(media.photo)
            target: Any = media.photo
        elif isinstance(media, types.MessageMediaDocument) and isinstance(
            media.document, types.Document
        ):
            found = _document(media.document)
            target = media.document
        else:
            return None
        size = found.file_size
        pieces = self._client.iter_download(target, file_size=size).__aiter__()

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                try:
                    chunk = await self._run(pieces.__anext__())
                except StopAsyncIteration:
                    return
                yield bytes(chunk)

        mime = found.mime_type or "application/octet-stream"
        return MediaDownload(size=size, mime_type=mime, chunks=chunks())

    async def get_raw_messages(self, peer: Peer, ids: list[int]) -> list[Any]:
        """Telethon's messages by id in ``peer`` (None where missing or another chat's)."""
        found = await self._run(self._client.get_messages(input_peer(peer), ids=ids))
        return list(found)

    async def get_dialogs(self, limit: int = 100) -> list[Dialog]:
        """The account's dialogs, newest activity first (one page of at most 100)."""
        result = await self._run(
            self._client(
                functions.messages.GetDialogsRequest(
                    offset_date=None,
                    offset_id=0,
                    offset_peer=types.InputPeerEmpty(),
                    limit=min(limit, 100),
                    hash=0,
                )
            )
        )
        known = entities_of(result)
        dates = {
            (utils.get_peer_id(m.peer_id), int(m.id)): _aware(m.date)
            for m in getattr(result, "messages", [])
            if not isinstance(m, types.MessageEmpty)
        }
        found: list[Dialog] = []
        for dialog in getattr(result, "dialogs", []):
            marked = utils.get_peer_id(dialog.peer)
            peer = self._remember(peer_of_tl(dialog.peer, known))
            found.append(
                Dialog(
                    peer=peer,
                    top_message_id=int(dialog.top_message or 0),
                    top_message_at=dates.get((marked, int(dialog.top_message or 0))),
                    unread_count=int(dialog.unread_count or 0),
                )
            )
        return found

    async def search_contacts(self, query: str, limit: int = 20) -> list[Found]:
        """Public users, groups and channels matching ``query`` (the account's own first)."""
        result = await self._run(
            self._client(functions.contacts.SearchRequest(q=query, limit=min(limit, 100)))
        )
        known = entities_of(result)
        mine = [Found(peer_of_tl(p, known), mine=True) for p in result.my_results]
        return mine + [Found(peer_of_tl(p, known)) for p in result.results]

    async def send_message(
        self, peer: Peer, text: str, *, reply_to: int | None = None, spans: Sequence[Span] = ()
    ) -> Message:
        text, entities = formatting(text, spans)
        sent = await self._run(
            self._client.send_message(
                input_peer(peer),
                text,
                reply_to=reply_to,
                parse_mode=None,
                formatting_entities=entities,
                link_preview=False,
            )
        )
        return map_message(sent, peer=peer)

    async def edit_message(
        self, peer: Peer, message_id: int, text: str, *, spans: Sequence[Span] = ()
    ) -> Message:
        text, entities = formatting(text, spans)
        edited = await self._run(
            self._client.edit_message(
                input_peer(peer),
                message_id,
                text,
                parse_mode=None,
                formatting_entities=entities,
                link_preview=False,
            )
        )
        return map_message(edited, peer=peer)

    async def delete_messages(self, peer: Peer, ids: Sequence[int]) -> int:
        affected = await self._run(
            self._client.delete_messages(input_peer(peer), list(ids), revoke=True)
        )
        return sum(int(a.pts_count) for a in affected)

    async def send_media(
        self,
        peer: Peer,
        media: OutgoingMedia,
        *,
        caption: str | None = None,
        reply_to: int | None = None,
        spans: Sequence[Span] = (),
    ) -> Message:
        caption, entities = formatting(caption or "", spans)
        sent = await self._run(
            self._client.send_file(
                input_peer(peer),
                telethon_file(media),
                caption=caption,
                formatting_entities=entities,
                reply_to=reply_to,
                parse_mode=None,
                force_document=media.kind == "document",
                voice_note=media.kind == "voice",
                attributes=media_attributes(media),
                mime_type=media.mime_type,
            )
        )
        return map_message(sent, peer=peer)

    async def updates(self) -> AsyncIterator[Update]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                self._queue.put_nowait(item)
                if item.error is not None:
                    raise item.error
                return
            yield item


@dataclass(frozen=True, kw_only=True)
class TelethonAdapter:
    """Makes Telethon-backed clients, each with these options: ``timeout`` bounds every
    call; ``data_center`` points every client at one server (the sandbox's MTProto fake), or
    ``locate`` finds that server before each connect (a sandbox that restarted may listen
    elsewhere)."""

    timeout: float = 30.0
    request_retries: int = 2
    data_center: DataCenter | None = None
    locate: Locator | None = None

    def address(self, config: SessionConfig) -> tuple[str, int]:
        """Where a session connects: the configured server, else the data center its
        session string names, else Telegram's DC 2 (a new login)."""
        if self.data_center is not None:
            return self.data_center.host, self.data_center.port
        session = StringSession(config.session or None)
        if session.server_address and session.port:
            return str(session.server_address), int(session.port)
        return "149.154.167.51", 443

    def client(self, config: SessionConfig) -> TelethonClient:
        return TelethonClient(config, self)
