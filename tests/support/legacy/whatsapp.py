"""WhatsApp Cloud API webhook body -> conversation events and delivery receipts.

Pure: the same body in, the same events out; nothing random, no clock (``received_at`` is
passed in). Meta batches: one delivery may hold several entries, each with several changes,
each with several messages and statuses. Every message and every status becomes its own
event, and its id comes from the provider's identity of that item (the ``wamid``, plus the
status for receipts), never from the batch it travelled in, so a message Meta re-sends in a
different grouping (at-least-once delivery) still yields the same event id and JetStream
drops the copy.

Mapping (``type`` of a message -> event):

- ``text`` / ``image`` / ``video`` / ``audio`` / ``document`` / ``sticker`` / ``location`` /
  ``contacts`` -> :class:`MessageReceived` with the matching content; ``audio`` with
  ``voice: true`` (a push-to-talk note) -> voice content.
- ``interactive`` ``button_reply`` / ``list_reply`` and ``button`` (template quick reply)
  -> :class:`CallbackReceived`: the customer pressed something the business sent.
- ``reaction``, other ``interactive`` kinds, ``unsupported`` and any unknown type ->
  :class:`MessageReceived` with :class:`UnsupportedContent` pointing at the RAW payload.
- statuses ``sent`` / ``delivered`` / ``read`` / ``failed`` -> :class:`DeliveryReceipt`.
- ``value.errors``, statuses with another value, changes whose ``field`` is not
  ``messages`` -> one :class:`UpdateUnsupported` for the whole body (see
  :func:`normalize_payload` for why only one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, ChatType, MediaFile, Sender
from switchboard.events.catalog.conv import (
    AudioContent,
    CallbackReceived,
    ContactContent,
    Content,
    DocumentContent,
    LocationContent,
    MessageReceived,
    PhotoContent,
    ProviderIds,
    StickerContent,
    TextContent,
    UnsupportedContent,
    UpdateUnsupported,
    VideoContent,
    VoiceContent,
)
from switchboard.events.catalog.delivery import DeliveryReceipt
from switchboard.ingest.normalize.base import NormalizeError

OBJECT = "whatsapp_business_account"
RECEIPT_STATUSES = frozenset({"sent", "delivered", "read", "failed"})
_CALLBACK_INTERACTIVE = ("button_reply", "list_reply")


@dataclass(frozen=True, slots=True)
class _Delivery:
    """What every event of one webhook body shares."""

    account: str
    raw_id: str
    received_at: datetime


def normalize_payload(
    payload: Any, *, account: str, raw_id: str, received_at: datetime
) -> list[Event]:
    """The events of one WhatsApp Cloud webhook body: one per message and per status, in
    body order, across all entries and changes.

    Whatever the catalog does not model (webhook-level ``errors``, fields other than
    ``messages``, unknown statuses) is reported as a single :class:`UpdateUnsupported`
    naming every such kind, comma-separated in order of appearance. Only one, because its id
    is derived from ``raw_id`` alone: two of them from one body would share an id and the
    second would be deduplicated away, i.e. silently dropped. ``raw_id`` leads to the whole
    body, so one pointer is all re-normalization needs.

    Raises :class:`NormalizeError` naming the JSON path of the first unreadable part.
    """
    if not isinstance(payload, dict):
        raise NormalizeError("not a WhatsApp webhook: the body is not a JSON object")
    obj = payload.get("object")
    if obj != OBJECT:
        raise NormalizeError(f"not a WhatsApp webhook: object is {obj!r}, not {OBJECT!r}")
    delivery = _Delivery(account=account, raw_id=raw_id, received_at=received_at)
    events: list[Event] = []
    unsupported: list[str] = []
    for i, entry in enumerate(_nonempty_list(payload.get("entry"), "entry")):
        where = f"entry[{i}]"
        changes = _obj(entry, where).get("changes")
        for j, change in enumerate(_nonempty_list(changes, f"{where}.changes")):
            at = f"{where}.changes[{j}]"
            change = _obj(change, at)
            field = change.get("field")
            if not isinstance(field, str) or not field:
                raise NormalizeError(f"{at}.field is missing or not a non-empty string")
            if field != "messages":
                # Account, template, quality... updates: valid, not conversation data (yet).
                unsupported.append(field)
                continue
            value = _obj(change.get("value"), f"{at}.value")
            events.extend(_messages_value(value, f"{at}.value", delivery, unsupported))
    if unsupported:
        events.append(
            UpdateUnsupported(
                channel=Channel.WHATSAPP,
                account=account,
                provider_kind=",".join(dict.fromkeys(unsupported)),
                raw_id=raw_id,
                received_at=received_at,
            )
        )
    return _distinct(events)


def _messages_value(
    value: dict[str, Any], where: str, delivery: _Delivery, unsupported: list[str]
) -> list[Event]:
    """The events of one ``field: messages`` change value; unmodelled kinds are appended to
    ``unsupported``."""
    product = value.get("messaging_product", "whatsapp")
    if product != "whatsapp":
        raise NormalizeError(f"{where}.messaging_product is {product!r}, not 'whatsapp'")
    names = _profile_names(value.get("contacts"), f"{where}.contacts")
    messages = _list(value.get("messages", []), f"{where}.messages")
    statuses = _list(value.get("statuses", []), f"{where}.statuses")
    events: list[Event] = []
    for k, message in enumerate(messages):
        at = f"{where}.messages[{k}]"
        with _reading(at):
            events.append(_message(_obj(message, at), at, names, delivery))
    for k, status in enumerate(statuses):
        at = f"{where}.statuses[{k}]"
        with _reading(at):
            receipt = _status(_obj(status, at), at, delivery)
        if isinstance(receipt, str):
            unsupported.append(f"status:{receipt}")
        else:
            events.append(receipt)
    if "errors" in value:
        # Webhook-level errors (e.g. a message Meta could not hand over) carry no message.
        unsupported.append("errors")
    if not messages and not statuses and "errors" not in value:
        unsupported.append("messages:empty")
    return events


def _message(
    msg: dict[str, Any], where: str, names: dict[str, str], delivery: _Delivery
) -> MessageReceived | CallbackReceived:
    """One ``messages[]`` item: a customer's message, or their answer to a button."""
    wamid = _str(msg.get("id"), f"{where}.id")
    wa_id = _str(msg.get("from"), f"{where}.from")
    mtype = _str(msg.get("type"), f"{where}.type")
    sent_at = _ts(msg.get("timestamp"), f"{where}.timestamp")
    name = names.get(wa_id)
    chat = Chat(id=wa_id, type=ChatType.PRIVATE, title=name)
    sender = Sender(
        id=wa_id,
        display_name=name,
        phone=wa_id if wa_id.isascii() and wa_id.isdigit() else None,
    )
    ids = ProviderIds(message_id=wamid, raw_id=delivery.raw_id)
    context = msg.get("context")
    # `context` without `id` marks a forwarded message; only an id names a replied-to message.
    reply_to = context.get("id") if isinstance(context, dict) else None
    if not isinstance(reply_to, str) or not reply_to:
        reply_to = None
    data, is_callback = _callback_data(msg, mtype, where)
    if is_callback:
        return CallbackReceived(
            channel=Channel.WHATSAPP,
            account=delivery.account,
            chat=chat,
            provider=ids,
            received_at=delivery.received_at,
            sender=sender,
            callback_id=wamid,
            data=data,
            message_id=reply_to,
        )
    if mtype == "reaction":
        # A reaction is about another message: point at it the way a reply does.
        reaction = _obj(msg.get("reaction"), f"{where}.reaction")
        target = reaction.get("message_id")
        reply_to = target if isinstance(target, str) and target else reply_to
    return MessageReceived(
        channel=Channel.WHATSAPP,
        account=delivery.account,
        chat=chat,
        sender=sender,
        content=content_of(msg, mtype, where, delivery.raw_id),
        reply_to=reply_to,
        provider=ids,
        sent_at=sent_at,
        received_at=delivery.received_at,
    )


def _callback_data(msg: dict[str, Any], mtype: str, where: str) -> tuple[str | None, bool]:
    """``(data, True)`` when the message answers a button or list the business sent.

    ``interactive`` replies carry the id the business gave the button or row; ``button``
    (a template quick reply) carries the template's ``payload``, or only its ``text`` when
    the template set none, so the text stands in for it.
    """
    if mtype == "interactive":
        interactive = _obj(msg.get("interactive"), f"{where}.interactive")
        itype = _str(interactive.get("type"), f"{where}.interactive.type")
        if itype not in _CALLBACK_INTERACTIVE:
            return None, False
        reply = _obj(interactive.get(itype), f"{where}.interactive.{itype}")
        return _str(reply.get("id"), f"{where}.interactive.{itype}.id"), True
    if mtype == "button":
        button = _obj(msg.get("button"), f"{where}.button")
        payload = _opt_str(button.get("payload"), f"{where}.button.payload")
        text = _opt_str(button.get("text"), f"{where}.button.text")
        return payload or text, True
    return None, False


def content_of(msg: dict[str, Any], mtype: str, where: str, raw_id: str) -> Content:
    """The content of a WhatsApp message of type ``mtype`` (not a button answer)."""
    if mtype == "text":
        text = _obj(msg.get("text"), f"{where}.text")
        return TextContent(text=_str(text.get("body"), f"{where}.text.body", empty=True))
    if mtype in ("image", "video", "audio", "document", "sticker"):
        return _media_content(msg, mtype, f"{where}.{mtype}")
    if mtype == "location":
        loc = _obj(msg.get("location"), f"{where}.location")
        return LocationContent(
            latitude=_number(loc.get("latitude"), f"{where}.location.latitude"),
            longitude=_number(loc.get("longitude"), f"{where}.location.longitude"),
            title=_opt_str(loc.get("name"), f"{where}.location.name"),
            address=_opt_str(loc.get("address"), f"{where}.location.address"),
        )
    if mtype == "contacts":
        return _contact(msg, where, raw_id)
    if mtype == "interactive":
        # Flow answers (nfm_reply) and future interactive kinds: no catalog shape yet.
        itype = msg["interactive"]["type"]
        return UnsupportedContent(provider_kind=f"interactive:{itype}", raw_ref=raw_id)
    # `reaction`: the catalog has no reaction content (an emoji on another message, empty
    # when the customer takes it back). It is still a customer action in the conversation,
    # so it is kept as a message whose `reply_to` names the message reacted to, with the
    # RAW reference for whoever models reactions later. `unsupported` (Meta could not
    # render it, e.g. a poll) and unknown types land here too.
    return UnsupportedContent(provider_kind=mtype, raw_ref=raw_id)


def _media_content(msg: dict[str, Any], mtype: str, where: str) -> Content:
    """Image, video, audio/voice, document or sticker: Meta's media id plus metadata."""
    media = _obj(msg.get(mtype), where)
    file = MediaFile(
        file_id=_str(media.get("id"), f"{where}.id"),
        mime_type=_opt_str(media.get("mime_type"), f"{where}.mime_type"),
        sha256=_opt_str(media.get("sha256"), f"{where}.sha256"),
        file_name=_opt_str(media.get("filename"), f"{where}.filename"),
    )
    caption = _opt_str(media.get("caption"), f"{where}.caption")
    if mtype == "image":
        return PhotoContent(file=file, caption=caption)
    if mtype == "video":
        return VideoContent(file=file, caption=caption)
    if mtype == "document":
        return DocumentContent(file=file, caption=caption)
    if mtype == "sticker":
        return StickerContent(file=file)
    if media.get("voice") is True:  # recorded in WhatsApp (push to talk), not a shared file
        return VoiceContent(file=file, caption=caption)
    return AudioContent(file=file, caption=caption)


def _contact(msg: dict[str, Any], where: str, raw_id: str) -> Content:
    """A shared contact card. WhatsApp can share several cards in one message; the catalog's
    contact content holds one, so the first card that has a phone number is kept
    (deliberately: the rest stay in RAW). No card with a phone -> unsupported content."""
    cards = _list(msg.get("contacts"), f"{where}.contacts")
    for c, card in enumerate(cards):
        at = f"{where}.contacts[{c}]"
        card = _obj(card, at)
        phones = _list(card.get("phones", []), f"{at}.phones")
        phone = next((p for p in phones if isinstance(p, dict) and p.get("phone")), None)
        if phone is None:
            continue
        raw_name = card.get("name")
        name: dict[str, Any] = raw_name if isinstance(raw_name, dict) else {}
        first = _opt_str(name.get("first_name"), f"{at}.name.first_name")
        formatted = _opt_str(name.get("formatted_name"), f"{at}.name.formatted_name")
        return ContactContent(
            phone=_str(phone["phone"], f"{at}.phones[].phone"),
            first_name=first or formatted,
            last_name=_opt_str(name.get("last_name"), f"{at}.name.last_name"),
            user_id=_opt_str(phone.get("wa_id"), f"{at}.phones[].wa_id"),
        )
    return UnsupportedContent(provider_kind="contacts", raw_ref=raw_id)


def _status(status: dict[str, Any], where: str, delivery: _Delivery) -> DeliveryReceipt | str:
    """A ``statuses[]`` item as a receipt; for a status value the catalog has no receipt
    for (e.g. the retired ``deleted``), that value, which the caller reports unsupported."""
    value = _str(status.get("status"), f"{where}.status")
    if value not in RECEIPT_STATUSES:
        return value
    return DeliveryReceipt(
        channel=Channel.WHATSAPP,
        account=delivery.account,
        recipient=_str(status.get("recipient_id"), f"{where}.recipient_id"),
        at=_ts(status.get("timestamp"), f"{where}.timestamp"),
        status=value,
        provider_message_id=_str(status.get("id"), f"{where}.id"),
        reason=_failure_reason(status) if value == "failed" else None,
        raw_id=delivery.raw_id,
    )


def _failure_reason(status: dict[str, Any]) -> str | None:
    """``<title>: <message>: <details> (code N)`` from the first error, repeats removed
    (Meta often sends the same text as title and message)."""
    errors = status.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    error = errors[0]
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    texts = (error.get("title"), error.get("message"), details)
    parts = dict.fromkeys(t for t in texts if isinstance(t, str) and t)
    text = ": ".join(parts) or "failed"
    code = error.get("code")
    return f"{text} (code {code})" if isinstance(code, int | str) and code != "" else text


def _profile_names(contacts: Any, where: str) -> dict[str, str]:
    """``wa_id -> profile name`` from ``value.contacts`` (who wrote the messages)."""
    names: dict[str, str] = {}
    for c, contact in enumerate(_list(contacts if contacts is not None else [], where)):
        contact = _obj(contact, f"{where}[{c}]")
        profile = contact.get("profile")
        wa_id = contact.get("wa_id")
        if isinstance(wa_id, str) and isinstance(profile, dict):
            name = profile.get("name")
            if isinstance(name, str) and name:
                names[wa_id] = name
    return names


def _distinct(events: list[Event]) -> list[Event]:
    """Keep the first event of each id: the same wamid twice in one body is one message."""
    seen: dict[str | None, Event] = {}
    for event in events:
        seen.setdefault(event.deterministic_id(), event)
    return list(seen.values())


@contextmanager
def _reading(where: str) -> Iterator[None]:
    """Turn a model's validation failure (or a stray lookup error) into a NormalizeError
    that names the item being read."""
    try:
        yield
    except NormalizeError:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise NormalizeError(f"{where}: {loc}: {first['msg']}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise NormalizeError(f"{where}: malformed: {exc!r}") from None


def _ts(value: Any, where: str) -> datetime:
    """A unix-seconds timestamp, sent by Meta as a string of digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        seconds = int(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        seconds = value
    else:
        raise NormalizeError(f"{where} {value!r} is not a unix-second timestamp")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise NormalizeError(f"{where} {value!r} is out of range") from None


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NormalizeError(f"{where} is missing or not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise NormalizeError(f"{where} is not a list")
    return value


def _nonempty_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise NormalizeError(f"{where} is missing or not a non-empty list")
    return value


def _str(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise NormalizeError(f"{where} is missing or not a non-empty string")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise NormalizeError(f"{where} is not a string")
    return value or None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NormalizeError(f"{where} is missing or not a number")
    return float(value)
