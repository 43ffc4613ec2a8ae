"""Media sends as a user through the production Telethon adapter and the wire-level MTProto
fake: uploads (``upload.saveFilePart`` + ``messages.sendMedia``), files by URL and
locations arrive in the recipient's chat as the kind that was sent."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.mtproto.ports import OutgoingMedia
from switchboard.mtproto.telethon_adapter import TelethonClient
from switchboard.sandbox import Sandbox

from .mtproto_support import Wire


@pytest.fixture
async def setup(wire: Wire) -> tuple[Sandbox, TelethonClient, Any, Any]:
    sender, _ = wire.sandbox.mtproto.add_user("15550002222", first_name="Sender")
    friend, _ = wire.sandbox.mtproto.add_user("15550004444", username="friend_media")
    return wire.sandbox, await wire.signed_in(sender), sender, friend


@pytest.mark.parametrize("kind", ["photo", "video", "audio", "voice", "document", "animation"])
async def test_uploaded_media_arrives_as_its_kind_with_its_caption(
    setup: tuple[Sandbox, TelethonClient, Any, Any], kind: str
) -> None:
    sandbox, client, sender, friend = setup
    peer = await client.resolve_peer("@friend_media")
    media = OutgoingMedia(kind=kind, data=b"\x89 not really media " * 64)  # type: ignore[arg-type]
    sent = await client.send_media(peer, media, caption=f"a {kind}")
    assert sent.out is True
    assert sent.media is not None
    assert sent.media.kind == kind
    stored = sandbox.mtproto.messages(sender, friend)[-1]
    assert stored["text"] == f"a {kind}"
    assert stored["media"]["kind"] == kind


async def test_a_photo_by_url_and_a_location_reach_the_chat(
    setup: tuple[Sandbox, TelethonClient, Any, Any],
) -> None:
    sandbox, client, sender, friend = setup
    peer = await client.resolve_peer("@friend_media")
    photo = OutgoingMedia(kind="photo", url="https://cdn.example/cat.jpg")
    sent = await client.send_media(peer, photo, caption="cat")
    assert sent.media is not None
    assert sent.media.kind == "photo"
    stored = sandbox.mtproto.messages(sender, friend)[-1]
    assert stored["media"]["file_id"] == "url:https://cdn.example/cat.jpg"
    where = OutgoingMedia(kind="location", latitude=52.52, longitude=13.405)
    located = await client.send_media(peer, where, reply_to=sent.id)
    assert located.media is not None
    assert (located.media.latitude, located.media.longitude) == (52.52, 13.405)
    assert located.reply_to_msg_id == sent.id
