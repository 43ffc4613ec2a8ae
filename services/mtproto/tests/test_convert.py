"""Port messages -> conv events: marked chat ids, senders, every media kind, peer references,
and one event id per (session, chat, message) whichever path read it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from switchboard.events.catalog.common import MediaFile
from switchboard.events.catalog.conv import (
    ContactContent,
    LocationContent,
    PhotoContent,
    TextContent,
    UnsupportedContent,
)
from switchboard.mtproto.convert import (
    chat_id,
    deleted,
    edited,
    normalize_ref,
    peer_from_json,
    peer_json,
    received,
)
from switchboard.mtproto.ports import Media, Message, Peer, PeerType, User

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CHANNEL = Peer(1234567890, PeerType.CHANNEL, title="News", username="news", access_hash=42)
ADA = User(555, username="ada_l", first_name="Ada", last_name="Lovelace", phone="4477009")


def _msg(peer: Peer = CHANNEL, **kw: object) -> Message:
    return Message(peer=peer, id=kw.pop("id", 7), date=NOW, **kw)  # type: ignore[arg-type]


def test_marked_chat_ids() -> None:
    assert chat_id(Peer(5, PeerType.USER)) == "5"
    assert chat_id(Peer(5, PeerType.CHAT)) == "-5"
    assert chat_id(Peer(5, PeerType.CHANNEL)) == "-1005"
    assert chat_id(Peer(5, PeerType.MEGAGROUP)) == "-1005"


def test_live_and_backfilled_copies_are_one_event() -> None:
    live = received("s1", _msg(text="hi"), NOW)
    later = received("s1", _msg(text="hi (edited since)"), NOW + timedelta(hours=5))
    assert live.deterministic_id() == later.deterministic_id()
    assert received("s2", _msg(text="hi"), NOW).deterministic_id() != live.deterministic_id()
    assert received("s1", _msg(id=8), NOW).deterministic_id() != live.deterministic_id()


def test_channel_post_and_user_message() -> None:
    post = received("s1", _msg(text="news", post_author="Editor"), NOW)
    assert post.chat.id == "-1001234567890"
    assert post.chat.type.value == "channel"
    assert post.sender.id == "-1001234567890"
    assert post.sender.display_name == "Editor"
    assert post.content == TextContent(text="news")
    dm = received("s1", _msg(Peer(555, PeerType.USER), text="hi", sender=ADA,
                             reply_to_msg_id=3), NOW)  # fmt: skip
    assert dm.chat.type.value == "private"
    assert dm.sender.display_name == "Ada Lovelace"
    assert dm.sender.phone == "4477009"
    assert dm.reply_to == "3"
    assert dm.account == "s1"
    assert dm.channel.value == "mtproto"


def test_media_kinds() -> None:
    photo = Media(kind="photo", file_id="photo:1:2", width=10, height=20, file_size=99,
                  mime_type="image/jpeg", file_name="a.jpg", duration=3)  # fmt: skip
    content = received("s", _msg(text="cap", media=photo), NOW).content
    assert isinstance(content, PhotoContent)
    assert content.caption == "cap"
    # Every file field a Media has is carried; the others stay unset.
    assert content.file == MediaFile(file_id="photo:1:2", mime_type="image/jpeg",
                                     file_size=99, file_name="a.jpg", width=10, height=20,
                                     duration=3)  # fmt: skip
    where = Media(kind="location", latitude=51.5, longitude=-0.1)
    assert received("s", _msg(media=where), NOW).content == LocationContent(
        latitude=51.5, longitude=-0.1
    )
    card = Media(kind="contact", phone="4477", first_name="Bob")
    assert isinstance(received("s", _msg(media=card), NOW).content, ContactContent)
    odd = Media(kind="unsupported", provider_kind="MessageMediaPoll")
    content = received("s", _msg(media=odd), NOW).content
    assert content == UnsupportedContent(provider_kind="MessageMediaPoll")
    no_file = Media(kind="video")  # never dropped, even without a file reference
    assert isinstance(received("s", _msg(media=no_file), NOW).content, UnsupportedContent)
    empty = received("s", _msg(), NOW).content
    assert empty == UnsupportedContent(provider_kind="empty")


def test_edits_and_deletions() -> None:
    edit = edited("s1", _msg(text="v2", edit_date=NOW + timedelta(seconds=5)), NOW)
    again = edited("s1", _msg(text="v2", edit_date=NOW + timedelta(seconds=5)), NOW)
    other = edited("s1", _msg(text="v3", edit_date=NOW + timedelta(seconds=9)), NOW)
    assert edit.deterministic_id() == again.deterministic_id() != other.deterministic_id()
    gone = deleted("s1", received("s1", _msg(), NOW).chat, [9, 7, 8], NOW)
    assert gone.message_ids == ("7", "8", "9")
    assert gone.provider.message_id == "7"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("@News_Channel", "@news_channel"),
        ("https://t.me/news_channel", "@news_channel"),
        ("t.me/s/news_channel", "@news_channel"),
        ("news_channel", "@news_channel"),
        (" -1001234567890 ", "-1001234567890"),
        ("555", "555"),
    ],
)
def test_peer_references_normalize(ref: str, expected: str) -> None:
    assert normalize_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "no spaces please", "@", "https://example.com/x"])
def test_bad_peer_references_are_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        normalize_ref(ref)


def test_peers_round_trip_through_json() -> None:
    assert peer_from_json(peer_json(CHANNEL)) == CHANNEL
    assert peer_from_json(None) is None
