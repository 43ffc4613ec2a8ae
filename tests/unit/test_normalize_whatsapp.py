"""WhatsApp Cloud webhook bodies -> conversation events, table-driven over real-shaped
payloads (the shapes of Meta's webhook reference and of the sandbox fake)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.normalized import Normalizer, subset
from tests.support.own_chat import assert_own_chat
from tests.support.whatsapp_bodies import TS, UNKNOWN_TYPE, body, change, interactive, value

from switchboard.events.catalog.conv import CallbackReceived, MessageReceived, UpdateUnsupported
from switchboard.events.catalog.delivery import DeliveryReceipt
from switchboard.events.subjects import token
from switchboard.ingest.normalize.whatsapp import normalize_payload

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RAW = "wa:raw-1"
WA_ID = "4917612345678"
OTHER = "5511987654321"
SHA = "1c2b3a9f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b"
BUSINESS_WAMID = "wamid.HBgNNDkxNzYxMjM0NTY3OBUCABEYEjQ0QjE2QTg5N0E1RjQzQTJEQQA="


def wamid(n: int) -> str:
    return f"wamid.HBgNNDkxNzYxMjM0NTY3OBUCABIYFjNFQjA{n:04d}QUFCQkNDRERFRUZGAA=="


def message(kind: str, n: int = 1, sender: str = WA_ID, **extra: Any) -> dict[str, Any]:
    """A `messages[]` item of `kind`; `extra` holds the type's object and/or `context`."""
    return {"from": sender, "id": wamid(n), "timestamp": TS, "type": kind, **extra}


def status(value: str, n: int = 1, ts: str = TS, **extra: Any) -> dict[str, Any]:
    return {"id": wamid(n), "status": value, "timestamp": ts, "recipient_id": WA_ID, **extra}


CONTACTS = [
    {"profile": {"name": "Ada Lovelace"}, "wa_id": WA_ID},
    {"profile": {"name": "João Silva"}, "wa_id": OTHER},
]


def messages(*items: dict[str, Any]) -> dict[str, Any]:
    return body(change(value(contacts=CONTACTS, messages=list(items))))


def statuses(*items: dict[str, Any]) -> dict[str, Any]:
    return body(change(value(statuses=list(items))))


run = Normalizer(normalize_payload, RAW, NOW)
one = run.one


MEDIA = {"mime_type": "image/jpeg", "sha256": SHA, "id": "1103975374325487"}
CONTENT_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "text",
        message("text", text={"body": "Hi! Is this still available?"}),
        {"kind": "text", "text": "Hi! Is this still available?"},
    ),
    (
        "image",
        message("image", image={**MEDIA, "caption": "the crack"}),
        {
            "kind": "photo",
            "caption": "the crack",
            "file": {"file_id": "1103975374325487", "mime_type": "image/jpeg", "sha256": SHA},
        },
    ),
    (
        "video",
        message("video", video={**MEDIA, "mime_type": "video/mp4"}),
        {"kind": "video", "caption": None, "file": {"mime_type": "video/mp4"}},
    ),
    (
        "audio",
        message("audio", audio={**MEDIA, "mime_type": "audio/mpeg", "voice": False}),
        {"kind": "audio", "file": {"file_id": "1103975374325487", "mime_type": "audio/mpeg"}},
    ),
    (
        "voice",
        message("audio", audio={**MEDIA, "mime_type": "audio/ogg; codecs=opus", "voice": True}),
        {"kind": "voice", "file": {"mime_type": "audio/ogg; codecs=opus", "sha256": SHA}},
    ),
    (
        "document",
        message(
            "document",
            document={
                **MEDIA,
                "mime_type": "application/pdf",
                "filename": "invoice_2291.pdf",
                "caption": "as promised",
            },
        ),
        {
            "kind": "document",
            "caption": "as promised",
            "file": {"file_name": "invoice_2291.pdf", "mime_type": "application/pdf"},
        },
    ),
    (
        "sticker",
        message("sticker", sticker={**MEDIA, "mime_type": "image/webp", "animated": False}),
        {"kind": "sticker", "file": {"file_id": "1103975374325487", "mime_type": "image/webp"}},
    ),
    (
        "location",
        message("location", location={"latitude": 52.52, "longitude": 13.405}),
        {"kind": "location", "latitude": 52.52, "longitude": 13.405, "title": None},
    ),
    (
        "location with place",
        message(
            "location",
            location={
                "latitude": -23.55,
                "longitude": -46.63,
                "name": "Pickup point",
                "address": "1 Main Street",
                "url": "https://example.com",
            },
        ),
        {"kind": "location", "title": "Pickup point", "address": "1 Main Street"},
    ),
    (
        "contacts",
        message(
            "contacts",
            contacts=[
                {
                    "name": {
                        "formatted_name": "Maria Silva",
                        "first_name": "Maria",
                        "last_name": "Silva",
                    },
                    "phones": [{"phone": "+55 11 91234-5678", "wa_id": "5511912345678"}],
                    "emails": [{"email": "maria@example.com", "type": "WORK"}],
                }
            ],
        ),
        {
            "kind": "contact",
            "phone": "+55 11 91234-5678",
            "first_name": "Maria",
            "last_name": "Silva",
            "user_id": "5511912345678",
        },
    ),
    (
        "several contacts: the first card with a phone is kept",
        message(
            "contacts",
            contacts=[
                {"name": {"formatted_name": "No Phone"}, "emails": [{"email": "x@example.com"}]},
                {"name": {"formatted_name": "Bob Stone"}, "phones": [{"phone": "+1 555 0100"}]},
                {"name": {"formatted_name": "Carl"}, "phones": [{"phone": "+1 555 0199"}]},
            ],
        ),
        {"kind": "contact", "phone": "+1 555 0100", "first_name": "Bob Stone", "user_id": None},
    ),
    (
        "contacts without any phone",
        message("contacts", contacts=[{"name": {"formatted_name": "No Phone"}}]),
        {"kind": "unsupported", "provider_kind": "contacts", "raw_ref": RAW},
    ),
    (
        "reaction",
        message("reaction", reaction={"message_id": BUSINESS_WAMID, "emoji": "👍"}),
        {"kind": "unsupported", "provider_kind": "reaction", "raw_ref": RAW},
    ),
    (
        "flow answer (interactive nfm_reply)",
        message(
            "interactive",
            interactive=interactive(
                "nfm_reply", name="flow", body="Sent", response_json='{"a": 1}'
            ),
        ),
        {"kind": "unsupported", "provider_kind": "interactive:nfm_reply", "raw_ref": RAW},
    ),
    (
        "unsupported",
        message(
            "unsupported",
            errors=[
                {
                    **UNKNOWN_TYPE,
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ],
        ),
        {"kind": "unsupported", "provider_kind": "unsupported", "raw_ref": RAW},
    ),
    (
        "unknown type",
        message("order", order={"catalog_id": "1", "product_items": []}),
        {"kind": "unsupported", "provider_kind": "order", "raw_ref": RAW},
    ),
]


@pytest.mark.parametrize(
    ("case", "msg", "content"), CONTENT_CASES, ids=[c[0] for c in CONTENT_CASES]
)
def test_message_types(case: str, msg: dict[str, Any], content: dict[str, Any]) -> None:
    event = one(messages(msg))
    assert isinstance(event, MessageReceived)
    subset(content, event.content.model_dump(mode="json"))
    assert_own_chat(event, WA_ID, "Ada Lovelace")
    assert event.sender.phone == WA_ID
    assert (event.provider.message_id, event.provider.raw_id) == (wamid(1), RAW)
    assert event.deterministic_id() == f"whatsapp:demo:{WA_ID}/{token(wamid(1))}/message_received"
    assert event.sent_at == datetime.fromtimestamp(int(TS), UTC)
    assert event.received_at == NOW


def test_reply_context_and_forwards() -> None:
    context = {"from": "15550001111", "id": BUSINESS_WAMID}
    reply = one(messages(message("text", text={"body": "yes"}, context=context)))
    assert reply.reply_to == BUSINESS_WAMID
    forwarded = {"forwarded": True, "frequently_forwarded": False}
    fwd = one(messages(message("text", text={"body": "fwd"}, context=forwarded)))
    assert fwd.reply_to is None


def test_a_reaction_points_at_the_message_reacted_to() -> None:
    removed = message("reaction", reaction={"message_id": BUSINESS_WAMID})  # emoji taken back
    event = one(messages(removed))
    assert isinstance(event, MessageReceived)
    assert event.reply_to == BUSINESS_WAMID
    assert event.content.kind == "unsupported"


CONTEXT: dict[str, Any] = {"context": {"from": "15550001111", "id": BUSINESS_WAMID}}
CALLBACK_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "button_reply",
        message(
            "interactive",
            interactive=interactive("button_reply", id="btn_2", title="No"),
            **CONTEXT,
        ),
        "btn_2",
    ),
    (
        "list_reply",
        message(
            "interactive",
            interactive=interactive(
                "list_reply", id="row_7", title="Standard", description="3-5 days"
            ),
            **CONTEXT,
        ),
        "row_7",
    ),
    (
        "template quick reply",
        message("button", button={"text": "Track order", "payload": "TRACK_ORDER"}, **CONTEXT),
        "TRACK_ORDER",
    ),
    (
        "template quick reply without payload",
        message("button", button={"text": "Stop promotions"}, **CONTEXT),
        "Stop promotions",
    ),
]


@pytest.mark.parametrize(
    ("case", "msg", "data"), CALLBACK_CASES, ids=[c[0] for c in CALLBACK_CASES]
)
def test_button_answers_are_callbacks(case: str, msg: dict[str, Any], data: str | None) -> None:
    event = one(messages(msg))
    assert isinstance(event, CallbackReceived)
    assert (event.callback_id, event.data, event.message_id) == (wamid(1), data, BUSINESS_WAMID)
    assert_own_chat(event, WA_ID, "Ada Lovelace")
    assert event.provider.message_id == wamid(1)
    assert event.deterministic_id() == f"whatsapp:demo:{WA_ID}/{token(wamid(1))}/callback_received"


FAILED = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number."
    },
    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
}
PRICING = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
STATUS_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "sent",
        status(
            "sent",
            conversation={
                "id": "c1f2",
                "expiration_timestamp": "1763726400",
                "origin": {"type": "marketing"},
            },
            pricing=PRICING,
        ),
        None,
    ),
    ("delivered", status("delivered", pricing=PRICING), None),
    ("read", status("read"), None),
    (
        "failed",
        status("failed", errors=[FAILED]),
        "Re-engagement message: Message failed to send because more than 24 hours have passed"
        " since the customer last replied to this number. (code 131047)",
    ),
    (
        "failed, terse",
        status("failed", errors=[{"code": 131026, "title": "Message undeliverable"}]),
        "Message undeliverable (code 131026)",
    ),
    ("failed without errors", status("failed"), None),
]


@pytest.mark.parametrize(("case", "item", "reason"), STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_statuses_are_receipts(case: str, item: dict[str, Any], reason: str | None) -> None:
    event = one(statuses(item))
    assert isinstance(event, DeliveryReceipt)
    assert event.status == item["status"]
    assert (event.channel.value, event.account, event.recipient) == ("whatsapp", "demo", WA_ID)
    assert (event.provider_message_id, event.message_id) == (wamid(1), None)
    assert event.at == datetime.fromtimestamp(int(TS), UTC)
    assert event.reason == reason
    assert event.raw_id == RAW
    assert (
        event.deterministic_id() == f"rc:whatsapp:demo:{token(wamid(1))}:{WA_ID}:{item['status']}"
    )


def test_statuses_of_one_message_are_distinct_events() -> None:
    events = run(statuses(status("read", ts="1763640030"), status("delivered")))
    assert [e.status for e in events if isinstance(e, DeliveryReceipt)] == ["read", "delivered"]
    assert len({e.deterministic_id() for e in events}) == 2


def test_a_batch_gives_one_event_per_message_and_status() -> None:
    payload = body(
        change(
            value(
                contacts=CONTACTS,
                messages=[
                    message("text", 1, text={"body": "one"}),
                    message("text", 2, sender=OTHER, text={"body": "dois"}),
                ],
                statuses=[status("delivered", 3)],
            )
        )
    )
    events = run(payload)
    assert len(events) == 3
    first, second, receipt = events
    assert isinstance(first, MessageReceived)
    assert isinstance(second, MessageReceived)
    assert isinstance(receipt, DeliveryReceipt)
    assert (first.sender.display_name, second.sender.display_name) == ("Ada Lovelace", "João Silva")
    assert second.chat.id == OTHER
    assert receipt.provider_message_id == wamid(3)
    assert len({e.deterministic_id() for e in events}) == 3


def test_every_entry_and_change_is_read() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    change(
                        value(contacts=CONTACTS, messages=[message("text", 1, text={"body": "a"})])
                    ),
                    change(value(statuses=[status("sent", 9)])),
                ],
            },
            {
                "id": "2",
                "changes": [
                    change(
                        value(contacts=CONTACTS, messages=[message("text", 2, text={"body": "b"})])
                    )
                ],
            },
        ],
    }
    events = run(payload)
    assert [type(e).__name__ for e in events] == [
        "MessageReceived",
        "DeliveryReceipt",
        "MessageReceived",
    ]


def test_the_same_message_in_another_batch_has_the_same_id() -> None:
    mine = message("image", 1, image={**MEDIA, "caption": "c"})
    alone = run(messages(mine), raw_id="wa:raw-alone")
    batched = run(
        body(
            change(value(statuses=[status("read", 5)])),
            change(
                value(contacts=CONTACTS, messages=[message("text", 4, text={"body": "x"}), mine])
            ),
        ),
        raw_id="wa:raw-batch",
    )
    first = alone[0]
    assert isinstance(first, MessageReceived)
    again = next(e for e in batched if isinstance(e, MessageReceived) and e.content.kind == "photo")
    assert again.deterministic_id() == first.deterministic_id()
    # Only the pointer to the RAW payload differs.
    assert again.provider.raw_id == "wa:raw-batch"
    assert again.model_copy(update={"provider": first.provider}) == first
    receipt_alone = run(statuses(status("read", 5)), raw_id="wa:raw-other")[0]
    assert receipt_alone.deterministic_id() == batched[0].deterministic_id()


def test_a_message_repeated_within_one_body_is_one_event() -> None:
    dup = message("text", 1, text={"body": "hi"})
    assert len(run(messages(dup, dup))) == 1


def test_a_sender_without_profile_still_has_an_identity() -> None:
    payload = body(change(value(messages=[message("text", text={"body": "hi"})])))
    event = one(payload)
    assert_own_chat(event, WA_ID, None)
    assert event.sender.phone == WA_ID


UNSUPPORTED_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "webhook-level errors",
        body(
            change(
                value(
                    errors=[
                        {
                            "code": 131000,
                            "title": "Something went wrong",
                            "message": "Something went wrong",
                            "error_data": {"details": "Unknown error."},
                        }
                    ]
                )
            )
        ),
        "errors",
    ),
    (
        "another field",
        body(change({"phone_number": "15550001111", "event": "FLAGGED"}, field="account_update")),
        "account_update",
    ),
    ("unknown status", statuses(status("deleted")), "status:deleted"),
    ("nothing in the value", body(change(value())), "messages:empty"),
    (
        "several kinds, one event",
        body(
            change({"event": "APPROVED"}, field="message_template_status_update"),
            change(value(errors=[{"code": 1}])),
            change({"event": "PENDING"}, field="message_template_status_update"),
        ),
        "message_template_status_update,errors",
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "kind"), UNSUPPORTED_CASES, ids=[c[0] for c in UNSUPPORTED_CASES]
)
def test_unmodelled_parts_are_kept_not_dropped(
    case: str, payload: dict[str, Any], kind: str
) -> None:
    event = one(payload)
    assert isinstance(event, UpdateUnsupported)
    assert (event.channel.value, event.provider_kind, event.raw_id) == ("whatsapp", kind, RAW)


def test_unmodelled_parts_come_after_the_messages_of_the_same_body() -> None:
    payload = body(
        change({"event": "FLAGGED"}, field="account_update"),
        change(value(contacts=CONTACTS, messages=[message("text", text={"body": "hi"})])),
    )
    events = run(payload)
    assert [type(e).__name__ for e in events] == ["MessageReceived", "UpdateUnsupported"]


def _with(msg: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**msg, **changes}


TEXT = message("text", text={"body": "hi"})
ERROR_CASES: list[tuple[Any, str]] = [
    ([], "not a WhatsApp webhook: the body is not a JSON object"),
    ({"object": "page", "entry": []}, "object is 'page', not 'whatsapp_business_account'"),
    ({"object": "whatsapp_business_account"}, "entry is missing or not a non-empty list"),
    ({"object": "whatsapp_business_account", "entry": []}, "entry is missing or not a non-empty"),
    ({"object": "whatsapp_business_account", "entry": ["x"]}, "entry[0] is missing or not an obj"),
    (
        {"object": "whatsapp_business_account", "entry": [{"id": "1"}]},
        "entry[0].changes is missing or not a non-empty list",
    ),
    (body({"value": value()}), "entry[0].changes[0].field is missing or not a non-empty string"),
    (body(change("x")), "entry[0].changes[0].value is missing or not an object"),  # type: ignore[arg-type]
    (
        body(change({**value(), "messaging_product": "instagram"})),
        "entry[0].changes[0].value.messaging_product is 'instagram', not 'whatsapp'",
    ),
    (body(change(value(messages="hi"))), "entry[0].changes[0].value.messages is not a list"),
    (body(change(value(statuses={}))), "entry[0].changes[0].value.statuses is not a list"),
    (body(change(value(contacts={}))), "entry[0].changes[0].value.contacts is not a list"),
    (messages("hi"), "value.messages[0] is missing or not an object"),  # type: ignore[arg-type]
    (messages(_with(TEXT, id=None)), "value.messages[0].id is missing or not a non-empty str"),
    (
        messages(_with(TEXT, **{"from": None})),
        "value.messages[0] has neither from nor from_user_id",
    ),
    (messages(_with(TEXT, **{"from": 7})), "value.messages[0].from is not a string"),
    (messages(_with(TEXT, type=7)), "value.messages[0].type is missing"),
    (
        messages(_with(TEXT, timestamp="yesterday")),
        "value.messages[0].timestamp 'yesterday' is not a unix-second timestamp",
    ),
    (
        messages(_with(TEXT, timestamp="9" * 30)),
        "value.messages[0].timestamp '" + "9" * 30 + "' is out of range",
    ),
    (messages(message("text", text={})), "value.messages[0].text.body is missing"),
    (messages(message("text")), "value.messages[0].text is missing or not an object"),
    (messages(message("image", image={"mime_type": "image/jpeg"})), "messages[0].image.id is"),
    (
        messages(message("image", image={**MEDIA, "caption": 5})),
        "value.messages[0].image.caption is not a string",
    ),
    (
        messages(message("location", location={"longitude": 1})),
        "value.messages[0].location.latitude is missing or not a number",
    ),
    (
        messages(message("location", location={"latitude": 91, "longitude": 1})),
        "value.messages[0]: latitude: Input should be less than or equal to 90",
    ),
    (messages(message("contacts", contacts={})), "value.messages[0].contacts is not a list"),
    (
        messages(message("contacts", contacts=[{"phones": [{"phone": 5}]}])),
        "value.messages[0].contacts[0].phones[].phone is missing",
    ),
    (
        messages(message("interactive", interactive={"button_reply": {"id": "x"}})),
        "value.messages[0].interactive.type is missing",
    ),
    (
        messages(message("interactive", interactive={"type": "button_reply"})),
        "value.messages[0].interactive.button_reply is missing or not an object",
    ),
    (
        messages(
            message("interactive", interactive={"type": "list_reply", "list_reply": {"id": ""}})
        ),
        "value.messages[0].interactive.list_reply.id is missing",
    ),
    (messages(message("button", button=["x"])), "value.messages[0].button is missing"),
    (
        messages(message("button", button={"payload": 1})),
        "value.messages[0].button.payload is not a string",
    ),
    (messages(message("reaction")), "value.messages[0].reaction is missing or not an object"),
    (statuses(["sent"]), "value.statuses[0] is missing or not an object"),  # type: ignore[arg-type]
    (statuses(_with(status("sent"), status=None)), "value.statuses[0].status is missing"),
    (statuses(_with(status("read"), id="")), "value.statuses[0].id is missing"),
    (
        statuses(_with(status("read"), recipient_id=None)),
        "value.statuses[0].recipient_id / recipient_user_id is missing",
    ),
    (
        statuses(_with(status("read"), timestamp=-1)),
        "value.statuses[0].timestamp -1 is not a unix-second timestamp",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), ERROR_CASES)
def test_unreadable_bodies_raise_with_a_precise_reason(payload: Any, reason: str) -> None:
    run.refuses(payload, reason)


ALL_BODIES: list[dict[str, Any]] = [
    *(messages(c[1]) for c in CONTENT_CASES),
    *(messages(c[1]) for c in CALLBACK_CASES),
    *(statuses(c[1]) for c in STATUS_CASES),
    *(c[1] for c in UNSUPPORTED_CASES),
]


@pytest.mark.parametrize("payload", ALL_BODIES)
def test_normalizing_is_pure_and_every_event_round_trips(payload: dict[str, Any]) -> None:
    run.is_pure_and_codec_safe(payload)
