"""Standard Webhooks from other systems -> conversation events.

The accepted shape (documented in the OpenAPI description and the README)::

    {"type": "message.received",
     "data": {"chat_id": "...", "message_id": "...", "text": "...", "sent_at": "RFC 3339",
              "sender": {"id": "...", "name": "...", "phone": "..."}}}

Any other ``type`` becomes ``conv.update_unsupported`` (kept, never dropped).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import (
    MessageReceived,
    ProviderIds,
    TextContent,
    UpdateUnsupported,
)
from switchboard.ingest.normalize.base import NormalizeError


class _Sender(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    name: str | None = None
    phone: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chat_id: str = Field(min_length=1)
    message_id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    sent_at: datetime
    sender: _Sender


def normalize_payload(
    payload: Any, *, account: str, raw_id: str, received_at: datetime
) -> list[Event]:
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise NormalizeError("generic webhook needs a string 'type'")
    kind = payload["type"]
    if kind != "message.received":
        return [
            UpdateUnsupported(
                channel=Channel.GENERIC,
                account=account,
                provider_kind=kind,
                raw_id=raw_id,
                received_at=received_at,
            )
        ]
    try:
        data = _Message.model_validate(payload.get("data"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise NormalizeError(f"message.received data.{where}: {first['msg']}") from None
    phone = "".join(c for c in data.sender.phone or "" if c.isdigit()) or None
    return [
        MessageReceived(
            channel=Channel.GENERIC,
            account=account,
            chat=Chat(id=data.chat_id),
            sender=Sender(id=data.sender.id, display_name=data.sender.name, phone=phone),
            content=TextContent(text=data.text),
            provider=ProviderIds(message_id=data.message_id, raw_id=raw_id),
            sent_at=data.sent_at,
            received_at=received_at,
        )
    ]
