"""Delivery events: what happened to each outbound message (stream ``DELIVERY``).

Outbound emits queued / sent / retrying / failed; ingest emits delivered / read receipts
from provider webhooks. All carry the caller's ``message_id`` when known.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from switchboard.events.base import Event
from switchboard.events.catalog.common import Channel
from switchboard.events.registry import register
from switchboard.events.subjects import token


class _Delivery(Event):
    message_id: str = Field(min_length=1, description="the send command's message_id")
    channel: Channel
    account: str = Field(min_length=1)
    recipient: str = Field(min_length=1)
    at: datetime

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.channel.value, self.account)

    def ce_subject(self) -> str:
        return self.message_id


@register("delivery.queued", 1)
class DeliveryQueued(_Delivery):
    """Outbound accepted a send command and queued it (first time only)."""

    priority: str = "normal"
    campaign_id: str | None = None

    def deterministic_id(self) -> str:
        return f"dq:{self.message_id}"


@register("delivery.sent", 1)
class DeliverySent(_Delivery):
    """The provider accepted the message and gave it an id."""

    provider_message_id: str = Field(min_length=1)
    attempt: int = Field(1, ge=1)
    latency_ms: float | None = Field(None, ge=0, description="command time to provider ack")

    def deterministic_id(self) -> str:
        return f"ds:{self.message_id}"


@register("delivery.retrying", 1)
class DeliveryRetrying(_Delivery):
    """An attempt failed with a retryable error; another follows at ``retry_at``."""

    attempt: int = Field(ge=1)
    reason: str
    error_code: str | None = None
    retry_at: datetime

    def deterministic_id(self) -> str:
        return f"dr:{self.message_id}:{self.attempt}"


@register("delivery.failed", 1)
class DeliveryFailed(_Delivery):
    """The message will not be delivered: a permanent error or the last attempt failed."""

    reason: str
    error_code: str | None = None
    permanent: bool
    attempts: int = Field(ge=0)

    def deterministic_id(self) -> str:
        return f"df:{self.message_id}"


@register("delivery.receipt", 1)
class DeliveryReceipt(_Delivery):
    """The provider reported the message sent, delivered, read or failed after sending
    (WhatsApp statuses, Viber delivered/seen/failed). Order by ``at``, not arrival."""

    message_id: str | None = Field(  # type: ignore[assignment]
        None, description="the send command's message_id, when the receiver knows it"
    )
    status: str = Field(pattern="^(sent|delivered|read|failed)$")
    provider_message_id: str = Field(min_length=1)
    reason: str | None = None
    raw_id: str | None = None

    def deterministic_id(self) -> str:
        # The recipient is part of it: a Viber broadcast shares one message token across users.
        return ":".join(
            token(p) for p in ("rc", self.channel.value, self.account,
                               self.provider_message_id, self.recipient, self.status)
        )  # fmt: skip

    def ce_subject(self) -> str:
        return self.message_id or self.provider_message_id
