"""What happens to a send command once its fate is known: the attempt record, the
``delivery.*`` (and ``conv.message_sent``) events, the DLQ entry, the campaign's failure
count, and settling the command in the stream, in that order (nothing is acked before
what it leads to is stored)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from nats.aio.msg import Msg

from switchboard.events import Envelope
from switchboard.events.base import Message
from switchboard.events.catalog.common import Chat, ChatType
from switchboard.events.catalog.conv import MessageSent
from switchboard.events.catalog.delivery import (
    DeliveryFailed,
    DeliveryRetrying,
    DeliverySent,
    SendRejected,
)
from switchboard.events.catalog.outbound import (
    OutMedia,
    OutMediaGroup,
    OutText,
    SendMessage,
    StartCampaign,
)
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.providers.base import Sent
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import dead_letter_msg
from switchboard.runtime.failures import stored_for_sure
from switchboard.runtime.markup import words

CANCELLED = "campaign_cancelled"
# A send whose recipient was erased before it left (``erasure``): its failure was announced
# naming the marker, and its command, which names the person, goes nowhere else.
ERASED = "erased"
ERASED_REASON = "the recipient was erased before it was sent"


def failure_of(record: Attempt) -> dict[str, object]:
    """The fields of a failed record's ``delivery.failed`` besides the message, its account,
    recipient and campaign: when, why (the code's prefix off), the code, whether for good."""
    code = record.error_code or "failed"
    at = next((s.at for s in reversed(record.history) if s.status == "failed"), None)
    return {
        "at": at or datetime.now(UTC),
        "reason": (record.reason or code).removeprefix(f"{code}: "),
        "error_code": code,
        "permanent": record.permanent is not False,  # None: recorded before it was kept
        "attempts": record.attempts,
    }


async def stored_and_announced(
    attempts: Attempts, record: Attempt, announcement: Awaitable[object]
) -> None:
    """Store the record of a provider's act (a message it has, an email it sent) beside its
    announcement. The record is the one write a redelivery must find, or it calls the
    provider again (no idempotency key at a bot API or SendPulse): a failure of ours is
    tried again for as long as it lasts (``stored_for_sure``; the chaos test's quorum loss
    had such records fail, and each send went twice), while the lane keeps the command
    held. A failed announcement is raised once the record is stored: the redelivery
    announces again from it."""
    outcomes = await asyncio.gather(
        stored_for_sure(lambda: attempts.put(record)), announcement, return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


class CampaignHooks(Protocol):
    """What a campaign send needs from the campaigns (see ``campaigns.view``); a campaign is
    named by its workspace and id (ids are per workspace)."""

    def status(self, workspace: str, campaign_id: str) -> str | None:
        """running, paused, cancelled, completed, or None when unknown."""
        ...

    async def changed(self, workspace: str, campaign_id: str, timeout: float) -> None:
        """Return when the campaign's state changes, or after ``timeout``."""
        ...

    async def record_failure(
        self, workspace: str, campaign_id: str, message_id: str, code: str
    ) -> None:
        """Count a failed send of the campaign (idempotent), before its command is acked."""
        ...

    def definition(self, workspace: str, campaign_id: str) -> StartCampaign | None:
        """The campaign's start (its pool), when known."""
        ...

    async def record_moved(self, workspace: str, campaign_id: str, message_id: str) -> None:
        """Count a send moved to another account of the pool (idempotent), before its ack."""
        ...


@dataclass
class Outcome:
    """One command being processed, and the ways it can end."""

    bus: Bus
    attempts: Attempts
    campaigns: CampaignHooks | None
    cmd: SendMessage
    env: Envelope
    msg: Msg
    consumer: str

    def base(self) -> dict[str, object]:
        return {
            "message_id": self.cmd.message_id,
            "channel": self.cmd.channel,
            "account": self.cmd.account,
            "recipient": self.cmd.recipient,
            "at": datetime.now(UTC),
        }

    async def announce(self, event: Message) -> None:
        # sealed: the recipient, and the text of a reply in a one-to-one chat, are personal
        await pii.publish_sealed(self.bus, event, cause=self.env)

    async def sent(self, record: Attempt, sent: Sent, latency_ms: float) -> None:
        record = record.step(
            "sent",
            provider_message_id=sent.provider_message_id,
            chat_id=sent.chat_id,
            chat_type=sent.chat_type,
            chat_title=sent.chat_title,
        )
        await stored_and_announced(self.attempts, record, self.announce_sent(record, latency_ms))
        await self.msg.ack()

    async def announce_sent(self, record: Attempt, latency_ms: float | None = None) -> None:
        """DeliverySent and MessageSent of a sent message. Their ids are fixed by the message
        id, so announcing again - a redelivery after the first announcement failed in an
        outage while the record was stored - stores nothing twice and loses nothing."""
        cmd = self.cmd
        at = next((s.at for s in reversed(record.history) if s.status == "sent"), None)
        at = at or datetime.now(UTC)
        assert record.provider_message_id is not None
        await asyncio.gather(
            self.announce(
                DeliverySent(
                    **{**self.base(), "at": at},
                    attempt=max(record.attempts, 1),
                    provider_message_id=record.provider_message_id,
                    latency_ms=None if latency_ms is None else round(latency_ms, 1),
                    campaign_id=cmd.campaign_id,
                )
            ),
            self.announce(
                MessageSent(
                    channel=cmd.channel,
                    account=cmd.account,
                    # the chat the provider named (inbound's id of it), else as addressed
                    chat=sent_chat(record),
                    message_id=cmd.message_id,
                    provider_message_id=record.provider_message_id,
                    text=_text(cmd),
                    content_kind=cmd.content.kind,
                    sent_at=at,
                    campaign_id=cmd.campaign_id,
                )
            ),
        )

    async def again(self, record: Attempt, reason: str, code: str, delay: float) -> None:
        """Another attempt in ``delay`` seconds; ``record`` counts the attempts as the
        provider-failure policy decided (a rate-limited call is not one)."""
        record = record.step("retrying", reason=f"{code}: {reason}")
        await asyncio.gather(
            self.attempts.put(record),
            self.announce(
                DeliveryRetrying(
                    **self.base(),
                    attempt=max(record.attempts, 1),
                    reason=reason,
                    error_code=code,
                    retry_at=datetime.now(UTC) + timedelta(seconds=delay),
                    campaign_id=self.cmd.campaign_id,
                )
            ),
        )
        await self.msg.nak(delay=delay)

    async def fail(self, record: Attempt, reason: str, code: str, *, permanent: bool) -> None:
        """Record the message as failed and say so: its event, the campaign's count, the DLQ
        (not for a cancelled campaign's sends), then the ack."""
        record = record.step(
            "failed", reason=f"{code}: {reason}", error_code=code, permanent=permanent
        )
        await asyncio.gather(self.attempts.put(record), self.announce_failed(record))
        await self.settle_failed(record)

    async def announce_failed(self, record: Attempt) -> None:
        """DeliveryFailed of a failed message. Its id is fixed by the message id, so
        announcing again (a redelivery after the first announcement failed in an outage while
        the record was stored) stores nothing twice and loses nothing."""
        fields = {**self.base(), **failure_of(record), "campaign_id": self.cmd.campaign_id}
        await self.announce(DeliveryFailed.model_validate(fields))

    async def settle_failed(self, record: Attempt, *, dead_letter: bool = True) -> None:
        """What follows a failure's record and event: the campaign's count and the DLQ entry
        (both idempotent, so a redelivery does them again in case they were lost), the ack.
        ``dead_letter``: this message is the one that failed (not a repeat of its id)."""
        code = record.error_code or "failed"
        if self.cmd.campaign_id and self.campaigns is not None:
            await self.campaigns.record_failure(
                self.env.workspace_id, self.cmd.campaign_id, self.cmd.message_id, code
            )
        if dead_letter and code not in (CANCELLED, ERASED):  # no poison, and no copy of them
            await dead_letter_msg(
                self.bus, self.msg, reason=record.reason or code, consumer=self.consumer
            )
        await self.msg.ack()

    async def reject(self, reason: str, code: str) -> None:
        """Refuse the command without touching the message its id names: the rejection
        event and a DLQ entry say why, then it is acked."""
        await self.announce(
            SendRejected(
                **self.base(),
                reason=reason,
                error_code=code,
                command_seq=self.msg.metadata.sequence.stream,
                campaign_id=self.cmd.campaign_id,
            )
        )
        await dead_letter_msg(
            self.bus, self.msg, reason=f"{code}: {reason}", consumer=self.consumer
        )
        await self.msg.ack()


def sent_chat(record: Attempt) -> Chat:
    """The chat a sent message is in, as inbound names it: the id, kind and title the
    provider's answer gave, else the recipient as addressed (a private chat)."""
    kind = record.chat_type if record.chat_type in set(ChatType) else None
    return Chat(
        id=record.chat_id or record.recipient,
        type=ChatType(kind) if kind else ChatType.PRIVATE,
        title=record.chat_title,
    )


def _text(cmd: SendMessage) -> str | None:
    """The words the recipient reads: a text's markup (a Bot API parse mode) shows as its
    words in the CRM's timeline, as the customer's own texts do."""
    content = cmd.content
    if isinstance(content, OutText):
        return words(content.text, content.parse_mode)
    if isinstance(content, OutMedia):
        return None if content.caption is None else words(content.caption, content.parse_mode)
    if isinstance(content, OutMediaGroup):
        return next((i.caption for i in content.items if i.caption), None)
    return None
