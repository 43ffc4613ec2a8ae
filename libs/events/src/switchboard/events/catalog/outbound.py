"""Outbound commands: what to send, to whom, through which account (stream ``OUTBOUND``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from switchboard.events.base import Command
from switchboard.events.catalog.common import Channel, Value
from switchboard.events.registry import register


class Priority(StrEnum):
    """Lanes: conversational replies overtake bulk broadcasts."""

    HIGH = "high"
    NORMAL = "normal"
    BULK = "bulk"


class MediaSource(Value):
    """Exactly one of a provider file id, an HTTP URL or inline bytes (base64)."""

    file_id: str | None = None
    url: str | None = None
    data_base64: str | None = None
    file_name: str | None = None
    mime_type: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [x for x in (self.file_id, self.url, self.data_base64) if x]
        if len(given) != 1:
            raise ValueError("media source needs exactly one of file_id, url, data_base64")
        return self


class Button(Value):
    text: str = Field(min_length=1)
    callback_data: str | None = Field(None, max_length=64)
    url: str | None = None


class Keyboard(Value):
    """Buttons under a message (inline) or replacing the user's keyboard (reply)."""

    type: Literal["inline", "reply", "remove"] = "inline"
    rows: tuple[tuple[Button, ...], ...] = ()
    one_time: bool = False


class OutText(Value):
    kind: Literal["text"] = "text"
    text: str = Field(min_length=1)
    parse_mode: Literal["MarkdownV2", "HTML", "Markdown"] | None = None
    preview_url: bool = False


class OutMedia(Value):
    kind: Literal["photo", "video", "audio", "voice", "document", "animation", "sticker"]
    source: MediaSource
    caption: str | None = None


class OutMediaGroup(Value):
    kind: Literal["media_group"] = "media_group"
    items: tuple[OutMedia, ...] = Field(min_length=2, max_length=10)


class OutTemplate(Value):
    """A pre-approved template (WhatsApp): allowed outside the 24 h window."""

    kind: Literal["template"] = "template"
    name: str = Field(min_length=1)
    language: str = Field(min_length=2)
    components: tuple[dict[str, Any], ...] = ()


class OutLocation(Value):
    kind: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


OutContent = Annotated[
    OutText | OutMedia | OutMediaGroup | OutTemplate | OutLocation, Field(discriminator="kind")
]


@register("outbound.send", 1)
class SendMessage(Command):
    """Send one message through a channel account. ``message_id`` is the caller's idempotency
    key: the same id is sent at most once (barring a crash mid-call, see outbound docs)."""

    message_id: str = Field(min_length=1, max_length=200)
    channel: Channel
    account: str = Field(min_length=1)
    recipient: str = Field(min_length=1, description="provider chat id / phone / user id")
    content: OutContent
    keyboard: Keyboard | None = None
    reply_to: str | None = Field(None, description="provider message id to answer")
    priority: Priority = Priority.NORMAL
    not_before: datetime | None = None
    expires_at: datetime | None = None
    campaign_id: str | None = None
    conversation_id: str | None = None

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.channel.value, self.account)

    def ce_subject(self) -> str:
        return self.message_id

    def deterministic_id(self) -> str:
        return f"send:{self.message_id}"


class ConversionUserData(Value):
    """Who converted, in Meta's ``user_data`` field names and **plain** (unhashed) values:
    outbound normalizes and hashes them exactly as Meta's ``facebook-business`` SDK does, so
    no producer has to get hashing right. ``lead_id`` (Meta's own lead id), the click ids and
    the client fields are sent as they are."""

    em: tuple[str, ...] = Field(default=(), description="e-mail addresses")
    ph: tuple[str, ...] = Field(default=(), description="phone numbers, any format")
    fn: str | None = Field(None, description="first name")
    ln: str | None = Field(None, description="last name")
    ct: str | None = Field(None, description="city")
    st: str | None = Field(None, description="state or region")
    zp: str | None = Field(None, description="postal code")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2")
    db: str | None = Field(None, description="date of birth, YYYYMMDD")
    ge: Literal["f", "m"] | None = None
    external_id: tuple[str, ...] = Field(default=(), description="our ids of the person")
    lead_id: str | None = Field(None, description="Meta's lead id (lead ads), never hashed")
    fbc: str | None = None
    fbp: str | None = None
    client_ip_address: str | None = None
    client_user_agent: str | None = None


@register("outbound.conversion", 1)
class SendConversion(Command):
    """Report one conversion (``Lead``, ``Purchase``, ...) to Meta's Conversions API through a
    pixel / dataset account. ``conversion_id`` is the idempotency key (sent at most once, as
    ``message_id`` for sends); ``event_id`` is Meta's dedup key between pixel and server, so a
    producer derives it from its own source event and a replay reports the same event."""

    conversion_id: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, description="pixel / dataset id (metacapi account)")
    event_name: str = Field(min_length=1, description="Meta standard or custom event name")
    event_time: datetime
    event_id: str = Field(min_length=1, max_length=200)
    action_source: Literal[
        "system_generated",
        "website",
        "app",
        "chat",
        "phone_call",
        "email",
        "physical_store",
        "business_messaging",
        "other",
    ] = "system_generated"
    user_data: ConversionUserData
    value: float | None = Field(None, ge=0)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217")
    custom_data: dict[str, Any] = Field(default_factory=dict, description="extra custom_data")
    event_source_url: str | None = None
    lead_id: str | None = Field(None, description="our CRM lead id, for correlation")
    test_event_code: str | None = Field(None, description="Meta Events Manager test code")

    @model_validator(mode="after")
    def _currency_with_value(self) -> Self:
        if self.value is not None and self.currency is None:
            raise ValueError("a conversion value needs a currency")
        return self

    def routing_tokens(self) -> tuple[str, ...]:
        return ("metacapi", self.account)

    def ce_subject(self) -> str:
        return self.conversion_id

    def deterministic_id(self) -> str:
        return f"conversion:{self.conversion_id}"
