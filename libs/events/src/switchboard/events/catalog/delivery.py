"""Delivery events: what happened to each outbound message (stream ``DELIVERY``).

Outbound emits queued / sent / retrying / failed; ingest emits delivered / read receipts
from provider webhooks. All carry the caller's ``message_id`` when known.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from switchboard.events.base import Event
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.routing import ChannelRouted, ProviderRouted
from switchboard.events.registry import register
from switchboard.events.subjects import token


class _Delivery(ChannelRouted, Event):
    caller_keyed: ClassVar[bool] = True  # ids follow the send's message_id (receipts aside)

    message_id: str = Field(min_length=1, description="the send command's message_id")
    channel: Channel
    account: str = Field(min_length=1)
    recipient: str = Field(min_length=1)
    at: datetime

    def ce_subject(self) -> str:
        return self.message_id


class _FailedForGood(BaseModel):
    """How a send failed for good (a permanent error, or the last of its ``attempts``): what
    ``delivery.failed``, ``conversion_failed`` and ``dispatch_failed`` record. Named before
    the base class, so these fields follow the base's in the schema."""

    reason: str
    error_code: str | None = None
    permanent: bool
    attempts: int = Field(ge=0)


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
    campaign_id: str | None = None

    def deterministic_id(self) -> str:
        return f"ds:{self.message_id}"


@register("delivery.retrying", 1)
class DeliveryRetrying(_Delivery):
    """An attempt failed with a retryable error; another follows at ``retry_at``."""

    attempt: int = Field(ge=1)
    reason: str
    error_code: str | None = None
    retry_at: datetime
    campaign_id: str | None = None

    def deterministic_id(self) -> str:
        # A rate-limited retry is not counted as an attempt, so two retries can share the
        # attempt (a flood wait after a timeout, or two 429s in a row) and even the error:
        # the time it retries at tells them apart, and the same retry published again keeps
        # its id (JetStream stores it once).
        at = round(self.retry_at.timestamp() * 1000)
        return f"dr:{self.message_id}:{self.attempt}:{self.error_code or ''}:{at}"


@register("delivery.failed", 1)
class DeliveryFailed(_FailedForGood, _Delivery):
    """The message will not be delivered: a permanent error or the last attempt failed."""

    campaign_id: str | None = None

    def deterministic_id(self) -> str:
        return f"df:{self.message_id}"


@register("delivery.rejected", 1)
class SendRejected(_Delivery):
    """A send command was refused before anything was sent, leaving the message its
    ``message_id`` names as it was: the id is taken in the workspace by a command with a
    different body (``error_code`` ``idempotency_conflict``). ``command_seq`` is the refused
    command's OUTBOUND stream sequence."""

    reason: str = Field(min_length=1)
    error_code: str = Field(min_length=1)
    command_seq: int = Field(ge=0)
    campaign_id: str | None = None

    def deterministic_id(self) -> str:
        return f"dx:{self.message_id}:{self.command_seq}"


@register("delivery.rescheduled", 1)
class DeliveryRescheduled(_Delivery):
    """A scheduled send was moved to another time before it left (``not_before`` is the
    new time, ``previous`` the one it had). A cancelled one is ``delivery.failed`` with
    ``error_code`` ``cancelled``."""

    not_before: datetime
    previous: datetime | None = None

    def deterministic_id(self) -> str:
        return f"dm:{self.message_id}:{self.not_before.isoformat()}"


class _InteractionOutcome(ChannelRouted, Event):
    caller_keyed: ClassVar[bool] = True  # ids follow the request's request_id

    request_id: str = Field(min_length=1)
    action: Literal["answer_callback", "edit", "delete", "bot_commands"]
    channel: Channel
    account: str = Field(min_length=1)
    message_id: str | None = Field(None, description="our send's message_id, when it named one")
    recipient: str | None = None
    provider_message_id: str | None = None
    callback_query_id: str | None = None
    at: datetime

    def ce_subject(self) -> str:
        return self.request_id


@register("delivery.interaction_applied", 1)
class InteractionApplied(_InteractionOutcome):
    """A callback answer, an edit or a deletion was accepted by the provider."""

    latency_ms: float | None = Field(None, ge=0, description="command time to provider ack")

    def deterministic_id(self) -> str:
        return f"ia:{self.action}:{self.request_id}"


@register("delivery.interaction_failed", 1)
class InteractionFailed(_InteractionOutcome):
    """A callback answer, an edit or a deletion could not be made (``error_code`` says why:
    the provider's refusal, an unknown account or message, a channel without it)."""

    reason: str = Field(min_length=1)
    error_code: str = Field(min_length=1)

    def deterministic_id(self) -> str:
        return f"if:{self.action}:{self.request_id}"


@register("delivery.receipt", 1)
class DeliveryReceipt(_Delivery):
    """The provider reported the message sent, delivered, read or failed after sending
    (WhatsApp statuses, Viber delivered/seen/failed). Order by ``at``, not arrival."""

    caller_keyed: ClassVar[bool] = False  # its id follows the provider's message id

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


# -- campaigns ------------------------------------------------------------------------------


class _CampaignEvent(Event):
    about: ClassVar[str] = "campaign_id"
    caller_keyed: ClassVar[bool] = True  # campaign ids are per workspace

    campaign_id: str = Field(min_length=1)
    at: datetime


@register("delivery.campaign_status", 1)
class CampaignStatusChanged(_CampaignEvent):
    """A campaign was started, paused, resumed or cancelled (``status`` is the new state;
    ``seq`` orders the commands that caused it)."""

    status: Literal["running", "paused", "cancelled"]
    previous: str | None = None
    reason: str | None = None
    seq: int = Field(0, ge=0, description="stream sequence of the command that caused it")

    def deterministic_id(self) -> str:
        return f"cs:{token(self.campaign_id)}:{self.status}:{self.seq}"


@register("delivery.campaign_progress", 1)
class CampaignProgress(_CampaignEvent):
    """Where a running campaign is, at a fixed cadence: ``sent`` and ``failed`` so far,
    ``remaining`` (of the recipients known; ``total`` is None until the last batch arrived),
    the recent send rate and the ETA at that rate."""

    status: str
    total: int | None = Field(None, ge=0)
    received: int = Field(ge=0, description="recipients received so far (all batches)")
    queued: int = Field(ge=0, description="recipients handed to the bulk lane so far")
    sent: int = Field(ge=0)
    failed: int = Field(ge=0)
    remaining: int = Field(ge=0)
    rate_per_s: float = Field(ge=0, description="sends per second over the last interval")
    eta_s: float | None = Field(None, ge=0)
    eta: datetime | None = None
    tick: int = Field(ge=0, description="the progress event's number since the start")

    def deterministic_id(self) -> str:
        return f"cp:{token(self.campaign_id)}:{self.tick}"


@register("delivery.campaign_completed", 1)
class CampaignCompleted(_CampaignEvent):
    """A campaign ended: every recipient was sent to or failed (``outcome`` completed), or it
    was cancelled and ``cancelled`` recipients were never sent to. Totals are exact:
    ``sent + failed + cancelled == total``."""

    outcome: Literal["completed", "cancelled"]
    total: int = Field(ge=0)
    sent: int = Field(ge=0)
    failed: int = Field(ge=0)
    cancelled: int = Field(0, ge=0)
    started_at: datetime | None = None
    duration_s: float | None = Field(None, ge=0, description="first command to the end")
    failures: dict[str, int] = Field(default_factory=dict, description="failed, by error code")

    def deterministic_id(self) -> str:
        return f"cc:{token(self.campaign_id)}"


# -- conversions (Meta CAPI) ----------------------------------------------------------------


class _ConversionEvent(ProviderRouted, Event):
    provider_name: ClassVar[str] = "metacapi"

    conversion_id: str = Field(min_length=1, description="the command's conversion_id")
    account: str = Field(min_length=1, description="pixel / dataset id")
    event_name: str
    event_id: str
    lead_id: str | None = None
    at: datetime

    def ce_subject(self) -> str:
        return self.conversion_id


@register("delivery.conversion_sent", 1)
class ConversionSent(_ConversionEvent):
    """Meta's Conversions API accepted a conversion (``outbound.conversion``), possibly in a
    batch with others for the same pixel (``batch_size``)."""

    fbtrace_id: str | None = None
    batch_size: int = Field(1, ge=1)
    attempt: int = Field(1, ge=1)
    dropped_fields: tuple[str, ...] = Field(
        default=(), description="user_data values Meta's rules call invalid, left out"
    )

    def deterministic_id(self) -> str:
        return f"xs:{self.conversion_id}"


@register("delivery.conversion_failed", 1)
class ConversionFailed(_FailedForGood, _ConversionEvent):
    """A conversion will not reach Meta: a permanent error (bad event, stale, no account) or
    the last retry failed."""

    def deterministic_id(self) -> str:
        return f"xf:{self.conversion_id}"


# -- other provider commands (SendPulse email, SMS, address books) --------------------------


class _DispatchEvent(Event):
    caller_keyed: ClassVar[bool] = True  # ids follow the command's per-workspace id

    command: str = Field(description="the command's catalog name, e.g. outbound.email")
    id: str = Field(min_length=1, description="the command's idempotency key")
    provider: str = Field(min_length=1)
    account: str = Field(min_length=1)
    at: datetime

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.provider, self.account)

    def ce_subject(self) -> str:
        return self.id


@register("delivery.dispatched", 1)
class Dispatched(_DispatchEvent):
    """A provider command that is not a chat message (an email, an SMS, an address-book sync)
    was accepted by the provider; ``provider_id`` is its id there when it gives one."""

    provider_id: str | None = None
    attempt: int = Field(1, ge=1)
    detail: dict[str, Any] = Field(default_factory=dict)

    def deterministic_id(self) -> str:
        return f"pd:{self.command}:{self.id}"


@register("delivery.dispatch_failed", 1)
class DispatchFailed(_FailedForGood, _DispatchEvent):
    """A provider command that is not a chat message failed for good."""

    def deterministic_id(self) -> str:
        return f"pf:{self.command}:{self.id}"
