"""Viber callbacks judged by the official client library (``viberbot.create_request``): each
callback parses there, and the normalizer's event says what viberbot says (who, kind,
text, token, the ``conversation_started`` context)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.normalized import only
from viberbot.api.viber_requests import (
    ViberConversationStartedRequest,
    ViberDeliveredRequest,
    ViberFailedRequest,
    ViberMessageRequest,
    ViberSeenRequest,
    ViberSubscribedRequest,
    ViberUnsubscribedRequest,
    create_request,
)

from switchboard.events import Event
from switchboard.events.catalog.conv import (
    ContactStatus,
    ContactStatusChanged,
    MessageReceived,
)
from switchboard.events.catalog.delivery import DeliveryReceipt
from switchboard.ingest.normalize.viber import normalize_payload

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TS = 1763640000123
USER = {
    "id": "01234567890A=",
    "name": "Ada L",
    "avatar": "https://media-direct.cdn.viber.com/a.jpg",
    "country": "UA",
    "language": "uk",
    "api_version": 10,
}
IMG = "https://dl-media.viber.com/1/share/2/long/bots/generic-message/image.jpg"


def message(body: dict[str, Any], token: int = 4912661846655238145) -> dict[str, Any]:
    return {
        "event": "message",
        "timestamp": TS,
        "chat_hostname": "SN-376_",
        "message_token": token,
        "sender": USER,
        "message": body,
        "silent": False,
    }


def receipt(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "timestamp": TS,
        "chat_hostname": "SN-376_",
        "message_token": 4912661846655238146,
        "user_id": USER["id"],
        **extra,
    }


def started(**extra: Any) -> dict[str, Any]:
    return {
        "event": "conversation_started",
        "timestamp": TS,
        "chat_hostname": "SN-376_",
        "message_token": 4912661846655238147,
        "type": "open",
        "user": USER,
        "subscribed": False,
        **extra,
    }


CASES: list[tuple[str, dict[str, Any], type[Event]]] = [
    ("text", message({"type": "text", "text": "hi"}), MessageReceived),
    (
        "text with tracking",
        message({"type": "text", "text": "1", "tracking_data": "menu"}),
        MessageReceived,
    ),
    ("empty text", message({"type": "text", "text": ""}), MessageReceived),
    ("url", message({"type": "url", "media": "https://example.com/offer"}), MessageReceived),
    ("picture", message({"type": "picture", "media": IMG, "thumbnail": IMG}), MessageReceived),
    (
        "picture with caption",
        message({"type": "picture", "text": "look", "media": IMG, "thumbnail": IMG}),
        MessageReceived,
    ),
    (
        "video",
        message({"type": "video", "media": IMG + ".mp4", "size": 1200, "duration": 12}),
        MessageReceived,
    ),
    (
        "file",
        message({"type": "file", "media": IMG + ".pdf", "size": 1000, "file_name": "offer.pdf"}),
        MessageReceived,
    ),
    ("sticker", message({"type": "sticker", "sticker_id": 46105, "media": IMG}), MessageReceived),
    (
        "contact",
        message({"type": "contact", "contact": {"name": "Bob", "phone_number": "+380501234567"}}),
        MessageReceived,
    ),
    (
        "location",
        message({"type": "location", "location": {"lat": 50.45, "lon": 30.52, "address": "Kyiv"}}),
        MessageReceived,
    ),
    (
        "rich media",
        message({"type": "rich_media", "rich_media": {"Type": "rich_media", "Buttons": []}}),
        MessageReceived,
    ),
    ("delivered", receipt("delivered"), DeliveryReceipt),
    ("seen", receipt("seen"), DeliveryReceipt),
    ("failed", receipt("failed", desc="receiver is not subscribed"), DeliveryReceipt),
    (
        "subscribed",
        {"event": "subscribed", "timestamp": TS, "message_token": 491266184665523815, "user": USER},
        ContactStatusChanged,
    ),
    ("unsubscribed", receipt("unsubscribed"), ContactStatusChanged),
    ("conversation started", started(), ContactStatusChanged),
    ("conversation started with context", started(context="spring_sale"), ContactStatusChanged),
    (
        "conversation started subscribed with context",
        started(context="ref-42", subscribed=True),
        ContactStatusChanged,
    ),
    ("conversation started empty context", started(context=""), ContactStatusChanged),
]

KINDS = {
    "text": "text",
    "url": "text",
    "picture": "photo",
    "video": "video",
    "file": "document",
    "sticker": "sticker",
    "contact": "contact",
    "location": "location",
    "rich_media": "unsupported",
}
RECEIPTS = {
    ViberDeliveredRequest: "delivered",
    ViberSeenRequest: "read",
    ViberFailedRequest: "failed",
}


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "payload", "expected"), CASES, ids=[c[0] for c in CASES])
def test_normalizer_agrees_with_viberbot(
    name: str, payload: dict[str, Any], expected: type[Event]
) -> None:
    request = create_request(payload)
    event = only(normalize_payload(payload, account="shop", raw_id="vb:raw:1", received_at=NOW))
    assert type(event) is expected
    if isinstance(event, DeliveryReceipt | ContactStatusChanged):
        assert int(event.at.timestamp() * 1000) == request.timestamp
    if isinstance(event, DeliveryReceipt):
        assert event.status == RECEIPTS[type(request)]
        assert event.recipient == request.user_id
        assert event.provider_message_id == str(request.message_token)
        assert event.reason == (request.desc if isinstance(request, ViberFailedRequest) else None)
        return
    if isinstance(event, ContactStatusChanged):
        if isinstance(request, ViberUnsubscribedRequest):
            assert (event.status, event.sender.id) == (ContactStatus.UNSUBSCRIBED, request.user_id)
            return
        assert isinstance(request, ViberSubscribedRequest | ViberConversationStartedRequest)
        assert event.sender.id == request.user.id
        assert event.sender.display_name == request.user.name
        if isinstance(request, ViberSubscribedRequest):
            assert event.status is ContactStatus.SUBSCRIBED
            return
        assert event.status is ContactStatus.CONVERSATION_STARTED
        assert event.provider.message_id.endswith(str(request.message_token))
        if request.context:
            assert event.referral is not None
            assert (event.referral.source, event.referral.campaign) == (
                "deep_link",
                request.context,
            )
        else:
            assert event.referral is None
        return
    assert isinstance(request, ViberMessageRequest)
    assert isinstance(event, MessageReceived)
    assert event.sender.id == event.chat.id == request.sender.id
    assert event.sender.display_name == request.sender.name
    assert event.sender.language_code == request.sender.language
    assert event.provider.message_id == str(request.message_token)
    assert int(event.sent_at.timestamp() * 1000) == request.timestamp
    vmsg = request.message
    vtype = vmsg.to_dict()["type"]  # viberbot's own serialization names the type
    assert event.content.kind == KINDS[vtype]
    content: Any = event.content
    if vtype == "text":
        assert content.text == vmsg.text
    elif vtype == "url":
        assert content.text == vmsg.media
    elif vtype in ("picture", "video", "file"):
        assert content.file.url == vmsg.media
        assert content.caption == (getattr(vmsg, "text", None) or None)
    elif vtype == "sticker":
        assert content.file.file_id == str(vmsg.sticker_id)
    elif vtype == "contact":
        assert (content.phone, content.first_name) == (vmsg.contact.phone_number, vmsg.contact.name)
    elif vtype == "location":
        assert (content.latitude, content.longitude) == (
            vmsg.location.latitude,
            vmsg.location.longitude,
        )
    else:
        assert content.provider_kind == vtype
