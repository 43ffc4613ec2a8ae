"""Viber REST Bot API callback -> conversation events and delivery receipts.

Pure: the same callback in, the same events out; nothing random, no clock (``received_at``
is passed in). A Viber callback carries exactly one event, so it yields at most one
conversation event, whose id comes from Viber's ``message_token`` (never from the delivery),
so a callback Viber retries for an hour cannot create a second event.

Mapping (``event`` -> conversation event):

- ``message`` -> :class:`MessageReceived` (``text``, ``picture``, ``video``, ``file``,
  ``sticker``, ``contact``, ``location``, ``url``; any other type -> unsupported content);
- ``delivered`` / ``seen`` / ``failed`` -> :class:`DeliveryReceipt` (``seen`` is ``read``);
- ``subscribed`` / ``unsubscribed`` / ``conversation_started`` -> :class:`ContactStatusChanged`
  (``conversation_started`` carries its deep-link ``context`` as the referral);
- ``webhook`` -> nothing (see :func:`normalize_payload`);
- any other event -> :class:`UpdateUnsupported`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, ChatType, MediaFile, Sender
from switchboard.events.catalog.conv import (
    ContactContent,
    ContactStatus,
    ContactStatusChanged,
    Content,
    DocumentContent,
    LocationContent,
    MessageReceived,
    PhotoContent,
    ProviderIds,
    Referral,
    StickerContent,
    TextContent,
    UnsupportedContent,
    UpdateUnsupported,
    VideoContent,
)
from switchboard.events.catalog.delivery import DeliveryReceipt
from switchboard.ingest.normalize.base import (
    NormalizeError,
    as_number,
    as_obj,
    as_opt_str,
    as_str,
    reading,
)

RECEIPTS = {"delivered": "delivered", "seen": "read", "failed": "failed"}
# Message types that carry one media file with an optional caption (``text``).
CAPTIONED_MEDIA: dict[str, type[PhotoContent | VideoContent | DocumentContent]] = {
    "picture": PhotoContent,
    "video": VideoContent,
    "file": DocumentContent,
}
STATUSES = {
    "subscribed": ContactStatus.SUBSCRIBED,
    "unsubscribed": ContactStatus.UNSUBSCRIBED,
    "conversation_started": ContactStatus.CONVERSATION_STARTED,
}


def normalize_payload(
    payload: Any, *, account: str, raw_id: str, received_at: datetime
) -> list[Event]:
    """The conversation events of one Viber callback (exactly one, or none for ``webhook``).

    Raises :class:`NormalizeError` naming the first field that cannot be read.
    """
    if not isinstance(payload, dict):
        raise NormalizeError("not a Viber callback: the body is not a JSON object")
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        raise NormalizeError("not a Viber callback: 'event' is missing or not a string")
    if event == "webhook":
        # Viber posts this once when set_webhook is called, to check the URL answers 200.
        # It names no user and no message: there is nothing to tell the conversation.
        return []
    with reading(f"Viber {event} callback", prefix_own=True):
        if event == "message":
            return [_message(payload, account, raw_id, received_at)]
        if event in RECEIPTS:
            return [_receipt(payload, event, account, raw_id)]
        if event in STATUSES:
            return [_status_change(payload, event, account, raw_id, received_at)]
    return [
        UpdateUnsupported(
            channel=Channel.VIBER,
            account=account,
            provider_kind=event,
            raw_id=raw_id,
            received_at=received_at,
        )
    ]


def _message(
    payload: dict[str, Any], account: str, raw_id: str, received_at: datetime
) -> MessageReceived:
    """A user's message: ``sender`` is the user, and the 1:1 chat with the bot is theirs."""
    token = _message_token(payload)
    sender = _user(payload.get("sender"), "sender")
    message = as_obj(payload.get("message"), "message")
    return MessageReceived(
        channel=Channel.VIBER,
        account=account,
        chat=Chat(id=sender.id, type=ChatType.PRIVATE, title=sender.display_name),
        sender=sender,
        content=content_of(message, raw_id),
        provider=ProviderIds(message_id=token, raw_id=raw_id),
        sent_at=_ts(payload.get("timestamp")),
        received_at=received_at,
    )


def content_of(message: dict[str, Any], raw_id: str) -> Content:
    """The content of a Viber ``message`` object, by its ``type``."""
    mtype = as_str(message.get("type"), "message.type")
    if mtype == "text":
        return TextContent(text=as_str(message.get("text"), "message.text", empty=True))
    if mtype == "url":
        # A shared link: the URL is the whole message, so it reads as text.
        return TextContent(text=as_str(message.get("media"), "message.media"))
    if mtype in CAPTIONED_MEDIA:
        file = _media_file(message)
        caption = as_opt_str(message.get("text"), "message.text")
        return CAPTIONED_MEDIA[mtype](file=file, caption=caption)
    if mtype == "sticker":
        sticker_id = message.get("sticker_id")
        ok = isinstance(sticker_id, int | str) and not isinstance(sticker_id, bool)
        if not ok or sticker_id == "":
            raise NormalizeError("message.sticker_id is missing or not an id")
        # The sticker id is what send_message takes to send the same sticker back.
        url = as_opt_str(message.get("media"), "message.media")
        return StickerContent(file=MediaFile(file_id=str(sticker_id), url=url))
    if mtype == "contact":
        contact = as_obj(message.get("contact"), "message.contact")
        return ContactContent(
            phone=as_str(contact.get("phone_number"), "message.contact.phone_number"),
            first_name=as_opt_str(contact.get("name"), "message.contact.name"),
        )
    if mtype == "location":
        loc = as_obj(message.get("location"), "message.location")
        return LocationContent(
            latitude=as_number(loc.get("lat"), "message.location.lat"),
            longitude=as_number(loc.get("lon"), "message.location.lon"),
            address=as_opt_str(loc.get("address"), "message.location.address"),
        )
    # rich_media and whatever Viber adds next: kept, with the way back to the payload.
    return UnsupportedContent(provider_kind=mtype, raw_ref=raw_id)


def _media_file(message: dict[str, Any]) -> MediaFile:
    """Viber hands out media as a URL and nothing else: the URL is both the id (it is what
    send_message takes to send the same media again) and where to download it."""
    url = as_str(message.get("media"), "message.media")
    return MediaFile(
        file_id=url,
        url=url,
        file_name=as_opt_str(message.get("file_name"), "message.file_name"),
        file_size=_opt_int(message.get("size"), "message.size"),
        duration=_opt_int(message.get("duration"), "message.duration"),
    )


def _receipt(payload: dict[str, Any], event: str, account: str, raw_id: str) -> DeliveryReceipt:
    """What happened to a message the bot sent: delivered, seen (read) or failed."""
    return DeliveryReceipt(
        channel=Channel.VIBER,
        account=account,
        recipient=as_str(payload.get("user_id"), "user_id"),
        at=_ts(payload.get("timestamp")),
        status=RECEIPTS[event],
        provider_message_id=_message_token(payload),
        reason=as_opt_str(payload.get("desc"), "desc") if event == "failed" else None,
        raw_id=raw_id,
    )


def _status_change(
    payload: dict[str, Any], event: str, account: str, raw_id: str, received_at: datetime
) -> ContactStatusChanged:
    """A user subscribed, unsubscribed or opened the conversation with the bot.

    These events have no message of their own; ``<event>:<message_token>`` stands for one so
    that each gets its own identity (a user opens the chat many times, each with a token).
    """
    token = _message_token(payload)
    if event == "unsubscribed":  # carries only the id of the user who left
        sender = Sender(id=as_str(payload.get("user_id"), "user_id"))
    else:
        sender = _user(payload.get("user"), "user")
    return ContactStatusChanged(
        channel=Channel.VIBER,
        account=account,
        chat=Chat(id=sender.id, type=ChatType.PRIVATE, title=sender.display_name),
        provider=ProviderIds(message_id=f"{event}:{token}", raw_id=raw_id),
        received_at=received_at,
        sender=sender,
        status=STATUSES[event],
        at=_ts(payload.get("timestamp")),
        referral=_context(payload) if event == "conversation_started" else None,
    )


def _context(payload: dict[str, Any]) -> Referral | None:
    """The deep-link parameter (``viber://pa?chatURI=...&context=...``) a conversation was
    opened with: where the customer came from, kept for the lead."""
    context = as_opt_str(payload.get("context"), "context")
    return Referral(source="deep_link", campaign=context) if context else None


def _user(value: Any, where: str) -> Sender:
    """A Viber user object (``sender`` of messages, ``user`` of subscriptions)."""
    user = as_obj(value, where)
    return Sender(
        id=as_str(user.get("id"), f"{where}.id"),
        display_name=as_opt_str(user.get("name"), f"{where}.name"),
        language_code=as_opt_str(user.get("language"), f"{where}.language"),
    )


def _message_token(payload: dict[str, Any]) -> str:
    """Viber's message token (a 64-bit integer) as a string."""
    token = payload.get("message_token")
    if isinstance(token, int) and not isinstance(token, bool):
        return str(token)
    if isinstance(token, str) and token:
        return token
    raise NormalizeError(f"message_token {token!r} is missing or not an integer")


def _ts(value: Any) -> datetime:
    """Viber's ``timestamp``: unix time in milliseconds (kept exact, no float rounding)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NormalizeError(f"timestamp {value!r} is not unix milliseconds")
    try:
        return datetime.fromtimestamp(value // 1000, UTC) + timedelta(milliseconds=value % 1000)
    except (OverflowError, OSError, ValueError):
        raise NormalizeError(f"timestamp {value!r} is out of range") from None


def _opt_int(value: Any, where: str) -> int | None:
    """A size or duration: a non-negative number, truncated to an integer if fractional."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**63:
        raise NormalizeError(f"{where} {value!r} is not a non-negative number")
    return int(value)
