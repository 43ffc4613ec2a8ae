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
