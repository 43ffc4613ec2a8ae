"""The Telethon adapter without network: session strings, client construction (device,
proxies, flood/reconnect policy), error mapping from real Telethon errors, and mapping of
real Telethon TL objects and events to the port's types."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from telethon import errors, events, functions, types
from telethon.crypto import AuthKey
from telethon.network.connection.tcpmtproxy import ConnectionTcpMTProxyRandomizedIntermediate
from telethon.sessions import StringSession

from switchboard.mtproto import telethon_adapter as ta
from switchboard.mtproto.ports import (
    AuthKeyDuplicatedError,
    AuthKeyUnregisteredError,
    ChatWriteForbiddenError,
    Device,
    DisconnectedError,
    FloodWaitError,
    Media,
    Message,
    MessageEdited,
    MessagesDeleted,
    MtprotoError,
    NewMessage,
    PasswordInvalidError,
    PasswordNeededError,
    Peer,
    PeerNotFoundError,
    PeerType,
    PhoneCodeExpiredError,
    PhoneCodeInvalidError,
    PhoneNumberBannedError,
    PhoneNumberInvalidError,
    Proxy,
    SentCode,
    SessionConfig,
    User,
    UserDeactivatedError,
)
from switchboard.sandbox.mtproto import decode_session, encode_session

DATE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CHANNEL = types.Channel(
    id=1_234_567,
    title="News",
    photo=types.ChatPhotoEmpty(),
    date=DATE,
    broadcast=True,
    access_hash=-987,
    username="news_room",
)
MEGAGROUP = types.Channel(
    id=7_654_321, title="Team", photo=types.ChatPhotoEmpty(), date=DATE, megagroup=True
)
ANN = types.User(
    id=42, access_hash=77, first_name="Ann", last_name="Lee", username="ann", phone="15550001"
)


def config(**kwargs: Any) -> SessionConfig:
    return SessionConfig("s1", 12345, "0123456789abcdef", **kwargs)


def rpc(name: str, code: int = 400) -> BaseException:
    """The exception Telethon raises for an RPC error, built the way Telethon builds it."""
    request = functions.users.GetUsersRequest([types.InputUserSelf()])
    error: BaseException = errors.rpc_message_to_error(types.RpcError(code, name), request)
    return error


# --------------------------------------------------------------------------- sessions


def test_fake_issued_session_loads_in_telethon_and_exports_unchanged() -> None:
    key = os.urandom(256)
    string = encode_session(key)
    session = StringSession(string)
    assert session.auth_key is not None
    assert session.auth_key.key == key
    assert (session.dc_id, session.server_address, session.port) == (2, "149.154.167.51", 443)
    client = ta.TelethonAdapter().client(config(session=string))
    assert client.export_session() == string


def test_telethon_made_session_decodes_in_the_fake() -> None:
    session = StringSession()
    session.set_dc(4, "149.154.167.91", 443)
    session.auth_key = AuthKey(os.urandom(256))
    string = StringSession.save(session)
    assert decode_session(string) == (4, "149.154.167.91", 443, session.auth_key.key)
    again = StringSession(string)
    assert again.auth_key is not None
    assert again.auth_key.key == session.auth_key.key
    assert again.dc_id == 4


def test_a_key_telethon_made_without_its_leading_zero_exports_as_the_whole_key() -> None:
    # Telethon's key exchange keeps the shared secret without leading zero bytes (1 key in
    # 256 has one), and StringSession pads a short key at the end: the exported session held
    # another key, and the server refused it when the session was restored (-404).
    whole = b"\0" + os.urandom(255)
    client = ta.TelethonAdapter().client(config())
    session = client._client.session
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(whole[1:])  # what telethon.network.authenticator makes of it
    restored = StringSession(client.export_session())
    assert restored.auth_key is not None
    assert restored.auth_key.key == whole
    assert restored.auth_key.key_id == AuthKey(whole).key_id  # the id the server knows it by
    assert (restored.dc_id, restored.server_address, restored.port) == (2, "149.154.167.51", 443)
    # Telethon's own save would have exported another key
    assert StringSession(StringSession.save(session)).auth_key.key != whole


def test_new_client_without_session_exports_empty() -> None:
    assert ta.TelethonAdapter().client(config()).export_session() == ""


@pytest.mark.parametrize("garbage", ["0" * 16, "1" + "A" * 40, "1not base64!"])
def test_an_unreadable_session_string_is_an_invalid_key(garbage: str) -> None:
    """Imported garbage is revoked at once (AUTH_KEY_INVALID), not retried forever."""
    with pytest.raises(ta.AuthKeyUnregisteredError) as raised:
        ta.TelethonAdapter().client(config(session=garbage))
    assert raised.value.reason == "AUTH_KEY_INVALID"


# --------------------------------------------------------------------------- construction


def test_client_carries_device_and_gateway_policies() -> None:
    device = Device("Switchboard GW", "Linux 6", "2.1", "de", "de-DE")
    client = ta.build_client(config(device=device), request_retries=3)
    init = client._init_request
    assert (init.device_model, init.system_version, init.app_version) == (
        "Switchboard GW",
        "Linux 6",
        "2.1",
    )
    assert (init.lang_code, init.system_lang_code) == ("de", "de-DE")
    assert client.flood_sleep_threshold == 0
    assert client._auto_reconnect is False
    assert client._request_retries == 3
    assert client.api_id == 12345
    assert client._proxy is None


def test_mtproxy_arguments_and_client() -> None:
    secret = "dd" + "a1" * 16
    proxy = Proxy(type="mtproxy", host="proxy.example", port=443, secret=secret)
    args = ta.proxy_arguments(proxy)
    assert args == {
        "connection": ConnectionTcpMTProxyRandomizedIntermediate,
        "proxy": ("proxy.example", 443, secret),
    }
    client = ta.build_client(config(proxy=proxy))
    assert client._connection is ConnectionTcpMTProxyRandomizedIntermediate
    assert client._proxy == ("proxy.example", 443, secret)
    assert isinstance(client._init_request.proxy, types.InputClientProxy)
    assert client._init_request.proxy.address == "proxy.example"
    with pytest.raises(ValueError, match="secret"):
        ta.proxy_arguments(Proxy(type="mtproxy", host="h", port=1))
    with pytest.raises(ValueError, match="16 bytes"):
        ta.proxy_arguments(Proxy(type="mtproxy", host="h", port=1, secret="zz"))


def test_socks5_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = Proxy(type="socks5", host="10.0.0.1", port=1080, username="u", password="p")
    real = importlib.util.find_spec

    def find(name: str, *args: Any) -> Any:
        return object() if name == "python_socks" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find)
    assert ta.proxy_arguments(proxy) == {
        "proxy": {
            "proxy_type": "socks5",
            "addr": "10.0.0.1",
            "port": 1080,
            "username": "u",
            "password": "p",
            "rdns": True,
        }
    }
    # The keys are exactly the parameters Telethon unpacks the dict into when connecting.
    from telethon.network.connection.connection import Connection

    accepted = set(inspect.signature(Connection._parse_proxy).parameters)
    assert set(ta.proxy_arguments(proxy)["proxy"]) == accepted

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ValueError, match="python-socks"):
        ta.proxy_arguments(proxy)  # never connect around the proxy


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "code", "cls", "reason"),
    [
        ("FLOOD_WAIT_17", 420, FloodWaitError, "FLOOD_WAIT_17"),
        ("FLOOD_PREMIUM_WAIT_9", 420, FloodWaitError, "FLOOD_WAIT_9"),
        ("AUTH_KEY_DUPLICATED", 406, AuthKeyDuplicatedError, "AUTH_KEY_DUPLICATED"),
        ("AUTH_KEY_UNREGISTERED", 401, AuthKeyUnregisteredError, "AUTH_KEY_UNREGISTERED"),
        ("SESSION_REVOKED", 401, AuthKeyUnregisteredError, "SESSION_REVOKED"),
        ("USER_DEACTIVATED", 401, UserDeactivatedError, "USER_DEACTIVATED"),
        ("USER_DEACTIVATED_BAN", 401, UserDeactivatedError, "USER_DEACTIVATED_BAN"),
        ("SESSION_PASSWORD_NEEDED", 401, PasswordNeededError, "SESSION_PASSWORD_NEEDED"),
        ("PHONE_CODE_INVALID", 400, PhoneCodeInvalidError, "PHONE_CODE_INVALID"),
        ("PHONE_CODE_EXPIRED", 400, PhoneCodeExpiredError, "PHONE_CODE_EXPIRED"),
        ("PASSWORD_HASH_INVALID", 400, PasswordInvalidError, "PASSWORD_HASH_INVALID"),
        ("PHONE_NUMBER_BANNED", 400, PhoneNumberBannedError, "PHONE_NUMBER_BANNED"),
        ("PHONE_NUMBER_INVALID", 400, PhoneNumberInvalidError, "PHONE_NUMBER_INVALID"),
        ("USERNAME_NOT_OCCUPIED", 400, PeerNotFoundError, "USERNAME_NOT_OCCUPIED"),
        ("CHANNEL_PRIVATE", 400, PeerNotFoundError, "CHANNEL_PRIVATE"),
        ("CHAT_WRITE_FORBIDDEN", 403, ChatWriteForbiddenError, "CHAT_WRITE_FORBIDDEN"),
        ("USER_BANNED_IN_CHANNEL", 400, ChatWriteForbiddenError, "USER_BANNED_IN_CHANNEL"),
        ("SLOWMODE_WAIT_30", 420, MtprotoError, "SLOWMODE_WAIT_30"),
        ("SOME_BRAND_NEW_ERROR", 400, MtprotoError, "SOME_BRAND_NEW_ERROR"),
    ],
)
def test_telethon_errors_map_to_port_errors(
    name: str, code: int, cls: type[MtprotoError], reason: str
) -> None:
    telethon_error = rpc(name, code)
    assert isinstance(telethon_error, errors.RPCError)
    mapped = ta.map_error(telethon_error)
    assert type(mapped) is cls
    assert isinstance(mapped, MtprotoError)
    assert mapped.reason == reason
    if isinstance(mapped, FloodWaitError):
        assert mapped.seconds == int(name.rsplit("_", 1)[1])


def test_transport_errors_map_to_disconnected() -> None:
    for raised in (
        ConnectionError("Connection to Telegram failed 5 time(s)"),
        TimeoutError(),
        OSError(104, "reset"),
        errors.InvalidBufferError(b"\x6c\xfe\xff\xff"),
    ):
        assert isinstance(ta.map_error(raised), DisconnectedError)
    assert isinstance(ta.map_error(errors.AuthKeyNotFound()), AuthKeyUnregisteredError)
    other = RuntimeError("bug")
    assert ta.map_error(other) is other


class StubTelegram:
    """Stands in for TelegramClient's invoke: answers with real TL results or raises."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[Any] = []

    async def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def is_connected(self) -> bool:
        return True


def stubbed(answer: Any, timeout: float = 5.0) -> tuple[ta.TelethonClient, StubTelegram]:
    client = ta.TelethonAdapter(timeout=timeout).client(config())
    stub = StubTelegram(answer)
    client._client = stub
    return client, stub


async def test_calls_raise_port_errors() -> None:
    client, _ = stubbed(rpc("FLOOD_WAIT_5", 420))
    with pytest.raises(FloodWaitError) as caught:
        await client.get_me()
    assert caught.value.seconds == 5
    assert isinstance(caught.value.__cause__, errors.FloodWaitError)
    client, _ = stubbed(rpc("AUTH_KEY_DUPLICATED", 406))
    with pytest.raises(AuthKeyDuplicatedError):
        await client.is_authorized()  # unlike Telethon's is_user_authorized, never hidden
    client, _ = stubbed(rpc("AUTH_KEY_UNREGISTERED", 401))
    assert await client.is_authorized() is False
    client, _ = stubbed(rpc("USER_DEACTIVATED_BAN", 401))
    assert await client.is_authorized() is False


async def test_calls_time_out_as_disconnected() -> None:
    class Hanging(StubTelegram):
        async def __call__(self, request: Any) -> Any:
            await asyncio.Event().wait()

    client = ta.TelethonAdapter(timeout=0.05).client(config())
    client._client = Hanging(None)
    with pytest.raises(DisconnectedError, match="no answer"):
        await client.get_me()


# --------------------------------------------------------------------------- entities


def test_entities_to_peers_and_back() -> None:
    assert ta.map_entity(CHANNEL) == Peer(1_234_567, PeerType.CHANNEL, "News", "news_room", -987)
    assert ta.map_entity(MEGAGROUP).type is PeerType.MEGAGROUP
    chat = types.Chat(
        id=55,
        title="Basic",
        photo=types.ChatPhotoEmpty(),
        participants_count=3,
        date=DATE,
        version=1,
    )
    assert ta.map_entity(chat) == Peer(55, PeerType.CHAT, "Basic")
    assert ta.map_entity(ANN) == Peer(42, PeerType.USER, "Ann Lee", "ann", 77)
    gone = types.ChannelForbidden(id=9, access_hash=1, title="Gone", megagroup=True)
    assert ta.map_entity(gone).type is PeerType.MEGAGROUP
    collectible = types.User(
        id=43, usernames=[types.Username("old", active=False), types.Username("fancy", active=True)]
    )
    assert ta.map_entity(collectible).username == "fancy"
    assert ta.map_user(ANN) == User(42, "ann", "Ann", "Lee", "15550001")
    assert ta.input_peer(ta.map_entity(CHANNEL)) == types.InputPeerChannel(1_234_567, -987)
    assert ta.input_peer(Peer(55, PeerType.CHAT)) == types.InputPeerChat(55)
    assert ta.input_peer(Peer(42, PeerType.USER, access_hash=77)) == types.InputPeerUser(42, 77)
    with pytest.raises(PeerNotFoundError):
        ta.map_entity(types.PeerUser(1))


def test_sent_code_mapping() -> None:
    sent = types.auth.SentCode(types.auth.SentCodeTypeApp(length=5), "abc123", timeout=None)
    assert ta.map_sent_code(sent) == SentCode("abc123", "app", None)
    sms = types.auth.SentCode(types.auth.SentCodeTypeSms(length=5), "h", timeout=60)
    assert ta.map_sent_code(sms) == SentCode("h", "sms", 60)


# --------------------------------------------------------------------------- messages


def channel_post(**kwargs: Any) -> types.Message:
    fields: dict[str, Any] = {
        "id": 10,
        "peer_id": types.PeerChannel(CHANNEL.id),
        "date": DATE,
        "message": "hello",
        "post": True,
        "views": 120,
        "post_author": "Ed",
    }
    fields.update(kwargs)
    return types.Message(**fields)


def document(*attributes: Any, mime: str = "video/mp4", size: int = 2048) -> Any:
    return types.MessageMediaDocument(
        document=types.Document(
            id=501,
            access_hash=502,
            file_reference=b"ref",
            date=DATE,
            mime_type=mime,
            size=size,
            dc_id=2,
            attributes=list(attributes),
        )
    )


def document_media(kind: Any, mime: str = "video/mp4", **found: Any) -> Media:
    """The Media a ``document(...)`` maps to: its file id and size, and what its attributes
    add."""
    return Media(kind=kind, file_id="document:501:502", mime_type=mime, file_size=2048, **found)


def test_channel_post_maps_with_entities() -> None:
    msg = channel_post(
        reply_to=types.MessageReplyHeader(reply_to_msg_id=9), edit_date=DATE, grouped_id=99
    )
    mapped = ta.map_message(msg, {-1_000_001_234_567: CHANNEL})  # marked id
    assert mapped == Message(
        peer=Peer(1_234_567, PeerType.CHANNEL, "News", "news_room", -987),
        id=10,
        date=DATE,
        text="hello",
        sender=None,  # a broadcast post is signed by the channel
        out=False,
        reply_to_msg_id=9,
        edit_date=DATE,
        media=None,
        grouped_id=99,
        views=120,
        post_author="Ed",
    )
    bare = ta.map_message(channel_post())  # no entity known: a post means a broadcast channel
    assert bare.peer == Peer(1_234_567, PeerType.CHANNEL)


def test_group_and_private_senders() -> None:
    in_group = types.Message(
        id=3,
        peer_id=types.PeerChannel(MEGAGROUP.id),
        date=DATE,
        message="hi",
        from_id=types.PeerUser(42),
    )
    mapped = ta.map_message(in_group, {42: ANN})
    assert mapped.peer.type is PeerType.MEGAGROUP
    assert mapped.sender == ta.map_user(ANN)
    unknown_sender = ta.map_message(in_group)
    assert unknown_sender.sender == User(42)
    assert unknown_sender.peer.type is PeerType.MEGAGROUP
    incoming = types.Message(id=4, peer_id=types.PeerUser(42), date=DATE, message="yo")
    private = ta.map_message(incoming, {42: ANN})
    assert private.sender is not None
    assert private.sender.id == 42
    assert private.peer == Peer(42, PeerType.USER, "Ann Lee", "ann", 77)
    outgoing = types.Message(id=5, peer_id=types.PeerUser(42), date=DATE, message="o", out=True)
    assert ta.map_message(outgoing).sender is None
    assert ta.map_message(outgoing).out
    basic = types.Message(
        id=6, peer_id=types.PeerChat(55), date=DATE, message="b", from_id=types.PeerUser(42)
    )
    assert ta.map_message(basic).peer == Peer(55, PeerType.CHAT)


def test_service_messages_keep_their_place() -> None:
    service = types.MessageService(
        id=7,
        peer_id=types.PeerChannel(CHANNEL.id),
        date=DATE,
        action=types.MessageActionChatAddUser(users=[42]),
    )
    mapped = ta.map_message(service)
    assert mapped.id == 7
    assert mapped.text == ""
    assert mapped.media == Media(kind="unsupported", provider_kind="MessageActionChatAddUser")


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        (
            types.MessageMediaPhoto(
                photo=types.Photo(
                    id=301,
                    access_hash=302,
                    file_reference=b"r",
                    date=DATE,
                    sizes=[
                        types.PhotoStrippedSize("i", b"\x01"),
                        types.PhotoSize("m", 320, 240, 11_000),
                        types.PhotoSizeProgressive("y", 1280, 960, [5000, 20_000, 90_000]),
                    ],
                    dc_id=2,
                )
            ),
            Media(
                kind="photo",
                file_id="photo:301:302",
                mime_type="image/jpeg",
                file_size=90_000,
                width=1280,
                height=960,
            ),
        ),
        (
            document(
                types.DocumentAttributeVideo(duration=12.6, w=640, h=360),
                types.DocumentAttributeFilename("clip.mp4"),
            ),
            document_media("video", file_name="clip.mp4", width=640, height=360, duration=13),
        ),
        (
            document(types.DocumentAttributeAudio(duration=4, voice=True), mime="audio/ogg"),
            document_media("voice", "audio/ogg", duration=4),
        ),
        (
            document(
                types.DocumentAttributeAudio(duration=200, title="Song", performer="Band"),
                types.DocumentAttributeFilename("song.mp3"),
                mime="audio/mpeg",
            ),
            document_media("audio", "audio/mpeg", file_name="song.mp3", duration=200),
        ),
        (
            document(
                types.DocumentAttributeImageSize(512, 512),
                types.DocumentAttributeSticker("😀", types.InputStickerSetEmpty()),
                mime="image/webp",
            ),
            document_media("sticker", "image/webp", width=512, height=512),
        ),
        (
            document(
                types.DocumentAttributeVideo(duration=2, w=320, h=240),
                types.DocumentAttributeAnimated(),
            ),
            document_media("animation", width=320, height=240, duration=2),
        ),
        (
            document(types.DocumentAttributeFilename("report.pdf"), mime="application/pdf"),
            document_media("document", "application/pdf", file_name="report.pdf"),
        ),
        (
            types.MessageMediaGeo(geo=types.GeoPoint(long=13.4, lat=52.5, access_hash=1)),
            Media(kind="location", latitude=52.5, longitude=13.4),
        ),
        (
            types.MessageMediaVenue(
                geo=types.GeoPoint(long=2.29, lat=48.86, access_hash=1),
                title="Tower",
                address="Paris",
                provider="",
                venue_id="",
                venue_type="",
            ),
            Media(kind="location", latitude=48.86, longitude=2.29),
        ),
        (
            types.MessageMediaContact("15550009", "Zed", "", "", 0),
            Media(kind="contact", phone="15550009", first_name="Zed"),
        ),
        (
            types.MessageMediaDice(value=3, emoticon="🎲"),
            Media(kind="unsupported", provider_kind="MessageMediaDice"),
        ),
        (types.MessageMediaWebPage(webpage=types.WebPageEmpty(id=1)), None),
    ],
)
def test_media_mapping(media: Any, expected: Media | None) -> None:
    assert ta.map_message(channel_post(media=media)).media == expected


# --------------------------------------------------------------------------- events


def test_events_built_from_real_updates() -> None:
    new_update = types.UpdateNewChannelMessage(message=channel_post(), pts=1, pts_count=1)
    new_event = events.NewMessage.build(new_update)
    mapped = ta.map_event(new_event)
    assert isinstance(mapped, NewMessage)
    assert mapped.message.id == 10
    known = {CHANNEL.id: ta.map_entity(CHANNEL)}
    named = ta.map_event(new_event, known)
    assert isinstance(named, NewMessage)
    assert named.message.peer.title == "News"

    edit_update = types.UpdateEditChannelMessage(
        message=channel_post(message="hello!", edit_date=DATE), pts=2, pts_count=1
    )
    edited = ta.map_event(events.MessageEdited.build(edit_update))
    assert isinstance(edited, MessageEdited)
    assert edited.message.text == "hello!"

    channel_delete = types.UpdateDeleteChannelMessages(
        channel_id=CHANNEL.id, messages=[10, 11], pts=3, pts_count=2
    )
    deleted = ta.map_event(events.MessageDeleted.build(channel_delete), known)
    assert deleted == MessagesDeleted(ids=(10, 11), peer=known[CHANNEL.id])
    unnamed = ta.map_event(events.MessageDeleted.build(channel_delete))
    assert unnamed == MessagesDeleted(ids=(10, 11), peer=Peer(CHANNEL.id, PeerType.CHANNEL))
    private_delete = types.UpdateDeleteMessages(messages=[4], pts=4, pts_count=1)
    assert ta.map_event(events.MessageDeleted.build(private_delete)) == MessagesDeleted((4,))

    short = types.UpdateShortMessage(
        id=8, user_id=42, message="short", pts=5, pts_count=1, date=DATE
    )
    from_short = ta.map_event(events.NewMessage.build(short, self_id=1))
    assert isinstance(from_short, NewMessage)
    assert from_short.message.sender == User(42)


async def test_handlers_feed_updates_and_drops_end_them() -> None:
    client = ta.TelethonAdapter().client(config())
    client._install_handlers()
    registered = client._client.list_event_handlers()
    assert {type(builder) for _, builder in registered} == {
        events.NewMessage,
        events.MessageEdited,
        events.MessageDeleted,
        events.MessageRead,
    }
    handler = client._handlers[0][0]
    update = types.UpdateNewChannelMessage(message=channel_post(), pts=1, pts_count=1)
    await handler(events.NewMessage.build(update))
    await handler(
        events.MessageDeleted.build(
            types.UpdateDeleteChannelMessages(
                channel_id=CHANNEL.id, messages=[10], pts=2, pts_count=1
            )
        )
    )
    dropped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    dropped.set_exception(rpc("AUTH_KEY_DUPLICATED", 406))
    client._on_disconnected(dropped)
    seen: list[Any] = []

    async def drain(target: ta.TelethonClient) -> None:
        async for item in target.updates():
            seen.append(item)

    with pytest.raises(AuthKeyDuplicatedError):
        await drain(client)
    assert [type(item) for item in seen] == [NewMessage, MessagesDeleted]

    fresh = ta.TelethonAdapter().client(config())
    quiet: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    quiet.set_result(None)
    fresh._on_disconnected(quiet)
    with pytest.raises(DisconnectedError):
        await drain(fresh)


# --------------------------------------------------------------------------- RPC results


async def test_history_page_maps_real_results() -> None:
    page = types.messages.ChannelMessages(
        pts=1,
        count=3,
        messages=[
            channel_post(id=12),
            types.MessageService(
                id=11,
                peer_id=types.PeerChannel(CHANNEL.id),
                date=DATE,
                action=types.MessageActionPinMessage(),
            ),
            channel_post(id=10),
        ],
        topics=[],
        chats=[CHANNEL],
        users=[],
    )
    client, stub = stubbed(page)
    peer = ta.map_entity(CHANNEL)
    found = await client.get_history(peer, offset_id=13, limit=500, min_id=9)
    assert [m.id for m in found] == [12, 11, 10]
    assert found[0].peer.title == "News"
    (request,) = stub.requests
    assert isinstance(request, functions.messages.GetHistoryRequest)
    assert (request.offset_id, request.limit, request.min_id) == (13, 100, 9)
    assert request.peer == types.InputPeerChannel(CHANNEL.id, -987)


async def test_get_messages_orders_and_filters_like_the_port() -> None:
    result = types.messages.ChannelMessages(
        pts=1,
        count=2,
        topics=[],
        chats=[CHANNEL],
        users=[],
        messages=[channel_post(id=3), types.MessageEmpty(id=2, peer_id=None), channel_post(id=1)],
    )
    client, stub = stubbed(result)
    got = await client.get_messages(ta.map_entity(CHANNEL), [1, 2, 3, 4])
    assert [m and m.id for m in got] == [1, None, 3, None]
    assert isinstance(stub.requests[0], functions.channels.GetMessagesRequest)

    account_box = types.messages.Messages(
        messages=[
            types.Message(id=5, peer_id=types.PeerUser(42), date=DATE, message="ann"),
            types.Message(id=6, peer_id=types.PeerUser(43), date=DATE, message="other"),
        ],
        topics=[],
        chats=[],
        users=[ANN],
    )
    client, stub = stubbed(account_box)
    got = await client.get_messages(ta.map_entity(ANN), [5, 6])
    assert [m and m.id for m in got] == [5, None]  # 6 is someone else's chat
    assert isinstance(stub.requests[0], functions.messages.GetMessagesRequest)


async def test_get_me_and_log_out_requests() -> None:
    client, stub = stubbed([ANN])
    assert await client.get_me() == ta.map_user(ANN)
    assert isinstance(stub.requests[0], functions.users.GetUsersRequest)
    client, stub = stubbed(True)
    await client.log_out()
    assert isinstance(stub.requests[0], functions.auth.LogOutRequest)
