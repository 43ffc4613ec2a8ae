"""A stock Telethon client reading channels from the wire-level fake: resolving, history,
live posts, edits and deletions as events, flood waits, pts gaps, sends and dialogs."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from telethon import errors, events, functions, types
from telethon.extensions import html

from switchboard.sandbox.testing import wait_until

from .mtproto_wire_support import WAIT, WireEnv, collecting, wire

__all__ = ["wire"]


def _channel(env: WireEnv, posts: int = 0) -> tuple[Any, Any]:
    """A public channel @newsroom with `posts` posts, its owner, and a reader in it."""
    mtproto = env.sandbox.mtproto
    owner, _ = mtproto.add_user("15550002222", first_name="Owner")
    reader, _ = mtproto.add_user("15550003333", first_name="Reader")
    channel = mtproto.add_channel("Newsroom", "newsroom", creator=owner, members=[reader])
    if posts:
        mtproto.post_many(channel, posts, text="post {n}")
    return channel, reader


async def test_resolve_a_channel_and_read_its_history_in_pages(wire: WireEnv) -> None:
    channel, reader = _channel(wire, posts=250)
    client = await wire.signed_in(reader)
    entity = await client.get_entity("@newsroom")
    assert isinstance(entity, types.Channel)
    assert (entity.id, entity.title, entity.username, entity.broadcast) == (
        channel.id,
        "Newsroom",
        "newsroom",
        True,
    )
    texts = [m.text async for m in client.iter_messages(entity, limit=None)]
    assert texts == [f"post {n}" for n in range(250, 0, -1)]  # 3 requests of <= 100, newest first
    oldest = [m.id async for m in client.iter_messages(entity, limit=5, reverse=True)]
    assert oldest == [1, 2, 3, 4, 5]
    window = [m.id async for m in client.iter_messages(entity, min_id=240, max_id=246)]
    assert window == [245, 244, 243, 242, 241]
    by_id = await client.get_messages(entity, ids=[3, 999])
    assert by_id[0].text == "post 3"
    assert by_id[1] is None  # channels.getMessages answers messageEmpty for a missing id


async def test_unknown_usernames_and_private_channels_are_refused(wire: WireEnv) -> None:
    _, reader = _channel(wire)
    outsider_user, _ = wire.sandbox.mtproto.add_user("15550004444")
    secret = wire.sandbox.mtproto.add_channel("Secret", None)
    client = await wire.signed_in(reader)
    with pytest.raises(errors.UsernameNotOccupiedError):
        await client(functions.contacts.ResolveUsernameRequest(username="nobody_here"))
    outsider = await wire.signed_in(outsider_user)
    hidden = types.InputChannel(secret.id, secret.access_hash)
    with pytest.raises(errors.ChannelPrivateError):
        await outsider(functions.channels.JoinChannelRequest(hidden))
    with pytest.raises(errors.ChannelPrivateError):
        await outsider(functions.messages.GetHistoryRequest(hidden, 0, None, 0, 10, 0, 0, 0))
    with pytest.raises(errors.ChannelInvalidError):
        await outsider(
            functions.channels.JoinChannelRequest(
                types.InputChannel(secret.id, secret.access_hash + 1)
            )
        )


async def test_join_a_public_channel_then_see_it_in_dialogs(wire: WireEnv) -> None:
    channel, _ = _channel(wire, posts=3)
    newcomer, _ = wire.sandbox.mtproto.add_user("15550005555")
    client = await wire.signed_in(newcomer)
    entity = await client.get_entity("newsroom")
    assert entity.left is True
    await client(functions.channels.JoinChannelRequest(entity))
    assert newcomer.id in channel.members
    dialogs = await client.get_dialogs()
    assert [(d.id, d.message.text) for d in dialogs] == [(-(10**12) - channel.id, "post 3")]
    found = await client(functions.contacts.SearchRequest(q="newsr", limit=10))
    assert [p.channel_id for p in found.my_results] == [channel.id]


async def test_new_posts_edits_and_deletions_arrive_as_events(wire: WireEnv) -> None:
    channel, reader = _channel(wire, posts=2)
    client = await wire.signed_in(reader)
    await client.get_entity("newsroom")  # the client learns the channel and its pts
    mtproto = wire.sandbox.mtproto
    async with (
        collecting(client, events.NewMessage()) as (new, new_count),
        collecting(client, events.MessageEdited()) as (edited, edit_count),
        collecting(client, events.MessageDeleted()) as (deleted, delete_count),
    ):
        posted = mtproto.post(channel, "breaking news")
        await new_count(1)
        mtproto.edit(channel, posted["id"], text="breaking news, updated")
        await edit_count(1)
        mtproto.delete(channel, [1, posted["id"]])
        await delete_count(1)
    assert [(m.chat_id, m.id, m.text) for m in new] == [
        (-(10**12) - channel.id, posted["id"], "breaking news")
    ]
    assert [(m.id, m.text) for m in edited] == [(posted["id"], "breaking news, updated")]
    assert deleted[0].deleted_ids == [1, posted["id"]]
    assert deleted[0].chat_id == -(10**12) - channel.id


async def test_a_pts_gap_is_filled_from_get_channel_difference(wire: WireEnv) -> None:
    channel, reader = _channel(wire, posts=1)
    client = await wire.signed_in(reader)
    await client.get_entity("newsroom")
    mtproto = wire.sandbox.mtproto
    async with collecting(client, events.NewMessage()) as (new, new_count):
        mtproto.post(channel, "first live")  # Telethon starts tracking the channel's pts
        await new_count(1)
        wire.sandbox.mtproto_wire.faults.drop_updates = 1  # the next push is lost
        mtproto.post(channel, "lost in transit")
        mtproto.post(channel, "seen live")  # pts jumps by 2: the client asks for the gap
        await new_count(3)
    assert sorted(m.text for m in new) == ["first live", "lost in transit", "seen live"]
    assert mtproto.stats()["calls"].get("updates.getChannelDifference", 0) >= 1


async def test_flood_wait_raises_flood_wait_error_and_is_enforced(wire: WireEnv) -> None:
    _, reader = _channel(wire, posts=3)
    client = await wire.signed_in(reader, flood_sleep_threshold=0)
    entity = await client.get_entity("newsroom")
    wire.sandbox.mtproto.add_fault(method="messages.getHistory", seconds=30, times=1)
    with pytest.raises(errors.FloodWaitError) as first:
        await client.get_messages(entity, limit=1)
    assert first.value.seconds == 30
    # The wait binds the account, not the connection: a second device is refused too, with
    # what is left of the wait, and the fake counts the early call as a violation.
    other = await wire.signed_in(reader, flood_sleep_threshold=0)
    with pytest.raises(errors.FloodWaitError) as again:
        await other.get_messages(await other.get_entity("newsroom"), limit=1)
    assert 0 < again.value.seconds <= 30
    assert wire.sandbox.mtproto.stats()["flood_violations"] == 1


async def test_send_messages_and_media_reach_the_other_side(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    alice, bob, a, b = await wire.chat()
    async with collecting(b, events.NewMessage(incoming=True)) as (inbox, arrived):
        sent = await a.send_message("bob_wire", "hello bob")
        geo = types.InputMediaGeoPoint(types.InputGeoPoint(lat=52.52, long=13.4))
        await a.send_file("bob_wire", geo, caption="here")
        await arrived(2)
    assert (sent.out, sent.text, sent.peer_id.user_id) == (True, "hello bob", bob.id)
    assert [m.text for m in inbox] == ["hello bob", "here"]
    assert inbox[0].sender_id == alice.id
    assert isinstance(inbox[1].media, types.MessageMediaGeo)
    assert inbox[1].media.geo.lat == pytest.approx(52.52)
    stored = mtproto.messages(alice, user=bob)
    assert [m["text"] for m in stored] == ["hello bob", "here"]


async def test_formatting_reaches_the_other_side_as_message_entities(wire: WireEnv) -> None:
    """Telethon's own HTML parse mode sends entities (UTF-16 offsets); the reader gets them
    back as Telethon renders them, and formatting outside the text is refused."""
    mtproto = wire.sandbox.mtproto
    alice, bob, a, b = await wire.chat()
    text = '<strong>Sale</strong> 😀 <a href="https://shop.test/x">shop</a> <em>now</em>'
    async with collecting(b, events.NewMessage(incoming=True)) as (inbox, arrived):
        await a.send_message("bob_wire", text, parse_mode="html")
        await arrived(1)
    assert inbox[0].raw_text == "Sale 😀 shop now"
    assert html.unparse(inbox[0].raw_text, inbox[0].entities) == text
    assert mtproto.messages(alice, user=bob)[-1]["entities"] == [
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "text_link", "offset": 8, "length": 4, "url": "https://shop.test/x"},
        {"type": "italic", "offset": 13, "length": 3},
    ]
    outside = [types.MessageEntityBold(offset=2, length=5)]
    with pytest.raises(errors.EntityBoundsInvalidError):
        await a.send_message("bob_wire", "hey", formatting_entities=outside)


async def test_read_history_sends_a_read_receipt_to_the_sender(wire: WireEnv) -> None:
    alice, bob, a, b = await wire.chat()
    async with collecting(a, events.Raw(types.UpdateReadHistoryOutbox)) as (receipts, arrived):
        sent = await a.send_message("bob_wire", "did you read this?")
        alice_peer = types.InputPeerUser(alice.id, alice.access_hash)
        await b.send_read_acknowledge(alice_peer, max_id=sent.id)
        await arrived(1)
    assert (receipts[0].peer.user_id, receipts[0].max_id) == (bob.id, sent.id)


async def test_a_stalled_server_answers_once_released(wire: WireEnv) -> None:
    _, reader = _channel(wire, posts=1)
    client = await wire.signed_in(reader)
    server = wire.sandbox.mtproto_wire
    server.set_stall(True)
    pending = asyncio.create_task(client.get_entity("newsroom"))
    stats = wire.sandbox.mtproto.stats
    await wait_until(lambda: stats()["calls"].get("contacts.resolveUsername") == 1, timeout=WAIT)
    done, _ = await asyncio.wait({pending}, timeout=0.5)  # served, but the answer is held
    assert not done
    server.set_stall(False)
    entity = await asyncio.wait_for(pending, WAIT)
    assert entity.username == "newsroom"


async def test_a_dropped_connection_reconnects_by_itself(wire: WireEnv) -> None:
    _, reader = _channel(wire, posts=1)
    client = await wire.signed_in(reader, connection_retries=5)
    await client.get_entity("newsroom")
    assert wire.sandbox.mtproto_wire.drop_all() == 1
    messages = await asyncio.wait_for(client.get_messages("newsroom", limit=1), WAIT)
    assert messages[0].text == "post 1"
    log = wire.sandbox.mtproto.connection_log(user=reader)
    assert log["duplicates"] == 0
    assert log["keys"][0]["connects"] == 2


async def test_a_gap_in_private_messages_is_filled_from_get_difference(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    alice, bob = wire.alice_and_bob()
    b = await wire.signed_in(bob)
    async with collecting(b, events.NewMessage(incoming=True)) as (inbox, arrived):
        mtproto.post(bob, "one", sender=alice)
        await arrived(1)
        wire.sandbox.mtproto_wire.faults.drop_updates = 1
        mtproto.post(bob, "two (lost)", sender=alice)
        mtproto.post(bob, "three", sender=alice)
        await arrived(3)
    assert sorted(m.text for m in inbox) == ["one", "three", "two (lost)"]
    assert mtproto.stats()["calls"].get("updates.getDifference", 0) >= 1


async def test_an_uploaded_photo_is_sent_as_a_photo(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    alice, bob, a, b = await wire.chat()
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
        b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01"
        b"\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    async with collecting(b, events.NewMessage(incoming=True)) as (inbox, arrived):
        photo = io.BytesIO(png)
        photo.name = "dot.png"  # Telethon tells a photo by its file name
        await a.send_file("bob_wire", photo, caption="a dot")
        await a.send_file("bob_wire", b"%PDF-1.4 tiny", caption="a doc", force_document=True)
        voice = io.BytesIO(b"OggS fake voice")
        voice.name = "note.ogg"
        await a.send_file("bob_wire", voice, voice_note=True)
        await arrived(3)
    assert inbox[0].text == "a dot"
    assert isinstance(inbox[0].media, types.MessageMediaPhoto)
    assert inbox[1].text == "a doc"
    assert isinstance(inbox[1].media, types.MessageMediaDocument)
    assert inbox[2].voice is not None
    kinds = [m["media"]["kind"] for m in mtproto.messages(alice, user=bob)]
    assert kinds == ["photo", "document", "voice"]


async def test_dialogs_come_in_pages_until_every_chat_is_listed(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    reader, _ = mtproto.add_user("15550003333")
    expected = set()
    for n in range(130):  # more than one page of 100
        channel = mtproto.add_channel(f"Channel {n}", None, members=[reader])
        mtproto.post(channel, f"hello {n}", date=1_700_000_000 + n // 3, notify=False)
        expected.add(channel.id)
    client = await wire.signed_in(reader)
    dialogs = await client.get_dialogs(limit=None)
    assert [d.entity.id for d in dialogs][:2] == [max(expected), max(expected) - 1]
    assert {d.entity.id for d in dialogs} == expected
    assert len(dialogs) == 130
    assert dialogs.total == 130


async def test_basic_group_messages_and_deletions_reach_every_member(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    alice, _ = mtproto.add_user("15550006666", first_name="Alice")
    bob, _ = mtproto.add_user("15550007777", first_name="Bob")
    chat = mtproto.add_chat("Basic", [alice, bob])
    b = await wire.signed_in(bob)
    async with (
        collecting(b, events.NewMessage(incoming=True)) as (inbox, arrived),
        collecting(b, events.MessageDeleted()) as (gone, deleted),
    ):
        posted = mtproto.post(-chat.id, "hi all", sender=alice)
        await arrived(1)
        bob_id = posted["ids"][str(bob.id)]
        mtproto.delete(-chat.id, [bob_id], user=bob)
        await deleted(1)
    assert (inbox[0].chat_id, inbox[0].sender_id, inbox[0].text) == (-chat.id, alice.id, "hi all")
    assert isinstance(inbox[0].chat, types.Chat)
    assert gone[0].deleted_ids == [bob_id]
    assert gone[0].chat_id is None  # outside channels a deletion names no chat
    history = [m.text async for m in b.iter_messages(-chat.id)]
    assert history == []


async def test_a_client_edits_and_deletes_its_own_messages(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    alice, bob, a, b = await wire.chat()
    async with (
        collecting(b, events.NewMessage(incoming=True)) as (_, arrived),
        collecting(b, events.MessageEdited()) as (edits, edited),
        collecting(b, events.MessageDeleted()) as (gone, deleted),
    ):
        sent = await a.send_message("bob_wire", "helo")
        await arrived(1)
        fixed = await a.edit_message("bob_wire", sent.id, "hello")
        assert fixed.text == "hello"
        await edited(1)
        bobs_id = mtproto.messages(bob, user=alice)[-1]["id"]
        with pytest.raises(errors.MessageAuthorRequiredError):
            await b.edit_message(alice.id, bobs_id, "not mine")
        affected = await a.delete_messages("bob_wire", [sent.id])
        assert affected[0].pts_count == 1
        await deleted(1)
    assert (edits[0].id, edits[0].text) == (bobs_id, "hello")
    assert gone[0].deleted_ids == [bobs_id]  # bob's numbering of the same message
    assert mtproto.messages(alice, user=bob) == []


async def test_a_channel_admin_edits_and_deletes_posts(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    owner, _ = mtproto.add_user("15550002222")
    reader, _ = mtproto.add_user("15550003333")
    channel = mtproto.add_channel("Newsroom", "newsroom", creator=owner, members=[reader])
    admin = await wire.signed_in(owner)
    follower = await wire.signed_in(reader)
    await follower.get_entity("newsroom")
    async with (
        collecting(follower, events.NewMessage()) as (_, posted),
        collecting(follower, events.MessageEdited()) as (edits, edited),
        collecting(follower, events.MessageDeleted()) as (gone, deleted),
    ):
        post = await admin.send_message("newsroom", "draft")
        assert post.post is True
        await posted(1)
        await admin.edit_message("newsroom", post.id, "final")
        await edited(1)
        with pytest.raises(errors.MessageAuthorRequiredError):
            await follower.delete_messages("newsroom", [post.id])
        await admin.delete_messages("newsroom", [post.id])
        await deleted(1)
    assert [(m.id, m.text) for m in edits] == [(post.id, "final")]
    assert gone[0].deleted_ids == [post.id]
    assert mtproto.messages(channel) == []


async def test_an_invite_link_previews_then_joins_a_private_channel(wire: WireEnv) -> None:
    """Telethon's own invite calls: a preview for an outsider, the chat for a member,
    Telegram's errors for a joined, unknown or approval-only link."""
    mtproto = wire.sandbox.mtproto
    owner, _ = mtproto.add_user("15550002222", first_name="Owner")
    guest, _ = mtproto.add_user("15550006666", first_name="Guest")
    vip = mtproto.add_channel("VIP", None, creator=owner)
    invite = mtproto.world.add_invite(vip)
    client = await wire.signed_in(guest)
    preview = await client(functions.messages.CheckChatInviteRequest(invite))
    assert isinstance(preview, types.ChatInvite)
    assert (preview.title, preview.broadcast, bool(preview.request_needed)) == ("VIP", True, False)
    joined = await client(functions.messages.ImportChatInviteRequest(invite))
    assert [c.id for c in joined.chats] == [vip.id]
    assert guest.id in vip.members
    already = await client(functions.messages.CheckChatInviteRequest(invite))
    assert isinstance(already, types.ChatInviteAlready)
    assert already.chat.id == vip.id
    with pytest.raises(errors.UserAlreadyParticipantError):
        await client(functions.messages.ImportChatInviteRequest(invite))
    with pytest.raises(errors.InviteHashInvalidError):
        await client(functions.messages.CheckChatInviteRequest("NoSuchLink123"))
    club = mtproto.add_channel("Club", None, creator=owner)
    asked = mtproto.world.add_invite(club, request_needed=True)
    assert (await client(functions.messages.CheckChatInviteRequest(asked))).request_needed
    with pytest.raises(errors.InviteRequestSentError):
        await client(functions.messages.ImportChatInviteRequest(asked))
    assert guest.id not in club.members


async def test_leave_a_channel_and_a_basic_group(wire: WireEnv) -> None:
    channel, reader = _channel(wire)
    team = wire.sandbox.mtproto.add_chat("Team", [reader])
    client = await wire.signed_in(reader)
    entity = await client.get_entity("newsroom")
    await client(functions.channels.LeaveChannelRequest(entity))
    assert reader.id not in channel.members
    assert (await client.get_entity("newsroom")).left is True
    with pytest.raises(errors.UserNotParticipantError):
        await client(functions.channels.LeaveChannelRequest(entity))
    await client(functions.messages.DeleteChatUserRequest(team.id, types.InputUserSelf()))
    assert reader.id not in team.members
