"""Telegram Update -> conversation events, table-driven over real-shaped payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.normalized import Normalizer, subset

from switchboard.events.catalog.conv import (
    CallbackReceived,
    ContactStatus,
    ContactStatusChanged,
    MessageEdited,
    MessageReceived,
    UpdateUnsupported,
)
from switchboard.ingest.normalize.telegram import normalize_update

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
USER = {
    "id": 555,
    "is_bot": False,
    "first_name": "Ada",
    "last_name": "L",
    "username": "ada",
    "language_code": "en",
}
CHAT = {"id": 555, "type": "private", "first_name": "Ada", "username": "ada"}


def msg(**content: Any) -> dict[str, Any]:
    return {"message_id": 42, "from": USER, "chat": CHAT, "date": 1763640000, **content}


run = Normalizer(normalize_update, "tg:demo:1", NOW)
one = run.one


PHOTO = [
    {"file_id": "s", "file_unique_id": "us", "width": 90, "height": 51, "file_size": 1200},
    {"file_id": "l", "file_unique_id": "ul", "width": 1280, "height": 720, "file_size": 84211},
]
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("text", msg(text="hi"), {"kind": "text", "text": "hi"}),
    (
        "photo",
        msg(photo=PHOTO, caption="look"),
        {"kind": "photo", "caption": "look", "file": {"file_id": "l", "width": 1280}},
    ),
    (
        "video",
        msg(video={"file_id": "v", "duration": 12, "mime_type": "video/mp4"}),
        {"kind": "video", "file": {"file_id": "v", "duration": 12, "mime_type": "video/mp4"}},
    ),
    (
        "audio",
        msg(audio={"file_id": "a", "title": "Song", "performer": "Band", "duration": 200}),
        {"kind": "audio", "title": "Song", "performer": "Band"},
    ),
    (
        "voice",
        msg(voice={"file_id": "o", "duration": 3, "mime_type": "audio/ogg"}),
        {"kind": "voice", "file": {"file_id": "o", "mime_type": "audio/ogg"}},
    ),
    (
        "document",
        msg(
            document={
                "file_id": "d",
                "file_name": "offer.pdf",
                "mime_type": "application/pdf",
                "file_size": 1000,
            }
        ),
        {"kind": "document", "file": {"file_name": "offer.pdf"}},
    ),
    (
        "animation",
        msg(animation={"file_id": "g", "mime_type": "video/mp4"}, document={"file_id": "g"}),
        {"kind": "animation"},
    ),
    (
        "sticker",
        msg(
            sticker={
                "file_id": "st",
                "emoji": "👍",
                "set_name": "pack",
                "width": 512,
                "height": 512,
            }
        ),
        {"kind": "sticker", "emoji": "👍", "set_name": "pack"},
    ),
    (
        "location",
        msg(location={"latitude": 52.52, "longitude": 13.4}),
        {"kind": "location", "latitude": 52.52, "longitude": 13.4},
    ),
    (
        "venue",
        msg(
            venue={
                "location": {"latitude": 1.0, "longitude": 2.0},
                "title": "Cafe",
                "address": "Main St",
            }
        ),
        {"kind": "location", "title": "Cafe", "address": "Main St"},
    ),
    (
        "contact",
        msg(contact={"phone_number": "+4917612345678", "first_name": "Max", "user_id": 777}),
        {"kind": "contact", "phone": "+4917612345678", "user_id": "777"},
    ),
    (
        "dice",
        msg(dice={"emoji": "🎲", "value": 4}),
        {"kind": "unsupported", "provider_kind": "dice", "raw_ref": "tg:demo:1"},
    ),
]


@pytest.mark.parametrize(("case", "message", "content"), CASES, ids=[c[0] for c in CASES])
def test_message_content_kinds(case: str, message: dict[str, Any], content: dict[str, Any]) -> None:
    event = one({"update_id": 1, "message": message})
    assert isinstance(event, MessageReceived)
    subset(content, event.content.model_dump(mode="json"))
    assert event.chat.id == "555"
    assert event.sender.display_name == "Ada L"
    assert event.sender.username == "ada"
    assert event.provider.message_id == "42"
    assert event.provider.update_id == "1"
    assert event.deterministic_id() == "telegram:demo:555/42/message_received"
    assert event.sent_at == datetime.fromtimestamp(1763640000, UTC)


def test_reply_and_channel_post() -> None:
    reply = one({"update_id": 2, "message": msg(text="yes", reply_to_message=msg(text="q?"))})
    assert reply.reply_to == "42"
    post = one(
        {
            "update_id": 3,
            "channel_post": {
                "message_id": 9,
                "chat": {"id": -1001, "type": "channel", "title": "News", "username": "news"},
                "date": 1763640000,
                "text": "hello",
            },
        }
    )
    assert isinstance(post, MessageReceived)
    assert post.chat.type.value == "channel"
    assert post.sender.id == "-1001"
    assert post.sender.display_name == "News"


def test_edits() -> None:
    edited = one({"update_id": 4, "edited_message": msg(text="fixed", edit_date=1763640100)})
    assert isinstance(edited, MessageEdited)
    assert edited.content.model_dump()["text"] == "fixed"
    assert edited.edited_at == datetime.fromtimestamp(1763640100, UTC)
    assert edited.deterministic_id() == "telegram:demo:555/42/edited@1763640100000"


def test_callback_query() -> None:
    event = one(
        {
            "update_id": 5,
            "callback_query": {
                "id": "cbq-1",
                "from": USER,
                "chat_instance": "x",
                "data": "buy:1",
                "message": msg(text="choose"),
            },
        }
    )
    assert isinstance(event, CallbackReceived)
    assert (event.callback_id, event.data, event.message_id) == ("cbq-1", "buy:1", "42")


@pytest.mark.parametrize(
    ("status", "expected"), [("kicked", ContactStatus.BLOCKED), ("member", ContactStatus.UNBLOCKED)]
)
def test_my_chat_member(status: str, expected: ContactStatus) -> None:
    event = one(
        {
            "update_id": 6,
            "my_chat_member": {
                "chat": CHAT,
                "from": USER,
                "date": 1763640000,
                "old_chat_member": {"status": "member", "user": USER},
                "new_chat_member": {"status": status, "user": USER},
            },
        }
    )
    assert isinstance(event, ContactStatusChanged)
    assert event.status is expected


def test_unknown_update_kind_is_kept_not_dropped() -> None:
    event = one({"update_id": 7, "inline_query": {"id": "q", "from": USER, "query": "x"}})
    assert isinstance(event, UpdateUnsupported)
    assert (event.provider_kind, event.raw_id) == ("inline_query", "tg:demo:1")


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ([], "no integer update_id"),
        ({"update_id": "1"}, "no integer update_id"),
        ({"update_id": 1, "message": "text"}, "not an object"),
        ({"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "x"}}, "chat.id"),
        ({"update_id": 1, "message": msg(photo=[{"width": 1}])}, "file_id"),
        # an integer past 64 bits reaches here as a float (orjson): 1e+40 would key a chat
        ({"update_id": 1, "message": msg(text="x", chat={**CHAT, "id": 1e40})}, "chat.id"),
        ({"update_id": 1, "message": msg(text="x", chat={**CHAT, "id": 2**64})}, "chat.id"),
        ({"update_id": 1, "message": msg(text="x", chat={**CHAT, "id": "555"})}, "chat.id"),
        ({"update_id": 1, "message": msg(text="x", chat={**CHAT, "id": True})}, "chat.id"),
        ({"update_id": 1, "message": {**msg(text="x"), "from": {**USER, "id": 5.5}}}, "from.id"),
        ({"update_id": 1, "message": {**msg(text="x"), "date": "yesterday"}}, "unix timestamp"),
        (
            {
                "update_id": 1,
                "message": {k: v for k, v in msg(text="x").items() if k != "message_id"},
            },
            "malformed",
        ),
    ],
)
def test_unreadable_updates_raise_with_a_reason(update: Any, reason: str) -> None:
    run.refuses(update, reason)
