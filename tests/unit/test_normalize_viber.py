"""Viber REST Bot API callbacks -> conversation events, table-driven over real-shaped payloads
(the shapes of Viber's callback reference)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.normalized import Normalizer, subset
from tests.support.own_chat import assert_own_chat

from switchboard.events.catalog.conv import (
    ContactStatus,
    ContactStatusChanged,
    MessageReceived,
    UpdateUnsupported,
)
from switchboard.events.catalog.delivery import DeliveryReceipt
from switchboard.events.subjects import token
from switchboard.ingest.normalize.viber import normalize_payload

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RAW = "vb:demo:message:4912661846655238145"
USER_ID = "01234567890A="
TOKEN = 4912661846655238145
TS = 1457764197627
AT = datetime(2016, 3, 12, 6, 29, 57, 627000, tzinfo=UTC)
USER = {
    "id": USER_ID,
    "name": "John McClane",
    "avatar": "https://avatar.example.com/john.jpg",
    "country": "UK",
    "language": "en",
    "api_version": 10,
}
PIC = "https://dl-media.viber.com/5/media/2/short/any/sig/image/0x0/95e0/5688fd.jpg"


def callback(event: str, **fields: Any) -> dict[str, Any]:
    return {
        "event": event,
        "timestamp": TS,
        "chat_hostname": "SN-CHAT-08_",
        "message_token": TOKEN,
        **fields,
    }


def message(**msg: Any) -> dict[str, Any]:
    return callback("message", sender=USER, message=msg, silent=False)


run = Normalizer(normalize_payload, RAW, NOW)
one = run.one


CONTENT_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "text",
        message(type="text", text="a message to the service", tracking_data="t-1"),
        {"kind": "text", "text": "a message to the service"},
    ),
    (
        "picture",
        message(type="picture", text="the crack", media=PIC, thumbnail=PIC, file_name="a.jpg"),
        {
            "kind": "photo",
            "caption": "the crack",
            "file": {"file_id": PIC, "url": PIC, "file_name": "a.jpg"},
        },
    ),
    (
        "picture without caption",
        message(type="picture", text="", media=PIC),
        {"kind": "photo", "caption": None, "file": {"file_id": PIC}},
    ),
    (
        "video",
        message(
            type="video",
            media="https://dl-media.viber.com/v.mp4",
            thumbnail=PIC,
            size=10240,
            duration=12,
        ),
        {
            "kind": "video",
            "file": {
                "file_id": "https://dl-media.viber.com/v.mp4",
                "file_size": 10240,
                "duration": 12,
            },
        },
    ),
    (
        "file",
        message(
            type="file",
            media="https://dl-media.viber.com/f.pdf",
            size=20480,
            file_name="offer.pdf",
        ),
        {
            "kind": "document",
            "file": {
                "file_id": "https://dl-media.viber.com/f.pdf",
                "url": "https://dl-media.viber.com/f.pdf",
                "file_name": "offer.pdf",
                "file_size": 20480,
            },
        },
    ),
    (
        "sticker",
        message(type="sticker", sticker_id=46105, media="https://viber.com/sticker.png"),
        {
            "kind": "sticker",
            "file": {"file_id": "46105", "url": "https://viber.com/sticker.png"},
        },
    ),
    (
        "contact",
        message(type="contact", contact={"name": "Itamar", "phone_number": "+972511123123"}),
        {"kind": "contact", "phone": "+972511123123", "first_name": "Itamar"},
    ),
    (
        "location",
        message(type="location", location={"lat": 50.76891, "lon": 6.11499}),
        {"kind": "location", "latitude": 50.76891, "longitude": 6.11499},
    ),
    (
        "url",
        message(type="url", media="https://www.example.com/go_here"),
        {"kind": "text", "text": "https://www.example.com/go_here"},
    ),
    (
        "rich media",
        message(type="rich_media", rich_media={"Type": "rich_media", "Buttons": []}),
        {"kind": "unsupported", "provider_kind": "rich_media", "raw_ref": RAW},
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "content"), CONTENT_CASES, ids=[c[0] for c in CONTENT_CASES]
)
def test_message_types(case: str, payload: dict[str, Any], content: dict[str, Any]) -> None:
    event = one(payload)
    assert isinstance(event, MessageReceived)
    subset(content, event.content.model_dump(mode="json"))
    assert (event.channel.value, event.account) == ("viber", "demo")
    assert_own_chat(event, USER_ID, "John McClane")
    assert event.sender.language_code == "en"
    assert (event.provider.message_id, event.provider.raw_id) == (str(TOKEN), RAW)
    assert event.deterministic_id() == f"viber:demo:{token(USER_ID)}/{TOKEN}/message_received"
    assert event.sent_at == AT  # milliseconds kept exactly
    assert event.received_at == NOW


def test_a_retried_callback_has_the_same_id() -> None:
    payload = message(type="text", text="hi")
    first = one(payload)
    again = normalize_payload(
        payload, account="demo", raw_id="vb:demo:message:retry", received_at=NOW.replace(hour=13)
    )[0]
    assert again.deterministic_id() == first.deterministic_id()


def test_message_tokens_may_arrive_as_strings() -> None:
    event = one({**message(type="text", text="hi"), "message_token": str(TOKEN)})
    assert event.provider.message_id == str(TOKEN)


RECEIPT_CASES: list[tuple[dict[str, Any], str, str | None]] = [
    (callback("delivered", user_id=USER_ID), "delivered", None),
    (callback("seen", user_id=USER_ID), "read", None),
    (
        callback("failed", user_id=USER_ID, desc="failure description"),
        "failed",
        "failure description",
    ),
    (callback("failed", user_id=USER_ID), "failed", None),
]


@pytest.mark.parametrize(("payload", "status", "reason"), RECEIPT_CASES)
def test_delivery_callbacks_are_receipts(
    payload: dict[str, Any], status: str, reason: str | None
) -> None:
    event = one(payload)
    assert isinstance(event, DeliveryReceipt)
    assert (event.status, event.reason) == (status, reason)
    assert (event.channel.value, event.account, event.recipient) == ("viber", "demo", USER_ID)
    assert (event.provider_message_id, event.message_id) == (str(TOKEN), None)
    assert (event.at, event.raw_id) == (AT, RAW)
    assert event.deterministic_id() == f"rc:viber:demo:{TOKEN}:{token(USER_ID)}:{status}"


def test_receipts_of_one_message_are_distinct() -> None:
    ids = {one(p).deterministic_id() for p, *_ in RECEIPT_CASES}
    assert len(ids) == 3  # delivered, read, failed (the two failed ones are one receipt)


STATUS_CASES: list[tuple[dict[str, Any], ContactStatus, str | None]] = [
    (callback("subscribed", user=USER), ContactStatus.SUBSCRIBED, "John McClane"),
    (callback("unsubscribed", user_id=USER_ID), ContactStatus.UNSUBSCRIBED, None),
    (
        callback(
            "conversation_started",
            type="open",
            context="ad-campaign-7",
            user=USER,
            subscribed=False,
        ),
        ContactStatus.CONVERSATION_STARTED,
        "John McClane",
    ),
]


@pytest.mark.parametrize(("payload", "status", "name"), STATUS_CASES)
def test_subscription_callbacks_are_status_changes(
    payload: dict[str, Any], status: ContactStatus, name: str | None
) -> None:
    event = one(payload)
    assert isinstance(event, ContactStatusChanged)
    assert event.status is status
    assert_own_chat(event, USER_ID, name)
    assert event.provider.message_id == f"{payload['event']}:{TOKEN}"
    assert event.at == AT
    assert event.deterministic_id() == (
        f"viber:demo:{token(USER_ID)}/{payload['event']}:{TOKEN}/contact_status_changed"
    )


def test_status_changes_with_one_token_are_distinct() -> None:
    assert len({one(p).deterministic_id() for p, *_ in STATUS_CASES}) == 3


def test_the_webhook_check_is_not_a_conversation_event() -> None:
    assert (
        run({"event": "webhook", "timestamp": TS, "chat_hostname": "SN-1", "message_token": 1})
        == []
    )


def test_unknown_events_are_kept_not_dropped() -> None:
    event = one(callback("client_status", user_id=USER_ID))
    assert isinstance(event, UpdateUnsupported)
    assert (event.channel.value, event.provider_kind, event.raw_id) == (
        "viber",
        "client_status",
        RAW,
    )


ERROR_CASES: list[tuple[Any, str]] = [
    ([], "not a Viber callback: the body is not a JSON object"),
    ({"timestamp": TS}, "not a Viber callback: 'event' is missing or not a string"),
    ({"event": 3}, "not a Viber callback: 'event' is missing or not a string"),
    (
        {**message(type="text", text="x"), "message_token": None},
        "Viber message callback: message_token None is missing or not an integer",
    ),
    (
        {**message(type="text", text="x"), "message_token": True},
        "message_token True is missing or not an integer",
    ),
    (
        {**message(type="text", text="x"), "timestamp": "1457764197627"},
        "Viber message callback: timestamp '1457764197627' is not unix milliseconds",
    ),
    ({**message(type="text", text="x"), "timestamp": -5}, "timestamp -5 is not unix milliseconds"),
    ({**message(type="text", text="x"), "timestamp": 10**20}, "is out of range"),
    (callback("message", message={"type": "text", "text": "x"}), "sender is missing or not an obj"),
    (
        callback("message", sender={"name": "x"}, message={"type": "text", "text": "x"}),
        "Viber message callback: sender.id is missing or not a non-empty string",
    ),
    (
        callback("message", sender={**USER, "name": 5}, message={"type": "text", "text": "x"}),
        "sender.name is not a string",
    ),
    (callback("message", sender=USER), "Viber message callback: message is missing or not an obj"),
    (message(text="x"), "message.type is missing or not a non-empty string"),
    (message(type="text"), "message.text is missing or not a non-empty string"),
    (message(type="picture", text="x"), "message.media is missing or not a non-empty string"),
    (message(type="url"), "message.media is missing"),
    (message(type="video", media=PIC, size=-1), "message.size -1 is not a non-negative number"),
    (message(type="video", media=PIC, duration="1s"), "message.duration '1s' is not a non-neg"),
    (message(type="file", media=PIC, file_name=1), "message.file_name is not a string"),
    (message(type="sticker"), "message.sticker_id is missing or not an id"),
    (message(type="sticker", sticker_id=True), "message.sticker_id is missing or not an id"),
    (message(type="contact", contact={"name": "x"}), "message.contact.phone_number is missing"),
    (message(type="contact"), "message.contact is missing or not an object"),
    (message(type="location", location={"lon": 1}), "message.location.lat is missing or not a n"),
    (
        message(type="location", location={"lat": 91.5, "lon": 1}),
        "Viber message callback: latitude: Input should be less than or equal to 90",
    ),
    (callback("delivered"), "Viber delivered callback: user_id is missing or not a non-empty str"),
    (callback("seen", user_id=""), "Viber seen callback: user_id is missing"),
    (callback("failed", user_id=USER_ID, desc=404), "Viber failed callback: desc is not a string"),
    (callback("subscribed"), "Viber subscribed callback: user is missing or not an object"),
    (callback("unsubscribed"), "Viber unsubscribed callback: user_id is missing"),
    (
        callback("conversation_started", user={"name": "x"}),
        "Viber conversation_started callback: user.id is missing",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), ERROR_CASES)
def test_unreadable_callbacks_raise_with_a_precise_reason(payload: Any, reason: str) -> None:
    run.refuses(payload, reason)


ALL_CALLBACKS: list[dict[str, Any]] = [
    *(c[1] for c in CONTENT_CASES),
    *(c[0] for c in RECEIPT_CASES),
    *(c[0] for c in STATUS_CASES),
    callback("client_status", user_id=USER_ID),
]


@pytest.mark.parametrize("payload", ALL_CALLBACKS)
def test_normalizing_is_pure_and_every_event_round_trips(payload: dict[str, Any]) -> None:
    run.is_pure_and_codec_safe(payload)
