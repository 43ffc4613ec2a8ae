"""The MTProto fake's world without HTTP: session strings, message ids, history paging,
resolution, login rules, fault rules and the duplicate-connection rule."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.sandbox import ManualClock, Sandbox
from switchboard.sandbox.mtproto import decode_session, encode_session, key_id_of
from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.keys import KeyState
from switchboard.sandbox.mtproto.methods import parse_ref
from switchboard.sandbox.mtproto.world import CHANNEL_MARK, Box, Post


@pytest.fixture
def box() -> Sandbox:
    return Sandbox()


def test_session_strings_round_trip_in_telethon_format() -> None:
    key = bytes(range(256))
    string = encode_session(key)
    assert string.startswith("1")
    assert len(string) == 353  # "1" + base64 of 1 + 4 + 2 + 256 bytes
    assert decode_session(string) == (2, "149.154.167.51", 443, key)
    assert key_id_of(key) == key_id_of(bytes(range(256)))
    with pytest.raises(ValueError, match="StringSession"):
        decode_session("2" + string[1:])
    with pytest.raises(ValueError, match="StringSession"):
        decode_session("1!!!")


def test_box_history_pages_like_get_history() -> None:
    page = Box()
    for n in range(1, 11):
        page.add(("channel", 1), Post(uid=n, date=n, text=str(n), sender_id=None))
    assert page.history(("channel", 1), offset_id=0, limit=3, min_id=0) == [10, 9, 8]
    assert page.history(("channel", 1), offset_id=8, limit=3, min_id=0) == [7, 6, 5]
    assert page.history(("channel", 1), offset_id=3, limit=5, min_id=0) == [2, 1]
    assert page.history(("channel", 1), offset_id=0, limit=100, min_id=7) == [10, 9, 8]
    assert page.history(("channel", 1), offset_id=9, limit=100, min_id=6) == [8, 7]
    assert page.history(("channel", 1), offset_id=1, limit=100, min_id=0) == []
    assert page.history(("channel", 1), offset_id=0, limit=0, min_id=0) == []
    page.remove(9)
    assert page.history(("channel", 1), offset_id=0, limit=3, min_id=0) == [10, 8, 7]


def test_channel_ids_are_per_channel_and_chat_ids_per_account(box: Sandbox) -> None:
    mt = box.mtproto
    alice, _ = mt.add_user("15550000001", "Alice")
    bob, _ = mt.add_user("15550000002", "Bob")
    one = mt.add_channel("One", "chan_one", creator=alice)
    two = mt.add_channel("Two", megagroup=True, creator=alice, members=[bob])
    assert mt.post(one, "a")["id"] == 1
    assert mt.post(two, "b", sender=bob)["id"] == 1
    assert mt.post(one, "c")["id"] == 2

    mt.post(bob, "hi bob", sender=alice)  # private: alice id 1, bob id 1
    mt.post(bob, "hi again", sender=alice)  # alice 2, bob 2
    group = mt.add_chat("Friends", [bob, alice])
    sent = mt.post(group, "to the group", sender=alice)
    assert sent["ids"] == {str(alice.id): 3, str(bob.id): 3}
    mt.post(alice, "note to self", sender=alice)  # alice 4 only
    later = mt.post(group, "again", sender=bob)
    assert later["ids"] == {str(alice.id): 5, str(bob.id): 4}
    assert later["out"] is True
    assert later["sender"]["id"] == bob.id

    alice_view = mt.messages(group, user=alice)
    bob_view = mt.messages(group, user=bob)
    assert [m["id"] for m in alice_view] == [3, 5]
    assert [m["id"] for m in bob_view] == [3, 4]
    assert [m["out"] for m in alice_view] == [True, False]
    assert [m["peer"]["id"] for m in mt.messages(bob, user=alice)] == [bob.id, bob.id]
    assert [m["peer"]["id"] for m in mt.messages(alice, user=bob)] == [alice.id, alice.id]


def test_replies_edits_and_deletes_follow_each_box(box: Sandbox) -> None:
    mt = box.mtproto
    alice, _ = mt.add_user("15550000001", "Alice")
    bob, _ = mt.add_user("15550000002", "Bob")
    mt.post(alice, "self", sender=alice)  # alice's id 1 only
    group = mt.add_chat("Friends", [alice, bob])
    first = mt.post(group, "question", sender=bob)  # alice 2, bob 1
    answer = mt.post(group, "answer", sender=alice, reply_to=2)
    assert answer["reply_to_msg_id"] == 2
    assert mt.messages(group, user=bob)[-1]["reply_to_msg_id"] == first["id"]

    edited = mt.edit(group, 2, text="question?", user=alice)
    assert edited["text"] == "question?"
    assert edited["edit_date"] is not None
    assert mt.messages(group, user=bob)[0]["text"] == "question?"
    assert mt.delete(group, [2], user=alice) == 1
    assert [m["text"] for m in mt.messages(group, user=bob)] == ["answer"]
    assert mt.messages(group, user=bob)[0]["reply_to_msg_id"] is None


def test_broadcast_posts_are_signed_by_the_channel(box: Sandbox) -> None:
    mt = box.mtproto
    admin, _ = mt.add_user("15550000001", "Admin")
    channel = mt.add_channel("News", "news_room", creator=admin)
    post = mt.post(channel, "hello", sender=admin, post_author="Ed")
    assert post["sender"] is None
    assert post["out"] is True
    assert post["post_author"] == "Ed"
    assert post["views"] == 1
    assert post["peer"] == {
        "id": channel.id,
        "type": "channel",
        "title": "News",
        "username": "news_room",
        "access_hash": channel.access_hash,
    }


def test_seeding_twenty_thousand_messages(box: Sandbox) -> None:
    mt = box.mtproto
    channel = mt.add_channel("Archive", "archive_chan")
    result = mt.post_many(channel, 20_000, start_date=1_600_000_000, interval=2)
    assert result == {"count": 20_000, "first_id": 1, "last_id": 20_000}
    messages = mt.messages(channel)
    assert len(messages) == 20_000
    assert messages[0]["date"] == 1_600_000_000
    assert messages[0]["text"] == "message 1"
    assert messages[-1]["date"] == 1_600_000_000 + 2 * 19_999


def test_invalid_seeds_are_refused(box: Sandbox) -> None:
    mt = box.mtproto
    mt.add_user("15550000001", username="taken_name")
    with pytest.raises(ValueError, match="taken"):
        mt.add_user("15550000002", username="Taken_Name")
    with pytest.raises(ValueError, match="invalid phone"):
        mt.add_user("12")
    with pytest.raises(ValueError, match="exists"):
        mt.add_user("+1 555 000 0001")
    channel = mt.add_channel("C")
    with pytest.raises(ValueError, match="media"):
        mt.post(channel, media={"kind": "hologram"})
    with pytest.raises(RpcError, match="MESSAGE_EMPTY"):
        mt.post(channel, "")


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("@durov", ("username", "durov")),
        ("durov", ("username", "durov")),
        ("https://t.me/durov", ("username", "durov")),
        ("t.me/durov/42", ("username", "durov")),
        ("https://t.me/s/durov", ("username", "durov")),
        ("tg://resolve?domain=durov", ("username", "durov")),
        ("https://t.me/c/1234567/10", ("id", -(CHANNEL_MARK + 1234567))),
        ("-1001234567", ("id", -1001234567)),
        ("12345", ("id", 12345)),
        ("me", ("self", "")),
    ],
)
def test_parse_ref(ref: str, parsed: tuple[str, Any]) -> None:
    assert parse_ref(ref) == parsed


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("@ab", "USERNAME_INVALID"),
        ("t.me/+AbCdEf", "INVITE_HASH_INVALID"),
        ("!", "USERNAME_INVALID"),
    ],
)
def test_parse_ref_errors(ref: str, error: str) -> None:
    with pytest.raises(RpcError, match=error):
        parse_ref(ref)


def test_peer_lookup_by_marked_and_bare_ids(box: Sandbox) -> None:
    mt = box.mtproto
    user, _ = mt.add_user("15550000001", username="someone")
    channel = mt.add_channel("C", "chan_name")
    chat = mt.add_chat("G", [user])
    assert mt.peer(-(CHANNEL_MARK + channel.id)) is channel
    assert mt.peer(channel.id) is channel
    assert mt.peer(-chat.id) is chat
    assert mt.peer(user.id) is user
    assert mt.peer("@CHAN_NAME") is channel
    assert mt.user("15550000001") is user
    assert mt.user("@someone") is user
    with pytest.raises(KeyError):
        mt.peer(-channel.id)  # a channel is never a basic group


async def test_second_connection_destroys_the_key() -> None:
    box = Sandbox()
    mt = box.mtproto
    _, (key,) = mt.add_user("15550000001", sessions=1)
    first = mt.conns.open(key, {})
    with pytest.raises(RpcError, match="AUTH_KEY_DUPLICATED") as caught:
        mt.conns.open(key, {})
    assert caught.value.code == 406
    assert key.state is KeyState.DUPLICATED
    assert first.closed
    assert first.error is not None
    assert first.error.name == "AUTH_KEY_DUPLICATED"
    assert first.outbox.get_nowait() is None  # its stream ends
    with pytest.raises(RpcError, match="AUTH_KEY_DUPLICATED"):
        mt.conns.open(key, {})  # for good
    log = mt.connection_log(key_id=key.key_id)
    assert log["duplicates"] == 1
    assert log["max_concurrent"] == 2
    assert log["active"] == 0
    events = [e["event"] for e in log["keys"][0]["events"]]
    assert events == ["connect", "duplicate", "disconnect", "refused"]


async def test_sequential_connections_are_fine() -> None:
    box = Sandbox()
    mt = box.mtproto
    _, (key,) = mt.add_user("15550000001", sessions=1)
    for _ in range(3):
        conn = mt.conns.open(key, {})
        mt.conns.close(conn, "client")
    again = mt.conns.open(key, {})
    assert not again.closed
    log = mt.connection_log(key_id=key.key_id)
    assert log["duplicates"] == 0
    assert log["max_concurrent"] == 1
    assert log["keys"][0]["connects"] == 4
    assert log["active"] == 1


def test_login_codes_expire_and_floods() -> None:
    clock = ManualClock()
    box = Sandbox(clock=clock)
    mt = box.mtproto
    mt.config.update({"code_flood_limit": 2, "code_flood_window": 60})
    mt.add_user("15550000001", password="secret")
    keys, world, login = mt.keys, mt.world, mt.login
    key = keys.issue(clock.time())
    sent = login.send_code(world, keys, "+1 (555) 000-0001")
    assert sent["type"] == "sms"
    record = mt.code("15550000001")
    assert record is not None
    assert record.phone_code_hash == sent["phone_code_hash"]
    clock.advance(mt.config.code_ttl)
    with pytest.raises(RpcError, match="PHONE_CODE_EXPIRED"):
        login.sign_in(world, key, "15550000001", record.code, record.phone_code_hash)
    login.send_code(world, keys, "15550000001")  # the first one left the 60 s window
    login.send_code(world, keys, "15550000001")
    with pytest.raises(RpcError, match="FLOOD_WAIT_60") as caught:
        login.send_code(world, keys, "15550000001")
    assert caught.value.seconds == 60
    assert caught.value.code == 420
    record = mt.code("15550000001")
    assert record is not None
    with pytest.raises(RpcError, match="SESSION_PASSWORD_NEEDED"):
        login.sign_in(world, key, "15550000001", record.code, record.phone_code_hash)
    assert key.state is KeyState.PASSWORD
    with pytest.raises(RpcError, match="PASSWORD_HASH_INVALID"):
        login.check_password(world, key, lambda user: user.password == "nope")
    # The earlier expired code and the wrong password make two failures: the limit.
    with pytest.raises(RpcError, match="FLOOD_WAIT"):
        login.check_password(world, key, lambda user: user.password == "secret")
    clock.advance(61)
    signed_in = login.check_password(world, key, lambda user: user.password == "secret")
    assert signed_in.phone == "15550000001"
    assert key.state is KeyState.AUTHORIZED


def test_fault_rules_every_times_and_enforced_waits() -> None:
    clock = ManualClock()
    box = Sandbox(clock=clock)
    mt = box.mtproto
    _, (key,) = mt.add_user("15550000001", sessions=1)
    floods = mt.floods
    mt.add_fault(method="messages.getHistory", seconds=3, every=2)
    assert floods.before("messages.getHistory", key) == (0.0, None)
    _, error = floods.before("messages.getHistory", key)
    assert error is not None
    assert error.name == "FLOOD_WAIT_3"
    _, early = floods.before("messages.getHistory", key)  # 0 s later: a violation
    assert early is not None
    assert early.name == "FLOOD_WAIT_3"
    assert floods.before("users.getUsers", key) == (0.0, None)  # other methods are free
    clock.advance(3)
    assert floods.before("messages.getHistory", key) == (0.0, None)
    stats = mt.stats()
    assert stats["flood_violations"] == 1
    assert stats["flood_waits"] == {"messages.getHistory": 2}

    mt.clear_faults()
    rule = mt.add_fault(method="messages.sendMessage", error="CHAT_WRITE_FORBIDDEN", times=1)
    _, forbidden = floods.before("messages.sendMessage", key)
    assert forbidden is not None
    assert forbidden.code == 403
    assert floods.before("messages.sendMessage", key) == (0.0, None)
    assert rule.hits == 1
    assert rule.matched == 2
    mt.add_fault(latency=0.5)
    assert floods.before("users.getUsers", key) == (0.5, None)
    with pytest.raises(ValueError, match="needs"):
        mt.add_fault(method="x")
