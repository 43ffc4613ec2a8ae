"""The contract suite of the MTProto port (ports.py), run on its one implementation: the
production Telethon adapter against the sandbox's wire-level MTProto fake. Real MTProto on
a real socket, so connect, login (code, 2FA), peers, history, sends, live updates, update
state and differences, errors and disconnects run through the code production runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telethon.extensions import html as telethon_html

from switchboard.mtproto.ports import (
    AuthKeyDuplicatedError,
    AuthKeyUnregisteredError,
    ChatWriteForbiddenError,
    DisconnectedError,
    FloodWaitError,
    JoinRefusedError,
    MessageEdited,
    MessagesDeleted,
    MtprotoError,
    NewMessage,
    OutgoingMedia,
    PasswordInvalidError,
    PasswordNeededError,
    Peer,
    PeerNotFoundError,
    PeerType,
    PhoneCodeExpiredError,
    PhoneCodeInvalidError,
    SessionConfig,
    Update,
    UpdateState,
)
from switchboard.mtproto.telethon_adapter import DataCenter
from switchboard.runtime.markup import spans
from switchboard.runtime.testing import eventually
from switchboard.sandbox.mtproto_wire.convert import message_tl

from .mtproto_support import API_HASH, API_ID, Wire

PHONE = "15550001234"
PASSWORD = "two step secret"
WAIT = 15.0


async def next_update(updates: AsyncIterator[Update]) -> Update:
    return await asyncio.wait_for(anext(updates), WAIT)


async def test_login_with_code_then_two_step_password(wire: Wire) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE, first_name="Ann", password=PASSWORD)
    client = wire.client()
    await client.connect()
    assert client.is_connected()
    assert await client.is_authorized() is False
    sent = await client.send_code(PHONE)
    assert sent.type == "sms"
    code = wire.sandbox.mtproto.code(PHONE)
    assert code is not None
    assert sent.phone_code_hash == code.phone_code_hash
    wrong = "00000" if code.code != "00000" else "11111"
    with pytest.raises(PhoneCodeInvalidError):
        await client.sign_in_code(PHONE, wrong, sent.phone_code_hash)
    with pytest.raises(PasswordNeededError):
        await client.sign_in_code(PHONE, code.code, sent.phone_code_hash)
    assert await client.is_authorized() is False  # password pending
    with pytest.raises(PasswordInvalidError):
        await client.sign_in_password("not it")
    me = await client.sign_in_password(PASSWORD)
    assert (me.id, me.first_name, me.phone) == (user.id, "Ann", PHONE)
    assert await client.is_authorized() is True
    assert (await client.get_me()).id == user.id
    saved = client.export_session()
    await client.disconnect()
    assert not client.is_connected()

    again = wire.client(saved, "s2")  # the exported session signs in a new process
    await again.connect()
    assert (await again.get_me()).id == user.id


async def test_login_with_a_code_and_an_expired_code(wire: Wire) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE)
    client = wire.client()
    await client.connect()
    first = await client.send_code(PHONE)
    stale = wire.sandbox.mtproto.code(PHONE)
    assert stale is not None
    second = await client.send_code(PHONE)  # replaces the first code
    with pytest.raises(PhoneCodeExpiredError):
        await client.sign_in_code(PHONE, stale.code, first.phone_code_hash)
    fresh = wire.sandbox.mtproto.code(PHONE)
    assert fresh is not None
    me = await client.sign_in_code(PHONE, fresh.code, second.phone_code_hash)
    assert me.id == user.id
    await client.log_out()
    assert await client.is_authorized() is False


async def test_resolve_read_send_and_receive_updates(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    owner, _ = mtproto.add_user("15550002222")
    reader, _ = mtproto.add_user("15550003333", first_name="Reader")
    friend, _ = mtproto.add_user("15550004444", username="friend_wire")
    channel = mtproto.add_channel("News", "news_wire", creator=owner, members=[reader])
    group = mtproto.add_channel("Team", "team_wire", megagroup=True, members=[reader])
    mtproto.post_many(channel, 5, text="old {n}")
    client = await wire.signed_in(reader)

    peer = await client.resolve_peer("@news_wire")
    assert (peer.id, peer.type, peer.username) == (channel.id, PeerType.CHANNEL, "news_wire")
    assert peer.access_hash == channel.access_hash
    history = await client.get_history(peer, limit=3)
    assert [(m.id, m.text) for m in history] == [(5, "old 5"), (4, "old 4"), (3, "old 3")]
    assert [m.id for m in await client.get_history(peer, offset_id=3, min_id=1)] == [2]
    fetched = await client.get_messages(peer, [2, 99])
    assert fetched[0] is not None
    assert fetched[0].text == "old 2"
    assert fetched[1] is None
    with pytest.raises(PeerNotFoundError):
        await client.resolve_peer("@nobody_wire")
    with pytest.raises(ChatWriteForbiddenError):
        await client.send_message(peer, "readers cannot post")

    team = await client.resolve_peer("team_wire")
    assert team.type is PeerType.MEGAGROUP
    sent = await client.send_message(team, "hello team")
    assert (sent.peer.id, sent.out, sent.text) == (group.id, True, "hello team")
    assert mtproto.messages(group)[-1]["text"] == "hello team"
    buddy = await client.resolve_peer("friend_wire")
    dm = await client.send_message(buddy, "hi", reply_to=None)
    assert dm.peer.id == friend.id

    updates = client.updates()
    mtproto.post(channel, "breaking")
    first = await next_update(updates)
    assert isinstance(first, NewMessage)
    assert (first.message.peer.id, first.message.id, first.message.text) == (
        channel.id,
        6,
        "breaking",
    )
    mtproto.edit(channel, 6, text="breaking, updated")
    edited = await next_update(updates)
    assert isinstance(edited, MessageEdited)
    assert edited.message.text == "breaking, updated"
    mtproto.delete(channel, [6])
    deleted = await next_update(updates)
    assert isinstance(deleted, MessagesDeleted)
    assert deleted.ids == (6,)
    assert deleted.peer is not None
    assert deleted.peer.id == channel.id
    await client.disconnect()
    with pytest.raises(StopAsyncIteration):
        await next_update(updates)


async def test_flood_wait_reaches_the_gateway_with_its_seconds(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    _, client = await wire.reader_of("News", "news_wire")
    peer = await client.resolve_peer("news_wire")
    mtproto.add_fault(method="messages.getHistory", seconds=42, times=1)
    with pytest.raises(FloodWaitError) as raised:
        await client.get_history(peer)
    assert raised.value.seconds == 42


async def test_a_second_connection_of_one_session_is_auth_key_duplicated(wire: Wire) -> None:
    reader, _ = wire.sandbox.mtproto.add_user("15550003333")
    session = wire.session_of(reader)
    first = wire.client(session, "s1")
    await first.connect()
    updates = first.updates()
    second = wire.client(session, "s2")
    with pytest.raises(AuthKeyDuplicatedError):
        await second.connect()
    with pytest.raises(DisconnectedError):  # the fake closed the first connection too
        await next_update(updates)
    third = wire.client(session, "s3")
    with pytest.raises(AuthKeyDuplicatedError):  # and the key is destroyed for good
        await third.connect()


async def test_a_dropped_connection_ends_updates_with_disconnected(wire: Wire) -> None:
    reader, _ = wire.sandbox.mtproto.add_user("15550003333")
    client = await wire.signed_in(reader)
    updates = client.updates()
    assert wire.sandbox.mtproto_wire.drop_all() == 1
    with pytest.raises(DisconnectedError):
        await next_update(updates)


async def test_a_revoked_session_is_not_authorized(wire: Wire) -> None:
    reader, _ = wire.sandbox.mtproto.add_user("15550003333")
    issued = wire.sandbox.mtproto_wire.issue_session(reader)
    client = wire.client(issued["session"])
    await client.connect()
    assert await client.is_authorized() is True
    wire.sandbox.mtproto.revoke(issued["key_id"])
    assert await client.is_authorized() is False
    with pytest.raises(AuthKeyUnregisteredError):
        await client.get_me()


async def test_one_client_connects_again_after_a_disconnect(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    channel = mtproto.add_channel("News", "news_wire", members=[reader])
    client = await wire.signed_in(reader)
    await client.connect()  # already connected: nothing happens
    await client.disconnect()
    await client.connect()  # the same client object, as the gateway reuses it
    await client.resolve_peer("news_wire")
    updates = client.updates()
    mtproto.post(channel, "after the reconnect")
    update = await next_update(updates)
    assert isinstance(update, NewMessage)
    assert update.message.text == "after the reconnect"
    assert wire.sandbox.mtproto_wire.drop_all() == 1
    with pytest.raises(DisconnectedError):
        await next_update(updates)
    log = mtproto.connection_log(user=reader)
    assert log["duplicates"] == 0
    assert log["keys"][0]["connects"] == 2


async def test_media_of_every_kind_maps_from_the_wire(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    channel = mtproto.add_channel("News", "news_wire", members=[reader])
    seeded = [
        {"kind": "photo", "file_id": "p1", "width": 640, "height": 480, "file_size": 1000},
        {
            "kind": "video",
            "file_id": "v1",
            "width": 1280,
            "height": 720,
            "duration": 12,
            "mime_type": "video/mp4",
            "file_size": 5000,
        },
        {"kind": "voice", "file_id": "o1", "duration": 3, "mime_type": "audio/ogg"},
        {"kind": "audio", "file_id": "a1", "duration": 200, "mime_type": "audio/mpeg"},
        {
            "kind": "document",
            "file_id": "d1",
            "file_name": "report.pdf",
            "mime_type": "application/pdf",
            "file_size": 2048,
        },
        {"kind": "animation", "file_id": "g1", "mime_type": "video/mp4"},
        {"kind": "sticker", "file_id": "s1", "mime_type": "image/webp"},
        {"kind": "location", "latitude": 52.52, "longitude": 13.405},
        {"kind": "contact", "phone": "15550009999", "first_name": "Cat", "last_name": "Lee"},
    ]
    for media in seeded:
        mtproto.post(channel, "", media=media)
    client = await wire.signed_in(reader)
    peer = await client.resolve_peer("news_wire")
    history = list(reversed(await client.get_history(peer)))
    mapped = [m.media for m in history]
    assert [m.kind if m else None for m in mapped] == [m["kind"] for m in seeded]
    photo, video, voice, audio, document, _, _, location, contact = mapped
    assert photo is not None
    assert (photo.width, photo.height, photo.file_size) == (640, 480, 1000)
    assert video is not None
    assert (video.width, video.height, video.duration, video.mime_type) == (
        1280,
        720,
        12,
        "video/mp4",
    )
    assert voice is not None
    assert voice.duration == 3
    assert audio is not None
    assert audio.duration == 200
    assert document is not None
    assert (document.file_name, document.mime_type, document.file_size) == (
        "report.pdf",
        "application/pdf",
        2048,
    )
    assert location is not None
    assert (location.latitude, location.longitude) == (52.52, 13.405)
    assert contact is not None
    assert (contact.phone, contact.first_name, contact.last_name) == ("15550009999", "Cat", "Lee")
    assert all(m is not None and m.file_id for m in mapped[:7])  # stable references


def test_a_data_center_needs_a_whole_descriptor() -> None:
    with pytest.raises(ValueError, match="descriptor"):
        DataCenter.from_descriptor({"host": "127.0.0.1", "port": 1})


async def test_private_messages_name_their_sender_and_replies(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    friend, _ = mtproto.add_user("15550004444", first_name="Fred", username="friend_wire")
    client = await wire.signed_in(reader)
    buddy = await client.resolve_peer("friend_wire")
    updates = client.updates()
    mtproto.post(reader, "hello from fred", sender=friend)
    incoming = await next_update(updates)
    assert isinstance(incoming, NewMessage)
    message = incoming.message
    assert (message.peer.id, message.out, message.text) == (friend.id, False, "hello from fred")
    assert message.sender is not None
    assert message.sender.id == friend.id  # no from_id on the wire: the chat is the sender
    answer = await client.send_message(buddy, "hi fred", reply_to=message.id)
    assert (answer.out, answer.reply_to_msg_id) == (True, message.id)
    fetched = await client.get_messages(buddy, [message.id, answer.id])
    assert [m.text if m else None for m in fetched] == ["hello from fred", "hi fred"]
    assert mtproto.messages(friend, user=reader)[-1]["reply_to_msg_id"] is not None


async def _updates_until(updates: AsyncIterator[Update], count: int) -> list[Update]:
    return [await next_update(updates) for _ in range(count)]


async def test_a_stored_update_state_brings_what_happened_while_away(wire: Wire) -> None:
    """A new client given the state the last one reached gets, from the difference, every
    post, edit and deletion of a channel and every private message since: once each."""
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    friend, _ = mtproto.add_user("15550004444", username="friend_wire")
    channel = mtproto.add_channel("News", "news_wire", members=[reader])
    mtproto.post_many(channel, 3, text="old {n}")
    session = wire.session_of(reader)
    first = wire.client(session, "s1")
    await first.connect()
    assert first.update_state() is not None
    await first.resolve_peer("news_wire")
    updates = first.updates()
    mtproto.post(channel, "seen live")
    seen = await next_update(updates)
    assert isinstance(seen, NewMessage)
    state = first.update_state()
    assert state is not None
    assert [(c.channel_id, c.access_hash) for c in state.channels] == [
        (channel.id, channel.access_hash)
    ]
    assert UpdateState.from_json(state.to_json()) == state
    await first.disconnect()

    mtproto.post(channel, "while away")
    mtproto.edit(channel, 4, text="seen live, edited")
    mtproto.delete(channel, [1])
    mtproto.post(reader, "a private word", sender=friend)

    second = wire.adapter.client(SessionConfig("s2", API_ID, API_HASH, session, update_state=state))
    wire.clients.append(second)
    await second.connect()
    got = await _updates_until(second.updates(), 4)
    news = [u.message.text for u in got if isinstance(u, NewMessage)]
    assert sorted(news) == ["a private word", "while away"]
    edits = [u.message for u in got if isinstance(u, MessageEdited)]
    assert [(m.id, m.text) for m in edits] == [(4, "seen live, edited")]
    deletions = [u for u in got if isinstance(u, MessagesDeleted)]
    assert [(d.ids, d.peer.id if d.peer else None) for d in deletions] == [((1,), channel.id)]
    later = second.update_state()
    assert later is not None
    assert later.pts > state.pts
    assert later.channels[0].pts > state.channels[0].pts
    # Nothing more: what the first client had seen is not repeated.
    mtproto.post(channel, "live again")

    async def waiting() -> bool:  # received, not read yet: the state would be ahead of it
        return second.update_state() is None

    await eventually(waiting, timeout=WAIT, message="the post waits to be read")
    last = await next_update(second.updates())
    assert isinstance(last, NewMessage)
    assert last.message.text == "live again"
    assert second.update_state() is not None


async def test_a_pts_gap_while_connected_is_filled_once(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    channel, client = await wire.reader_of("News", "news_wire")
    await client.resolve_peer("news_wire")
    updates = client.updates()
    mtproto.post(channel, "first")
    assert isinstance(await next_update(updates), NewMessage)
    wire.sandbox.mtproto_wire.faults.drop_updates = 1  # the next push is lost
    mtproto.post(channel, "lost on the wire")
    mtproto.post(channel, "seen live")  # its pts shows the gap: Telethon asks for it
    got = await _updates_until(updates, 2)
    texts = [u.message.text for u in got if isinstance(u, NewMessage)]
    assert sorted(texts) == ["lost on the wire", "seen live"]


async def test_a_user_is_found_by_phone_among_the_account_s_contacts_only(wire: Wire) -> None:
    """Telethon finds a phone number in contacts.getContacts, as Telegram lets an account
    message a number only once it is a contact: a contact's number is a peer to send to, a
    stranger's is an unknown peer (the fake answered METHOD_NOT_SUPPORTED_BY_FAKE before)."""
    mtproto = wire.sandbox.mtproto
    me, _ = mtproto.add_user("15550005555")
    known, _ = mtproto.add_user("15550006666", first_name="Known")
    mtproto.add_user("15550007777", first_name="Stranger")
    mtproto.world.add_contact(me.id, "+15550006666")
    client = await wire.signed_in(me)

    peer = await client.resolve_peer("+15550006666")
    assert (peer.id, peer.type) == (known.id, PeerType.USER)
    sent = await client.send_message(peer, "hi by phone")
    assert mtproto.messages(me, known)[-1]["text"] == sent.text == "hi by phone"
    with pytest.raises(PeerNotFoundError):
        await client.resolve_peer("+15550007777")
    await client.disconnect()


async def test_join_channel_joins_once_and_names_telegrams_refusals(wire: Wire) -> None:
    """Telegram sends a channel's posts to its members only: the adapter joins a public
    channel it has not joined (once), and the refusals are the port's errors."""
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    owner, _ = mtproto.add_user("15550004444")
    channel = mtproto.add_channel("News", "news_wire", creator=owner)
    hidden = mtproto.add_channel("Hidden", None, creator=owner)
    client = await wire.signed_in(reader)
    peer = await client.resolve_peer("news_wire")
    assert await client.join_channel(peer) is True
    assert reader.id in channel.members
    assert await client.join_channel(peer) is False
    updates = client.updates()
    mtproto.post(channel, "for members")
    update = await next_update(updates)
    assert isinstance(update, NewMessage)
    assert update.message.text == "for members"

    stranger = Peer(id=hidden.id, type=PeerType.CHANNEL, access_hash=hidden.access_hash)
    with pytest.raises(PeerNotFoundError):
        await client.join_channel(stranger)
    other = mtproto.add_channel("Other", "other_wire", creator=owner)
    mtproto.add_fault(method="channels.joinChannel", error="INVITE_REQUEST_SENT", times=1)
    with pytest.raises(JoinRefusedError) as refused:
        await client.join_channel(await client.resolve_peer("other_wire"))
    assert refused.value.reason == "INVITE_REQUEST_SENT"
    assert reader.id not in other.members


async def test_join_invite_joins_through_a_link_once(wire: Wire) -> None:
    """The adapter's invite path on the wire: a private channel is resolved from its link
    only once joined, joined once, and an unknown link is an unknown peer."""
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    owner, _ = mtproto.add_user("15550004444")
    vip = mtproto.add_channel("VIP", None, creator=owner)
    link = f"https://t.me/+{mtproto.world.add_invite(vip)}"
    client = await wire.signed_in(reader)
    with pytest.raises(PeerNotFoundError):
        await client.resolve_peer(link)
    peer, joined = await client.join_invite(link.removeprefix("https://t.me/+"))
    assert (peer.id, peer.type, joined) == (vip.id, PeerType.CHANNEL, True)
    assert (await client.resolve_peer(link)).id == vip.id
    assert (await client.join_invite(link.removeprefix("https://t.me/+")))[1] is False
    with pytest.raises(PeerNotFoundError):
        await client.join_invite("NoSuchLink123")


async def test_leave_a_channel_and_a_basic_group_once(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    owner, _ = mtproto.add_user("15550004444")
    channel = mtproto.add_channel("News", "news_leave", creator=owner, members=[reader])
    chat = mtproto.add_chat("Team", [owner, reader])
    client = await wire.signed_in(reader)
    news = await client.resolve_peer("news_leave")
    await client.leave(news)
    assert reader.id not in channel.members
    await client.leave(news)  # out already: what leaving wanted
    await client.leave(Peer(id=chat.id, type=PeerType.CHAT))
    assert reader.id not in chat.members


# Bot API HTML whose tags Telethon's own HTML parser knows: the judge of what the adapter's
# entities must be (the markup module reads the Bot API's whole HTML; these are the shared
# part). Leading and trailing blanks are trimmed, as Telegram trims a message.
FORMATTED = [
    '<b>Sale</b> 😀 <a href="https://shop.test/?a=1&amp;b=2">shop</a> <i>now</i>',
    "  <u>under</u> <s>gone</s> <code>x = 1</code>\n"
    '<pre><code class="language-python">print("𝄞")</code></pre>  ',
    "<blockquote>quoted\nlines</blockquote> &lt;b&gt; is text",
    "<b>bold <i>and italic</i></b>",
]


def _judged(entities: list[Any] | None) -> list[tuple[str, int, int, Any]]:
    """Entities as comparable tuples: kind, offset, length, url or language."""
    return [
        (type(e).__name__, e.offset, e.length, getattr(e, "url", getattr(e, "language", None)))
        for e in entities or []
    ]


@pytest.mark.parametrize("text", FORMATTED)
async def test_a_formatted_text_is_sent_as_the_entities_telethon_parses(
    wire: Wire, text: str
) -> None:
    """A user account's HTML went out with its tags as words (`<b>Sale</b>`): the adapter
    now sends what the parse mode means, the entities a stock Telethon client parses from
    the same HTML, and the fake gives them to readers (test_mtproto_wire_channels)."""
    mtproto = wire.sandbox.mtproto
    me, _ = mtproto.add_user("15550005555")
    friend, _ = mtproto.add_user("15550006666", username="friend_fmt")
    client = await wire.signed_in(me)
    peer = await client.resolve_peer("friend_fmt")

    words, found = spans(text, "html")
    sent = await client.send_message(peer, words, spans=found)
    judge_text, judge_entities = telethon_html.parse(text)
    stored = mtproto.messages(me, friend)[-1]
    assert sent.text == stored["text"] == judge_text
    assert _judged(message_tl(stored, 2).entities) == _judged(judge_entities)
    await client.disconnect()


async def test_markdown_v2_and_html_saying_the_same_send_the_same(wire: Wire) -> None:
    mtproto = wire.sandbox.mtproto
    me, _ = mtproto.add_user("15550005555")
    friend, _ = mtproto.add_user("15550006666", username="friend_fmt")
    client = await wire.signed_in(me)
    peer = await client.resolve_peer("friend_fmt")
    md = r"*Sale* 😀 [shop](https://shop.test/?a\=1&b\=2) _now_ \!"
    words, found = spans(md, "markdown_v2")
    await client.send_message(peer, words, spans=found)
    words, found = spans(FORMATTED[0] + " !", "html")
    await client.send_message(peer, words, spans=found)
    first, second = mtproto.messages(me, friend)[-2:]
    assert first["text"] == second["text"] == "Sale 😀 shop now !"
    assert first["entities"] == second["entities"]
    assert first["entities"][1] == {
        "type": "text_link", "offset": 8, "length": 4, "url": "https://shop.test/?a=1&b=2"
    }  # fmt: skip
    await client.disconnect()


async def test_edit_and_delete_a_sent_message_on_the_wire(wire: Wire) -> None:
    """The adapter edits a message it sent (new words, new entities; the same words and
    entities again is Telegram's MESSAGE_NOT_MODIFIED) and deletes it for everyone."""
    mtproto = wire.sandbox.mtproto
    me, _ = mtproto.add_user("15550005555")
    friend, _ = mtproto.add_user("15550006666", username="friend_fmt")
    client = await wire.signed_in(me)
    peer = await client.resolve_peer("friend_fmt")
    sent = await client.send_message(peer, "price 10")

    words, found = spans("price <b>12</b>", "html")
    edited = await client.edit_message(peer, sent.id, words, spans=found)
    assert edited.text == "price 12"
    theirs = mtproto.messages(friend, me)[-1]
    assert (theirs["text"], theirs["entities"]) == (
        "price 12",
        [{"type": "bold", "offset": 6, "length": 2}],
    )
    with pytest.raises(MtprotoError) as same:
        await client.edit_message(peer, sent.id, words, spans=found)
    assert same.value.reason == "MESSAGE_NOT_MODIFIED"
    assert await client.delete_messages(peer, [sent.id]) == 1
    assert mtproto.messages(friend, me) == mtproto.messages(me, friend) == []
    assert await client.delete_messages(peer, [sent.id]) == 0
    await client.disconnect()


async def test_a_caption_is_sent_with_its_entities(wire: Wire) -> None:
    """A user account's photo caption went as plain words: it carries entities as a text
    does (a channel post's bold caption)."""
    mtproto = wire.sandbox.mtproto
    me, _ = mtproto.add_user("15550005555")
    friend, _ = mtproto.add_user("15550006666", username="friend_fmt")
    client = await wire.signed_in(me)
    peer = await client.resolve_peer("friend_fmt")
    words, found = spans("<b>New</b> sofa 😀 <i>today</i>", "html")
    photo = OutgoingMedia("photo", data=b"\x89PNG\r\n\x1a\n" + b"x" * 500, file_name="s.png")
    await client.send_media(peer, photo, caption=words, spans=found)
    stored = mtproto.messages(friend, me)[-1]
    assert (stored["text"], stored["media"]["kind"]) == ("New sofa 😀 today", "photo")
    assert stored["entities"] == [
        {"type": "bold", "offset": 0, "length": 3},
        {"type": "italic", "offset": 12, "length": 5},
    ]
    await client.disconnect()
