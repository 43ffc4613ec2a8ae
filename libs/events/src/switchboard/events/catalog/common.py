"""Value types shared by several catalog messages."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Value(BaseModel):
    """A frozen, strict value object (the same rules as the messages that carry it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Channel(StrEnum):
    """Where a conversation happens."""

    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    VIBER = "viber"
    MTPROTO = "mtproto"
    GENERIC = "generic"


class ChatType(StrEnum):
    PRIVATE = "private"
    GROUP = "group"
    SUPERGROUP = "supergroup"
    CHANNEL = "channel"
    UNKNOWN = "unknown"


class Chat(Value):
    """A chat on a channel as the provider identifies it."""

    id: str = Field(min_length=1, description="provider chat id, as a string")
    type: ChatType = ChatType.PRIVATE
    title: str | None = None
    username: str | None = None


class Sender(Value):
    """Who wrote, with whatever identity the provider gives (used to resolve the contact)."""

    id: str = Field(min_length=1, description="provider user id, as a string")
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    phone: str | None = Field(None, description="E.164 without '+' when the provider gives it")
    language_code: str | None = None
    is_bot: bool = False


class MediaFile(Value):
    """A provider-hosted file: enough metadata to fetch it later or send it again."""

    file_id: str = Field(min_length=1)
    file_unique_id: str | None = None
    mime_type: str | None = None
    file_size: int | None = Field(None, ge=0)
    file_name: str | None = None
    width: int | None = Field(None, ge=0)
    height: int | None = Field(None, ge=0)
    duration: int | None = Field(None, ge=0, description="seconds")
    url: str | None = None
    sha256: str | None = None
