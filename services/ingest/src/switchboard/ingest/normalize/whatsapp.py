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
- ``edit`` -> :class:`MessageEdited` of the original message; ``revoke`` ->
  :class:`MessageDeleted`; ``system`` ``user_changed_number`` (or ``user_changed_user_id``)
  -> :class:`ContactNumberChanged`, other system notices -> :class:`ServiceMessageReceived`.
- statuses ``sent`` / ``delivered`` / ``read`` / ``failed`` -> :class:`DeliveryReceipt`,
  addressed to ``recipient_id`` or, for a user known only by BSUID, ``recipient_user_id``.

Who: the sender is keyed by the business-scoped user id (``from_user_id`` or the
``contacts[].user_id``) when present, with the phone (``from`` / ``wa_id``) beside it, and
a message without ``from`` is never dropped. A message with ``group_id`` belongs to the
group's conversation; otherwise the conversation is the one-to-one chat with the sender.
A ``referral`` (click-to-WhatsApp ad) rides on the message as its :class:`Referral`.
- ``value.errors``, statuses with another value, changes whose ``field`` is not
  ``messages`` -> one :class:`UpdateUnsupported` for the whole body (see
  :func:`normalize_payload` for why only one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, ChatType, MediaFile, Sender
from switchboard.events.catalog.conv import (
    AudioContent,
    CallbackReceived,
    ContactContent,
    ContactNumberChanged,
    Content,
    DocumentContent,
    LocationContent,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PhotoContent,
    ProviderIds,
    Referral,
    ServiceMessageReceived,
    StickerContent,
    TextContent,
    UnsupportedContent,
    UpdateUnsupported,
    VideoContent,
    VoiceContent,
)
from switchboard.events.catalog.delivery import DeliveryReceipt
from switchboard.ingest.normalize.base import (
    NormalizeError,
    as_list,
    as_number,
    as_obj,
    as_opt_str,
    as_str,
    reading,
)

OBJECT = "whatsapp_business_account"
RECEIPT_STATUSES = frozenset({"sent", "delivered", "read", "failed"})
_CALLBACK_INTERACTIVE = ("button_reply", "list_reply")
# Media types whose content is the file and its caption (audio, voice and sticker differ).
CAPTIONED_MEDIA: dict[str, type[PhotoContent | VideoContent | DocumentContent]] = {
    "image": PhotoContent,
    "video": VideoContent,
    "document": DocumentContent,
}
NUMBER_CHANGES = frozenset(
    {"user_changed_number", "customer_changed_number", "user_changed_user_id"}
)


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
        changes = as_obj(entry, where).get("changes")
        for j, change in enumerate(_nonempty_list(changes, f"{where}.changes")):
            at = f"{where}.changes[{j}]"
            change = as_obj(change, at)
            field = change.get("field")
            if not isinstance(field, str) or not field:
                raise NormalizeError(f"{at}.field is missing or not a non-empty string")
            if field != "messages":
                # Account, template, quality... updates: valid, not conversation data (yet).
                unsupported.append(field)
                continue
            value = as_obj(change.get("value"), f"{at}.value")
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
    people = _people(value.get("contacts"), f"{where}.contacts")
    messages = as_list(value.get("messages", []), f"{where}.messages")
    statuses = as_list(value.get("statuses", []), f"{where}.statuses")
    events: list[Event] = []
    for k, message in enumerate(messages):
        at = f"{where}.messages[{k}]"
        with reading(at):
            events.append(_message(as_obj(message, at), at, people, delivery))
    for k, status in enumerate(statuses):
        at = f"{where}.statuses[{k}]"
        with reading(at):
            receipt = _status(as_obj(status, at), at, delivery)
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


@dataclass(frozen=True, slots=True)
class _Person:
    """What ``value.contacts[]`` says about one customer (keyed by BSUID and by wa_id)."""

    user_id: str | None = None
    wa_id: str | None = None
    name: str | None = None
    username: str | None = None


def _sender(msg: dict[str, Any], where: str, people: dict[str, _Person]) -> Sender:
    """The customer who wrote: keyed by the BSUID when there is one, with the phone beside
    it when Meta gives both (a user with a username may withhold the phone: no ``from``)."""
    wa_id = as_opt_str(msg.get("from"), f"{where}.from")
    user_id = as_opt_str(msg.get("from_user_id"), f"{where}.from_user_id")
    person = people.get(user_id or "") or people.get(wa_id or "") or _Person()
    user_id = user_id or person.user_id
    wa_id = wa_id or person.wa_id
    key = user_id or wa_id
    if key is None:
        raise NormalizeError(f"{where} has neither from nor from_user_id")
    return Sender(
        id=key,
        username=person.username,
        display_name=person.name,
        phone=wa_id if wa_id and wa_id.isascii() and wa_id.isdigit() else None,
    )


def _message(
    msg: dict[str, Any], where: str, people: dict[str, _Person], delivery: _Delivery
) -> Event:
    """One ``messages[]`` item: a customer's message, their answer to a button, their edit
    or deletion of an earlier message, or a system notice about them."""
    wamid = as_str(msg.get("id"), f"{where}.id")
    mtype = as_str(msg.get("type"), f"{where}.type")
    sent_at = _ts(msg.get("timestamp"), f"{where}.timestamp")
    sender = _sender(msg, where, people)
    group = as_opt_str(msg.get("group_id"), f"{where}.group_id")
    if group is not None:  # Groups API: the group is the conversation, the sender varies
        chat = Chat(id=group, type=ChatType.GROUP)
    else:
        chat = Chat(id=sender.id, type=ChatType.PRIVATE, title=sender.display_name)
    ids = ProviderIds(message_id=wamid, raw_id=delivery.raw_id)
    base: dict[str, Any] = {
        "channel": Channel.WHATSAPP,
        "account": delivery.account,
        "chat": chat,
        "received_at": delivery.received_at,
    }
    if mtype == "edit":
        edit = as_obj(msg.get("edit"), f"{where}.edit")
        original = as_str(edit.get("original_message_id"), f"{where}.edit.original_message_id")
        new = as_obj(edit.get("message"), f"{where}.edit.message")
        new_type = as_str(new.get("type"), f"{where}.edit.message.type")
        return MessageEdited(
            **base,
            provider=ProviderIds(message_id=original, raw_id=delivery.raw_id),
            sender=sender,
            content=content_of(new, new_type, f"{where}.edit.message", delivery.raw_id),
            edited_at=sent_at,
        )
    if mtype == "revoke":
        revoke = as_obj(msg.get("revoke"), f"{where}.revoke")
        original = as_str(revoke.get("original_message_id"), f"{where}.revoke.original_message_id")
        return MessageDeleted(**base, provider=ids, message_ids=(original,), deleted_at=sent_at)
    if mtype == "system":
        return _system(msg, where, base, ids, sender, sent_at)
    context = msg.get("context")
    # `context` without `id` marks a forwarded message; only an id names a replied-to message.
    reply_to = context.get("id") if isinstance(context, dict) else None
    if not isinstance(reply_to, str) or not reply_to:
        reply_to = None
    data, is_callback = _callback_data(msg, mtype, where)
    if is_callback:
        return CallbackReceived(
            **base,
            provider=ids,
            sender=sender,
            callback_id=wamid,
            data=data,
            message_id=reply_to,
        )
    if mtype == "reaction":
        # A reaction is about another message: point at it the way a reply does.
        reaction = as_obj(msg.get("reaction"), f"{where}.reaction")
        target = reaction.get("message_id")
        reply_to = target if isinstance(target, str) and target else reply_to
    return MessageReceived(
        **base,
        sender=sender,
        content=content_of(msg, mtype, where, delivery.raw_id),
        reply_to=reply_to,
        provider=ids,
        sent_at=sent_at,
        referral=_referral(msg.get("referral"), f"{where}.referral"),
    )


def _system(
    msg: dict[str, Any],
    where: str,
    base: dict[str, Any],
    ids: ProviderIds,
    sender: Sender,
    at: datetime,
) -> Event:
    """A ``system`` message: a number (or BSUID) change links the person's new identity;
    any other notice is a service message, never customer text."""
    system = as_obj(msg.get("system"), f"{where}.system")
    stype = as_str(system.get("type"), f"{where}.system.type")
    body = as_opt_str(system.get("body"), f"{where}.system.body")
    if stype in NUMBER_CHANGES:
        new_id = system.get("wa_id") or system.get("new_wa_id")
        return ContactNumberChanged(
            **base,
            provider=ids,
            sender=sender,
            new_id=as_opt_str(new_id, f"{where}.system.wa_id"),
            new_user_id=as_opt_str(system.get("user_id"), f"{where}.system.user_id"),
            text=body,
            at=at,
        )
    return ServiceMessageReceived(
        **base, provider=ids, action=f"system:{stype}", by=sender, text=body, at=at
    )


def _referral(value: Any, where: str) -> Referral | None:
    """A click-to-WhatsApp ad (or post) that opened the chat; ``ctwa_clid`` is the click."""
    if value is None:
        return None
    ref = as_obj(value, where)
    return Referral(
        source="ad",
        campaign=as_opt_str(ref.get("source_id"), f"{where}.source_id"),
        click_id=as_opt_str(ref.get("ctwa_clid"), f"{where}.ctwa_clid"),
        source_type=as_opt_str(ref.get("source_type"), f"{where}.source_type"),
        source_url=as_opt_str(ref.get("source_url"), f"{where}.source_url"),
        headline=as_opt_str(ref.get("headline"), f"{where}.headline"),
    )


def _callback_data(msg: dict[str, Any], mtype: str, where: str) -> tuple[str | None, bool]:
    """``(data, True)`` when the message answers a button or list the business sent.

    ``interactive`` replies carry the id the business gave the button or row; ``button``
    (a template quick reply) carries the template's ``payload``, or only its ``text`` when
    the template set none, so the text stands in for it.
    """
    if mtype == "interactive":
        interactive = as_obj(msg.get("interactive"), f"{where}.interactive")
        itype = as_str(interactive.get("type"), f"{where}.interactive.type")
        if itype not in _CALLBACK_INTERACTIVE:
            return None, False
        reply = as_obj(interactive.get(itype), f"{where}.interactive.{itype}")
        return as_str(reply.get("id"), f"{where}.interactive.{itype}.id"), True
    if mtype == "button":
        button = as_obj(msg.get("button"), f"{where}.button")
        payload = as_opt_str(button.get("payload"), f"{where}.button.payload")
        text = as_opt_str(button.get("text"), f"{where}.button.text")
        return payload or text, True
    return None, False


def content_of(msg: dict[str, Any], mtype: str, where: str, raw_id: str) -> Content:
    """The content of a WhatsApp message of type ``mtype`` (not a button answer)."""
    if mtype == "text":
        text = as_obj(msg.get("text"), f"{where}.text")
        return TextContent(text=as_str(text.get("body"), f"{where}.text.body", empty=True))
    if mtype in ("image", "video", "audio", "document", "sticker"):
        return _media_content(msg, mtype, f"{where}.{mtype}")
    if mtype == "location":
        loc = as_obj(msg.get("location"), f"{where}.location")
        return LocationContent(
            latitude=as_number(loc.get("latitude"), f"{where}.location.latitude"),
            longitude=as_number(loc.get("longitude"), f"{where}.location.longitude"),
            title=as_opt_str(loc.get("name"), f"{where}.location.name"),
            address=as_opt_str(loc.get("address"), f"{where}.location.address"),
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
    media = as_obj(msg.get(mtype), where)
    file = MediaFile(
        file_id=as_str(media.get("id"), f"{where}.id"),
        mime_type=as_opt_str(media.get("mime_type"), f"{where}.mime_type"),
        sha256=as_opt_str(media.get("sha256"), f"{where}.sha256"),
        file_name=as_opt_str(media.get("filename"), f"{where}.filename"),
    )
    caption = as_opt_str(media.get("caption"), f"{where}.caption")
    if mtype in CAPTIONED_MEDIA:
        return CAPTIONED_MEDIA[mtype](file=file, caption=caption)
    if mtype == "sticker":
        return StickerContent(file=file)
    if media.get("voice") is True:  # recorded in WhatsApp (push to talk), not a shared file
        return VoiceContent(file=file, caption=caption)
    return AudioContent(file=file, caption=caption)


def _contact(msg: dict[str, Any], where: str, raw_id: str) -> Content:
    """A shared contact card. WhatsApp can share several cards in one message; the catalog's
    contact content holds one, so the first card that has a phone number is kept
    (deliberately: the rest stay in RAW). No card with a phone -> unsupported content."""
    cards = as_list(msg.get("contacts"), f"{where}.contacts")
    for c, card in enumerate(cards):
        at = f"{where}.contacts[{c}]"
        card = as_obj(card, at)
        phones = as_list(card.get("phones", []), f"{at}.phones")
        phone = next((p for p in phones if isinstance(p, dict) and p.get("phone")), None)
        if phone is None:
            continue
        raw_name = card.get("name")
        name: dict[str, Any] = raw_name if isinstance(raw_name, dict) else {}
        first = as_opt_str(name.get("first_name"), f"{at}.name.first_name")
        formatted = as_opt_str(name.get("formatted_name"), f"{at}.name.formatted_name")
        return ContactContent(
            phone=as_str(phone["phone"], f"{at}.phones[].phone"),
            first_name=first or formatted,
            last_name=as_opt_str(name.get("last_name"), f"{at}.name.last_name"),
            user_id=as_opt_str(phone.get("wa_id"), f"{at}.phones[].wa_id"),
        )
    return UnsupportedContent(provider_kind="contacts", raw_ref=raw_id)


def _status(status: dict[str, Any], where: str, delivery: _Delivery) -> DeliveryReceipt | str:
    """A ``statuses[]`` item as a receipt; for a status value the catalog has no receipt
    for (e.g. the retired ``deleted``), that value, which the caller reports unsupported."""
    value = as_str(status.get("status"), f"{where}.status")
    if value not in RECEIPT_STATUSES:
        return value
    return DeliveryReceipt(
        channel=Channel.WHATSAPP,
        account=delivery.account,
        # A user with a username may be addressed by BSUID only (recipient_user_id).
        recipient=as_str(
            status.get("recipient_id") or status.get("recipient_user_id"),
            f"{where}.recipient_id / recipient_user_id",
        ),
        at=_ts(status.get("timestamp"), f"{where}.timestamp"),
        status=value,
        provider_message_id=as_str(status.get("id"), f"{where}.id"),
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


def _people(contacts: Any, where: str) -> dict[str, _Person]:
    """``value.contacts`` (who wrote the messages) by BSUID and by wa_id. The username sits
    beside ``user_id`` or inside ``profile`` depending on the API version: both are read."""
    people: dict[str, _Person] = {}
    for c, contact in enumerate(as_list(contacts if contacts is not None else [], where)):
        at = f"{where}[{c}]"
        contact = as_obj(contact, at)
        raw_profile = contact.get("profile")
        profile: dict[str, Any] = raw_profile if isinstance(raw_profile, dict) else {}
        username = contact.get("username") or profile.get("username")
        person = _Person(
            user_id=as_opt_str(contact.get("user_id"), f"{at}.user_id"),
            wa_id=as_opt_str(contact.get("wa_id"), f"{at}.wa_id"),
            name=as_opt_str(profile.get("name"), f"{at}.profile.name"),
            username=as_opt_str(username, f"{at}.username"),
        )
        for key in (person.user_id, person.wa_id):
            if key:
                people[key] = person
    return people


def _distinct(events: list[Event]) -> list[Event]:
    """Keep the first event of each id: the same wamid twice in one body is one message."""
    seen: dict[str | None, Event] = {}
    for event in events:
        seen.setdefault(event.deterministic_id(), event)
    return list(seen.values())


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


def _nonempty_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise NormalizeError(f"{where} is missing or not a non-empty list")
    return value
