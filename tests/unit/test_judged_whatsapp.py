"""WhatsApp Cloud webhooks judged by a real client library (pywa): each payload is parsed by
pywa through its own routing (``_get_handler_type``) and update classes, and the
normalizer's event must say what pywa says (who, which chat, what kind, text, ids)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pywa import WhatsApp
from pywa.types.base_update import RawUpdate
from pywa.types.chat import ChatType as PywaChatType
from tests.support.normalized import only
from tests.support.whatsapp_bodies import (
    PHONE_ID,
    TS,
    UNKNOWN_TYPE,
    body,
    change,
    interactive,
    value,
)

from switchboard.events import Event
from switchboard.events.catalog.common import ChatType
from switchboard.events.catalog.conv import (
    CallbackReceived,
    ContactNumberChanged,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ServiceMessageReceived,
)
from switchboard.events.catalog.delivery import DeliveryReceipt
from switchboard.ingest.normalize.whatsapp import normalize_payload

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BSUID = "US.13491208655302741918"
PARENT = "CC.ENT.88112233"
PHONE = "16505551234"
GROUP = "120363041234567890@g.us"

WA = WhatsApp(phone_id=PHONE_ID, token="test-token", server=None, verify_token=None)


def person(
    user_id: str = BSUID, wa_id: str | None = PHONE, name: str = "Ada", username: str | None = None
) -> dict[str, Any]:
    profile: dict[str, Any] = {"name": name}
    if username:
        profile["username"] = username
    contact: dict[str, Any] = {"profile": profile, "user_id": user_id}
    if wa_id:
        contact["wa_id"] = wa_id
    return contact


def webhook(**parts: Any) -> dict[str, Any]:
    """A body of one ``messages`` change whose value holds ``parts``."""
    return body(change(value(**parts)))


def message(
    mtype: str,
    *,
    wamid: str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUI=",
    who: dict[str, Any] | None = None,
    sender_phone: str | None = PHONE,
    sender_bsuid: str | None = BSUID,
    group: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    msg: dict[str, Any] = {"id": wamid, "timestamp": TS, "type": mtype, **fields}
    if sender_phone:
        msg["from"] = sender_phone
    if sender_bsuid:
        msg["from_user_id"] = sender_bsuid
    if group:
        msg["group_id"] = group
    contact = who or person(wa_id=sender_phone, user_id=sender_bsuid or BSUID)
    return webhook(contacts=[contact], messages=[msg])


def edit(n: int, new: dict[str, Any], **who: Any) -> dict[str, Any]:
    """The customer's edit ``wamid.EDIT<n>`` of their message ``wamid.ORIG<n>`` to ``new``."""
    edited = {"original_message_id": f"wamid.ORIG{n}", "message": new}
    return message("edit", wamid=f"wamid.EDIT{n}", edit=edited, **who)


def status(
    value: str, *, recipient_id: str | None = PHONE, user_id: str | None = BSUID, **extra: Any
) -> dict[str, Any]:
    st: dict[str, Any] = {"id": "wamid.OUT1", "status": value, "timestamp": TS, **extra}
    if recipient_id:
        st["recipient_id"] = recipient_id
    if user_id:
        st["recipient_user_id"] = user_id
    return webhook(contacts=[person(wa_id=recipient_id, user_id=user_id or BSUID)], statuses=[st])


MEDIA = {"id": "1122334455", "mime_type": "image/jpeg", "sha256": "abc"}
REFERRAL = {
    "source_url": "https://fb.me/3cr4Wqqkv",
    "source_id": "120208901234560001",
    "source_type": "ad",
    "headline": "Spring sale",
    "body": "Write to us",
    "media_type": "image",
    "image_url": "https://scontent.xx.fbcdn.net/x.jpg",
    "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-",
}
ERRORS = [
    {
        "code": 131026,
        "title": "Message undeliverable",
        "message": "Message undeliverable",
        "error_data": {"details": "Receiver is incapable of receiving this message"},
    }
]

CASES: list[tuple[str, dict[str, Any], type[Event]]] = [
    # who: phone and BSUID, BSUID only (username adopted), parent BSUIDs, usernames
    ("text phone+bsuid", message("text", text={"body": "hi"}), MessageReceived),
    ("text bsuid only", message("text", sender_phone=None, text={"body": "hi"}), MessageReceived),
    (
        "text parent bsuid",
        message("text", sender_phone=None, sender_bsuid=PARENT, text={"body": "portfolio"}),
        MessageReceived,
    ),
    (
        "text with username",
        message(
            "text",
            sender_phone=None,
            who=person(wa_id=None, username="ada.l"),
            text={"body": "hi from @ada.l"},
        ),
        MessageReceived,
    ),
    (
        "bsuid only from contacts",
        message("text", sender_bsuid=None, who=person(wa_id=PHONE), text={"body": "legacy from"}),
        MessageReceived,
    ),
    ("image", message("image", image={**MEDIA, "caption": "look"}), MessageReceived),
    (
        "image bsuid only",
        message("image", sender_phone=None, image=MEDIA),
        MessageReceived,
    ),
    (
        "video",
        message("video", video={**MEDIA, "mime_type": "video/mp4", "caption": "clip"}),
        MessageReceived,
    ),
    ("audio", message("audio", audio={**MEDIA, "mime_type": "audio/mpeg"}), MessageReceived),
    (
        "voice",
        message("audio", audio={**MEDIA, "mime_type": "audio/ogg", "voice": True}),
        MessageReceived,
    ),
    (
        "document",
        message(
            "document",
            document={**MEDIA, "mime_type": "application/pdf", "filename": "offer.pdf"},
        ),
        MessageReceived,
    ),
    (
        "sticker",
        message("sticker", sticker={**MEDIA, "mime_type": "image/webp", "animated": False}),
        MessageReceived,
    ),
    (
        "location",
        message(
            "location",
            location={"latitude": 52.52, "longitude": 13.4, "name": "HQ", "address": "Main 1"},
        ),
        MessageReceived,
    ),
    (
        "contacts",
        message(
            "contacts",
            contacts=[
                {
                    "name": {"formatted_name": "Bob B", "first_name": "Bob"},
                    "phones": [{"phone": "+1 650 555 9999", "wa_id": "16505559999"}],
                }
            ],
        ),
        MessageReceived,
    ),
    (
        "reaction",
        message("reaction", reaction={"message_id": "wamid.OUT1", "emoji": "\N{THUMBS UP SIGN}"}),
        MessageReceived,
    ),
    (
        "unsupported",
        message(
            "unsupported",
            errors=[UNKNOWN_TYPE],
            unsupported={"type": "poll"},
        ),
        MessageReceived,
    ),
    (
        "reply",
        message("text", text={"body": "yes"}, context={"from": "15550001111", "id": "wamid.OUT1"}),
        MessageReceived,
    ),
    (
        "forwarded",
        message("text", text={"body": "fwd"}, context={"forwarded": True}),
        MessageReceived,
    ),
    (
        "button",
        message("button", button={"payload": "STOP", "text": "Stop promotions"}),
        CallbackReceived,
    ),
    (
        "button_reply",
        message(
            "interactive",
            interactive=interactive("button_reply", id="yes", title="Yes"),
            context={"from": "15550001111", "id": "wamid.OUT1"},
        ),
        CallbackReceived,
    ),
    (
        "list_reply",
        message(
            "interactive",
            interactive=interactive("list_reply", id="row-2", title="Tuesday", description="10:00"),
            context={"from": "15550001111", "id": "wamid.OUT1"},
        ),
        CallbackReceived,
    ),
    (
        "button_reply bsuid only",
        message(
            "interactive",
            sender_phone=None,
            interactive=interactive("button_reply", id="no", title="No"),
            context={"from": "15550001111", "id": "wamid.OUT1"},
        ),
        CallbackReceived,
    ),
    # attribution: click-to-WhatsApp ads
    ("ctwa referral", message("text", text={"body": "info?"}, referral=REFERRAL), MessageReceived),
    (
        "ctwa referral bsuid only",
        message("text", sender_phone=None, text={"body": "price?"}, referral=REFERRAL),
        MessageReceived,
    ),
    (
        "post referral",
        message(
            "text",
            text={"body": "from a post"},
            referral={"source_url": "https://fb.me/p", "source_id": "991", "source_type": "post"},
        ),
        MessageReceived,
    ),
    (
        "image with referral",
        message("image", image=MEDIA, referral=REFERRAL),
        MessageReceived,
    ),
    # groups: the group is the conversation, the sender varies
    ("group text", message("text", group=GROUP, text={"body": "hello all"}), MessageReceived),
    (
        "group text bsuid only",
        message("text", group=GROUP, sender_phone=None, text={"body": "me too"}),
        MessageReceived,
    ),
    ("group image", message("image", group=GROUP, image=MEDIA), MessageReceived),
    (
        "group location",
        message("location", group=GROUP, location={"latitude": 1.5, "longitude": 2.5}),
        MessageReceived,
    ),
    (
        "group reply",
        message("text", group=GROUP, text={"body": "ok"}, context={"id": "wamid.OUT2"}),
        MessageReceived,
    ),
    # edits and revokes
    ("edit", edit(1, {"type": "text", "text": {"body": "fixed typo"}}), MessageEdited),
    (
        "edit bsuid only",
        edit(2, {"type": "text", "text": {"body": "second try"}}, sender_phone=None),
        MessageEdited,
    ),
    (
        "edit caption in group",
        edit(3, {"type": "image", "image": {**MEDIA, "caption": "new caption"}}, group=GROUP),
        MessageEdited,
    ),
    (
        "revoke",
        message("revoke", wamid="wamid.REV1", revoke={"original_message_id": "wamid.ORIG1"}),
        MessageDeleted,
    ),
    (
        "revoke in group",
        message(
            "revoke", wamid="wamid.REV2", group=GROUP, revoke={"original_message_id": "wamid.G1"}
        ),
        MessageDeleted,
    ),
    (
        "revoke bsuid only",
        message(
            "revoke",
            wamid="wamid.REV3",
            sender_phone=None,
            revoke={"original_message_id": "wamid.ORIG4"},
        ),
        MessageDeleted,
    ),
    # system notices
    (
        "user_changed_number",
        message(
            "system",
            wamid="wamid.SYS1",
            system={
                "body": "User A changed from 16505551234 to 16505559999",
                "wa_id": "16505559999",
                "user_id": "US.7777",
                "type": "user_changed_number",
            },
        ),
        ContactNumberChanged,
    ),
    (
        "customer_changed_number (old name)",
        message(
            "system",
            wamid="wamid.SYS2",
            system={
                "body": "User A changed number",
                "new_wa_id": "16505558888",
                "type": "customer_changed_number",
            },
        ),
        ContactNumberChanged,
    ),
    (
        "user_changed_user_id",
        message(
            "system",
            wamid="wamid.SYS3",
            system={"body": "new id", "user_id": "US.9999", "type": "user_changed_user_id"},
        ),
        ContactNumberChanged,
    ),
    (
        "customer_identity_changed",
        message(
            "system",
            wamid="wamid.SYS4",
            system={"body": "identity changed", "type": "customer_identity_changed"},
            identity={"acknowledged": True, "created_timestamp": TS, "hash": "h1"},
        ),
        ServiceMessageReceived,
    ),
    # statuses, addressed by phone, by BSUID or both
    ("status sent", status("sent"), DeliveryReceipt),
    ("status delivered bsuid only", status("delivered", recipient_id=None), DeliveryReceipt),
    ("status read phone only", status("read", user_id=None), DeliveryReceipt),
    ("status failed", status("failed", errors=ERRORS), DeliveryReceipt),
    (
        "status read bsuid only",
        status("read", recipient_id=None, user_id=PARENT),
        DeliveryReceipt,
    ),
]

# pywa's message type -> the catalog's content kind
KINDS = {
    "text": "text",
    "image": "photo",
    "video": "video",
    "document": "document",
    "sticker": "sticker",
    "location": "location",
    "contacts": "contact",
    "reaction": "unsupported",
    "unsupported": "unsupported",
}


def parsed(payload: dict[str, Any]) -> Any:
    raw = RawUpdate(json.dumps(payload).encode(), hmac_header=None, update_hash="judge")
    handler = WA._get_handler_type(raw)
    assert handler is not None, "pywa cannot route it"
    assert handler._update is not None, "pywa has no update class for it"
    return handler._update.from_update(WA, raw)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("name", "payload", "expected"), CASES, ids=[c[0] for c in CASES])
def test_normalizer_agrees_with_pywa(
    name: str, payload: dict[str, Any], expected: type[Event]
) -> None:
    update = parsed(payload)
    event = only(normalize_payload(payload, account=PHONE_ID, raw_id="wa:raw:1", received_at=NOW))
    assert type(event) is expected
    user = update.from_user
    if isinstance(event, DeliveryReceipt):
        assert event.provider_message_id == update.id
        assert event.status == update.status.value
        assert event.recipient == (user.wa_id or user.bsuid)
        return
    sender = getattr(event, "sender", None)
    if isinstance(event, ContactNumberChanged):
        # pywa's user here is the person after the change, with the old number as wa_id
        assert event.sender.phone == update.old_wa_id
        assert event.new_id == update.new_wa_id
        assert event.new_user_id == update.new_user_id
        return
    if sender is not None:
        assert sender.id == user.bsuid  # the person is keyed by BSUID ...
        assert sender.phone == user.wa_id  # ... with the phone beside it when given
    chat = getattr(update, "chat", None)  # button answers and notices: the user's own chat
    if chat is None:
        assert (event.chat.type, event.chat.id) == (ChatType.PRIVATE, user.bsuid)
    else:
        group = chat.type is PywaChatType.GROUP
        assert event.chat.type is (ChatType.GROUP if group else ChatType.PRIVATE)
        assert event.chat.id == chat.id
    if isinstance(event, ServiceMessageReceived):
        assert event.action == f"system:{update.sys_type.value}"
        assert event.text == update.body
    elif isinstance(event, MessageEdited):
        assert event.provider.message_id == update.original_message_id
        inner = update.message
        assert event.content.kind == KINDS[inner.type.value]
        assert _text(event.content) == (inner.text or inner.caption)
    elif isinstance(event, MessageDeleted):
        assert event.message_ids == (update.original_message_id,)
        assert event.provider.message_id == update.id
    elif isinstance(event, CallbackReceived):
        assert event.provider.message_id == update.id
        assert sender is not None
        assert sender.display_name == user.name
        assert event.data == (getattr(update, "data", None) or update.text)
    else:
        assert isinstance(event, MessageReceived)
        assert event.provider.message_id == update.id
        assert event.sender.display_name == user.name
        assert event.sender.username == user.username
        kind = update.type.value
        if kind == "audio":
            assert event.content.kind == ("voice" if update.audio.voice else "audio")
        else:
            assert event.content.kind == KINDS[kind]
        assert _text(event.content) == (update.text or update.caption)
        reply = update.reply_to_message
        if kind != "reaction":
            assert event.reply_to == (reply.id if reply else None)
        ref = update.referral
        if ref is None:
            assert event.referral is None
        else:
            assert event.referral is not None
            assert event.referral.click_id == ref.ctwa_clid
            assert event.referral.campaign == ref.source_id
            assert event.referral.source_type == ref.source_type


def _text(content: Any) -> str | None:
    return getattr(content, "text", None) or getattr(content, "caption", None)
