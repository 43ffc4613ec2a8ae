"""SandboxMtprotoAdapter against the served MTProto fake: every method, error mapping,
duplicate connects, live updates, paging and dropped connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from switchboard.mtproto.ports import (
    AuthKeyDuplicatedError,
    AuthKeyUnregisteredError,
    ChatWriteForbiddenError,
    DisconnectedError,
    FloodWaitError,
    Media,
    MessageEdited,
    MessagesDeleted,
    MtprotoError,
    NewMessage,
    PasswordInvalidError,
    PasswordNeededError,
    PeerNotFoundError,
    PeerType,
    PhoneCodeExpiredError,
    PhoneCodeInvalidError,
    PhoneNumberBannedError,
    PhoneNumberInvalidError,
    SessionConfig,
    Update,
    UserDeactivatedError,
)
from switchboard.mtproto.sandbox_adapter import (
    SandboxMtprotoAdapter,
    SandboxMtprotoClient,
    error_from_rpc,
)
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.mtproto import MtprotoConfig, MtprotoProvider
from switchboard.sandbox.testing import serve


@dataclass
class Env:
    box: Sandbox
    adapter: SandboxMtprotoAdapter

    @property
    def mt(self) -> MtprotoProvider:
        return self.box.mtproto

    def client(self, session: str = "", session_id: str = "s1") -> SandboxMtprotoClient:
        return self.adapter.client(SessionConfig(session_id, 12345, "hash", session=session))

    async def connected(self, session: str = "") -> SandboxMtprotoClient:
        client = self.client(session)
        await client.connect()
        return client


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig(mtproto=MtprotoConfig(keepalive=0.05)))
    async with serve(box.app()) as url:
        adapter = SandboxMtprotoAdapter(
            f"{url}/mtproto", timeout=5, stream_timeout=2, ping_interval=0.2
        )
        yield Env(box, adapter)
        await adapter.aclose()


class Collector:
    """Reads a client's updates in the background."""

    def __init__(self, client: SandboxMtprotoClient) -> None:
        self.items: list[Update] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run(client))

    async def _run(self, client: SandboxMtprotoClient) -> None:
        try:
            async for update in client.updates():
                self.items.append(update)
        except MtprotoError as exc:
            self.error = exc

    async def count(self, n: int) -> list[Update]:
        async def enough() -> bool:
            return len(self.items) >= n

        await eventually(enough, timeout=5, interval=0.01, message=f"{n} updates")
        return self.items

    async def finished(self) -> None:
        await asyncio.wait_for(self.task, 5)


@pytest.mark.parametrize(
    ("name", "cls", "reason"),
    [
        ("FLOOD_WAIT_17", FloodWaitError, "FLOOD_WAIT_17"),
        ("FLOOD_PREMIUM_WAIT_5", FloodWaitError, "FLOOD_WAIT_5"),
        ("AUTH_KEY_DUPLICATED", AuthKeyDuplicatedError, "AUTH_KEY_DUPLICATED"),
        ("AUTH_KEY_UNREGISTERED", AuthKeyUnregisteredError, "AUTH_KEY_UNREGISTERED"),
        ("SESSION_REVOKED", AuthKeyUnregisteredError, "SESSION_REVOKED"),
        ("SESSION_EXPIRED", AuthKeyUnregisteredError, "SESSION_EXPIRED"),
        ("USER_DEACTIVATED", UserDeactivatedError, "USER_DEACTIVATED"),
        ("USER_DEACTIVATED_BAN", UserDeactivatedError, "USER_DEACTIVATED_BAN"),
        ("PHONE_NUMBER_INVALID", PhoneNumberInvalidError, "PHONE_NUMBER_INVALID"),
        ("PHONE_NUMBER_BANNED", PhoneNumberBannedError, "PHONE_NUMBER_BANNED"),
        ("PHONE_CODE_INVALID", PhoneCodeInvalidError, "PHONE_CODE_INVALID"),
        ("PHONE_CODE_EMPTY", PhoneCodeInvalidError, "PHONE_CODE_EMPTY"),
        ("PHONE_CODE_EXPIRED", PhoneCodeExpiredError, "PHONE_CODE_EXPIRED"),
        ("SESSION_PASSWORD_NEEDED", PasswordNeededError, "SESSION_PASSWORD_NEEDED"),
        ("PASSWORD_HASH_INVALID", PasswordInvalidError, "PASSWORD_HASH_INVALID"),
        ("USERNAME_NOT_OCCUPIED", PeerNotFoundError, "USERNAME_NOT_OCCUPIED"),
        ("CHANNEL_PRIVATE", PeerNotFoundError, "CHANNEL_PRIVATE"),
        ("PEER_ID_INVALID", PeerNotFoundError, "PEER_ID_INVALID"),
        ("CHAT_WRITE_FORBIDDEN", ChatWriteForbiddenError, "CHAT_WRITE_FORBIDDEN"),
        ("USER_BANNED_IN_CHANNEL", ChatWriteForbiddenError, "USER_BANNED_IN_CHANNEL"),
        ("CONNECTION_CLOSED", DisconnectedError, "CONNECTION_CLOSED"),
        ("SOMETHING_NEW", MtprotoError, "SOMETHING_NEW"),
    ],
)
def test_error_names_map_like_telethon(name: str, cls: type[MtprotoError], reason: str) -> None:
    error = error_from_rpc(name)
    assert type(error) is cls
    assert error.reason == reason
    if isinstance(error, FloodWaitError):
        assert error.seconds == int(name.rsplit("_", 1)[1])


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("FLOOD_WAIT_3", FloodWaitError),
        ("AUTH_KEY_UNREGISTERED", AuthKeyUnregisteredError),
        ("USER_DEACTIVATED_BAN", UserDeactivatedError),
        ("CHAT_WRITE_FORBIDDEN", ChatWriteForbiddenError),
        ("RPC_CALL_FAIL", MtprotoError),
    ],
)
async def test_injected_errors_reach_the_caller_mapped(
    env: Env, name: str, cls: type[MtprotoError]
) -> None:
    _, (key,) = env.mt.add_user("15550000001", sessions=1)
    client = await env.connected(key.session)
    if name.startswith("FLOOD_WAIT"):
        env.mt.add_fault(method="users.getUsers", seconds=3, times=1)
    else:
        env.mt.add_fault(method="users.getUsers", error=name, times=1)
    with pytest.raises(cls) as caught:
        await client.get_me()
    assert type(caught.value) is cls
    if isinstance(caught.value, FloodWaitError):
        assert caught.value.seconds == 3
    await client.disconnect()


async def test_account_methods_and_session_export(env: Env) -> None:
    user, (key,) = env.mt.add_user("15550000001", "Ann", "Lee", username="ann_lee", sessions=1)
    client = env.client(key.session)
    assert client.export_session() == key.session
    assert not client.is_connected()
    await client.connect()
    assert client.is_connected()
    assert await client.is_authorized()
    me = await client.get_me()
    assert (me.id, me.username, me.first_name, me.last_name, me.phone) == (
        user.id,
        "ann_lee",
        "Ann",
        "Lee",
        "15550000001",
    )
    assert client.export_session() == key.session
    await client.connect()  # idempotent
    await client.disconnect()
    await client.disconnect()
    assert not client.is_connected()
    with pytest.raises(DisconnectedError):
        await client.get_me()
    log = env.mt.connection_log(key_id=key.key_id)
    assert log["keys"][0]["connects"] == 1
    assert log["active"] == 0
    assert log["keys"][0]["events"][-1]["reason"] == "client"


async def test_login_flow_and_its_errors(env: Env) -> None:
    env.mt.add_user("15550000007", password="pa55")
    client = await env.connected("")
    assert not await client.is_authorized()
    session = client.export_session()
    assert session.startswith("1")
    with pytest.raises(PhoneNumberInvalidError):
        await client.send_code("12")
    sent = await client.send_code("+1 555 000 0007")
    assert sent.type == "sms"
    assert sent.timeout_s == 60
    code = env.mt.code("15550000007")
    assert code is not None
    assert code.phone_code_hash == sent.phone_code_hash
    with pytest.raises(PhoneCodeInvalidError):
        await client.sign_in_code("15550000007", "99999x", sent.phone_code_hash)
    with pytest.raises(PhoneCodeExpiredError):
        await client.sign_in_code("15550000007", code.code, "f" * 16)
    with pytest.raises(PasswordNeededError):
        await client.sign_in_code("15550000007", code.code, sent.phone_code_hash)
    assert not await client.is_authorized()  # password pending counts as not signed in
    await client.disconnect()

    # The password step from a new client (another instance) with the same session string.
    other = await env.connected(session)
    with pytest.raises(PasswordInvalidError):
        await other.sign_in_password("wrong")
    me = await other.sign_in_password("pa55")
    assert me.phone == "15550000007"
    assert await other.is_authorized()
    assert other.export_session() == session
    await other.log_out()
    assert not await other.is_authorized()
    with pytest.raises(AuthKeyUnregisteredError):
        await other.get_me()
    await other.disconnect()


async def test_banned_number_and_account(env: Env) -> None:
    user, (key,) = env.mt.add_user("15550000008", sessions=1)
    client = await env.connected(key.session)
    env.mt.ban(user)
    with pytest.raises(UserDeactivatedError) as caught:
        await client.get_me()
    assert caught.value.reason == "USER_DEACTIVATED_BAN"
    assert not await client.is_authorized()
    with pytest.raises(PhoneNumberBannedError):
        await client.send_code("15550000008")
    env.mt.revoke(key.key_id)
    with pytest.raises(AuthKeyUnregisteredError) as revoked:
        await client.get_me()
    assert revoked.value.reason == "SESSION_REVOKED"
    await client.disconnect()


async def test_resolve_history_paging_and_messages(env: Env) -> None:
    reader, (key,) = env.mt.add_user("15550000001", sessions=1)
    admin, _ = env.mt.add_user("15550000002", "Admin", username="the_admin")
    channel = env.mt.add_channel("Feed", "feed_chan", creator=admin, members=[reader])
    env.mt.post_many(channel, 250, start_date=1_700_000_000)
    env.mt.post(
        channel,
        "with media",
        sender=admin,
        media={"kind": "photo", "file_id": "photo:1:2", "width": 800, "height": 600},
        reply_to=250,
        grouped_id=77,
    )
    client = await env.connected(key.session)

    peer = await client.resolve_peer("t.me/feed_chan")
    assert (peer.id, peer.type, peer.title, peer.username) == (
        channel.id,
        PeerType.CHANNEL,
        "Feed",
        "feed_chan",
    )
    assert peer.access_hash == channel.access_hash
    assert (await client.resolve_peer(str(-(10**12) - channel.id))) == peer
    assert (await client.resolve_peer("@the_admin")).type is PeerType.USER
    with pytest.raises(PeerNotFoundError):
        await client.resolve_peer("@nobody_at_all")

    newest = await client.get_history(peer, limit=1)
    assert newest[0].id == 251
    assert newest[0].text == "with media"
    assert newest[0].media == Media(kind="photo", file_id="photo:1:2", width=800, height=600)
    assert newest[0].reply_to_msg_id == 250
    assert newest[0].grouped_id == 77
    assert newest[0].sender is None
    assert newest[0].views == 1
    ids: list[int] = []
    offset = 0
    while page := await client.get_history(peer, offset_id=offset, limit=100):
        assert len(page) <= 100
        ids += [m.id for m in page]
        offset = page[-1].id
    assert ids == list(range(251, 0, -1))
    assert [m.id for m in await client.get_history(peer, min_id=248)] == [251, 250, 249]
    first = (await client.get_history(peer, offset_id=2))[0]
    assert first.date.timestamp() == 1_700_000_000
    assert first.text == "message 1"

    env.mt.delete(channel, [5], notify=False)
    found = await client.get_messages(peer, [4, 5, 6, 9999])
    assert [m and m.id for m in found] == [4, None, 6, None]
    await client.disconnect()


async def test_private_chats_send_and_filtered_get_messages(env: Env) -> None:
    ann, (key,) = env.mt.add_user("15550000001", "Ann", sessions=1)
    bob, _ = env.mt.add_user("15550000002", "Bob", username="bob_b")
    cat, _ = env.mt.add_user("15550000003", "Cat", username="cat_c")
    env.mt.post(ann, "hi ann", sender=bob)  # ann's id 1
    env.mt.post(ann, "hi from cat", sender=cat)  # ann's id 2
    client = await env.connected(key.session)
    bob_peer = await client.resolve_peer("@bob_b")
    sent = await client.send_message(bob_peer, "hello bob", reply_to=1)
    assert sent.id == 3
    assert sent.out
    assert sent.reply_to_msg_id == 1
    assert sent.peer.id == bob.id
    assert sent.sender is not None
    assert sent.sender.id == ann.id
    history = await client.get_history(bob_peer)
    assert [(m.id, m.out) for m in history] == [(3, True), (1, False)]
    assert history[1].sender is not None
    assert history[1].sender.first_name == "Bob"
    # Ids are per account: id 2 is Cat's message, so asking Bob's chat for it finds nothing.
    assert [m and m.id for m in await client.get_messages(bob_peer, [1, 2, 3])] == [1, None, 3]
    env.mt.add_channel("Read only", "ro_chan", members=[ann])
    with pytest.raises(ChatWriteForbiddenError):
        await client.send_message(await client.resolve_peer("@ro_chan"), "nope")
    await client.disconnect()


async def test_live_updates_new_edit_delete(env: Env) -> None:
    ann, (key,) = env.mt.add_user("15550000001", sessions=1)
    bob, (bob_key,) = env.mt.add_user("15550000002", sessions=1)
    group = env.mt.add_channel("Team", megagroup=True, creator=bob, members=[ann])
    chat = env.mt.add_chat("Basic", [ann, bob])
    client = await env.connected(key.session)
    updates = Collector(client)
    env.mt.post(group, "one", sender=bob)
    env.mt.edit(group, 1, text="one!")
    env.mt.delete(group, [1])
    env.mt.post(chat, "two", sender=bob)
    env.mt.delete(chat, [1], user=ann)

    bob_client = await env.connected(bob_key.session)
    group_peer = await bob_client.resolve_peer(str(group.id))
    sent = await bob_client.send_message(group_peer, "three")
    items = await updates.count(6)
    new, edit, deleted, basic, gone, third = items
    assert isinstance(new, NewMessage)
    assert new.message.text == "one"
    assert new.message.peer.type is PeerType.MEGAGROUP
    assert new.message.sender is not None
    assert isinstance(edit, MessageEdited)
    assert edit.message.edit_date is not None
    assert isinstance(deleted, MessagesDeleted)
    assert deleted.ids == (1,)
    assert deleted.peer is not None
    assert deleted.peer.id == group.id
    assert isinstance(basic, NewMessage)
    assert basic.message.peer.type is PeerType.CHAT
    assert gone == MessagesDeleted(ids=(basic.message.id,), peer=None)
    assert isinstance(third, NewMessage)
    assert third.message.id == sent.id
    await bob_client.disconnect()
    await client.disconnect()
    await updates.finished()
    assert updates.error is None  # our own disconnect ends the iterator quietly


async def test_duplicate_connect_raises_everywhere(env: Env) -> None:
    _, (key,) = env.mt.add_user("15550000001", sessions=1)
    first = await env.connected(key.session)
    updates = Collector(first)
    second = env.client(key.session, session_id="other")
    with pytest.raises(AuthKeyDuplicatedError):
        await second.connect()
    await updates.finished()
    assert isinstance(updates.error, AuthKeyDuplicatedError)
    assert not first.is_connected()
    with pytest.raises(AuthKeyDuplicatedError):
        await first.get_me()
    await first.disconnect()
    with pytest.raises(AuthKeyDuplicatedError):
        await env.client(key.session).connect()  # destroyed for good
    log = env.mt.connection_log(key_id=key.key_id)
    assert log["duplicates"] == 1
    assert log["max_concurrent"] == 2


async def test_forced_disconnect_then_reconnect(env: Env) -> None:
    user, (key,) = env.mt.add_user("15550000001", sessions=1)
    client = await env.connected(key.session)
    updates = Collector(client)
    assert env.mt.disconnect(user=user) == 1
    await updates.finished()
    assert isinstance(updates.error, DisconnectedError)
    assert not client.is_connected()
    with pytest.raises(DisconnectedError):
        await client.get_me()
    await client.connect()  # reconnecting the same client object works
    assert (await client.get_me()).id == user.id
    await client.disconnect()
    log = env.mt.connection_log(key_id=key.key_id)
    assert log["duplicates"] == 0
    assert log["keys"][0]["connects"] == 2


async def test_silent_stream_counts_as_dropped_and_reconnects_cleanly(env: Env) -> None:
    env.mt.config.update({"keepalive": 30})  # the fake goes quiet for longer than we wait
    adapter = SandboxMtprotoAdapter(env.adapter.base_url, stream_timeout=0.3, ping_interval=0.1)
    _, (key,) = env.mt.add_user("15550000001", sessions=1)
    client = adapter.client(SessionConfig("s", 1, "h", session=key.session))
    await client.connect()
    updates = Collector(client)
    await updates.finished()
    assert isinstance(updates.error, DisconnectedError)
    await client.connect()  # the old connection is told to go first: no duplicate
    log = env.mt.connection_log(key_id=key.key_id)
    assert log["duplicates"] == 0
    assert log["active"] == 1
    await client.disconnect()
    await adapter.aclose()


async def test_call_timeout_and_unreachable_fake(env: Env) -> None:
    _, (key,) = env.mt.add_user("15550000001", sessions=1)
    slow = SandboxMtprotoAdapter(env.adapter.base_url, timeout=0.2)
    client = slow.client(SessionConfig("s", 1, "h", session=key.session))
    await client.connect()
    env.mt.add_fault(method="users.getUsers", latency=2)
    with pytest.raises(DisconnectedError):
        await client.get_me()
    await client.disconnect()
    await slow.aclose()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nowhere = SandboxMtprotoAdapter(f"http://127.0.0.1:{port}/mtproto", timeout=1)
    with pytest.raises(DisconnectedError):
        await nowhere.client(SessionConfig("s", 1, "h", session=key.session)).connect()
    await nowhere.aclose()


async def test_flood_wait_is_enforced_until_it_passes(env: Env) -> None:
    _, (key,) = env.mt.add_user("15550000001", sessions=1)
    channel = env.mt.add_channel("C", "flood_chan")
    env.mt.post_many(channel, 10)
    client = await env.connected(key.session)
    peer = await client.resolve_peer("@flood_chan")
    env.mt.config.update({"flood_grace": 0})
    env.mt.add_fault(method="messages.getHistory", seconds=1, times=1)
    with pytest.raises(FloodWaitError) as caught:
        await client.get_history(peer)
    assert caught.value.seconds == 1
    with pytest.raises(FloodWaitError):
        await client.get_history(peer)  # too early: Telegram answers with the rest of the wait
    assert env.mt.stats()["flood_violations"] == 1

    async def served() -> bool:
        try:
            return len(await client.get_history(peer)) == 10
        except FloodWaitError:
            return False

    await eventually(served, timeout=5, interval=0.3)
    await client.disconnect()


def _media_cases() -> list[dict[str, Any]]:
    return [
        {"kind": "voice", "file_id": "document:1:2", "duration": 3, "mime_type": "audio/ogg"},
        {"kind": "location", "latitude": 52.5, "longitude": 13.4},
        {"kind": "contact", "phone": "15550001111", "first_name": "Zed"},
        {"kind": "unsupported", "provider_kind": "MessageMediaPoll"},
    ]


@pytest.mark.parametrize("media", _media_cases())
async def test_media_on_the_wire(env: Env, media: dict[str, Any]) -> None:
    ann, (key,) = env.mt.add_user("15550000001", sessions=1)
    bob, _ = env.mt.add_user("15550000002", username="bob_media")
    env.mt.post(ann, media=media, sender=bob)
    client = await env.connected(key.session)
    (message,) = await client.get_history(await client.resolve_peer("@bob_media"))
    assert message.media == Media(**media)
    await client.disconnect()
