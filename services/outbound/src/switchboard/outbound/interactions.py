"""Interactions with messages: answering a pressed button, editing or deleting a sent
message (``outbound.answer_callback`` / ``outbound.edit`` / ``outbound.delete``).

Each command is one provider call behind the account's circuit breaker, and ends in one
``delivery.interaction_applied`` or ``delivery.interaction_failed``. They take no send slot:
Telegram does not count callback answers against the send limits, and an edit or deletion
that is rate limited answers 429, which holds the command for ``retry_after``. A redelivered
command whose first call did go through is answered by Telegram with "not modified", "not
found" or "query too old": on a redelivery those count as applied, so a crash between the
call and the ack does not turn a done interaction into a failure.

Telegram bots make every interaction; a Telegram user account (channel ``mtproto``) edits
and deletes its own messages through the gateway holding its session (``mtproto.change``).
WhatsApp and Viber commands fail with ``unsupported``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from switchboard.events import Envelope
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import InteractionApplied, InteractionFailed
from switchboard.events.catalog.outbound import (
    AnswerCallback,
    DeleteMessage,
    EditMessage,
    SetBotCommands,
)
from switchboard.outbound.attempts import Attempts
from switchboard.outbound.providers.base import ProviderError, timed_out
from switchboard.outbound.providers.mtproto import GatewayClient, unchangeable
from switchboard.outbound.providers.telegram import (
    Interaction,
    Target,
    TelegramClient,
    unparsable_edit,
)
from switchboard.outbound.text_limits import edit_too_long
from switchboard.runtime import pii
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.breaker import Breakers
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError, decode_or_reject
from switchboard.runtime.delivery.provider_failures import (
    DeadLetter,
    ProviderPolicy,
    breaker_signal,
    decide,
)

ACTIONS: dict[type[Interaction], str] = {
    AnswerCallback: "answer_callback",
    EditMessage: "edit",
    DeleteMessage: "delete",
    SetBotCommands: "bot_commands",
}
# What Telegram answers to a repeat of a call that went through.
_ALREADY_DONE = ("message is not modified", "message to delete not found", "query is too old")


def already_done(error: ProviderError, redelivered: bool) -> bool:
    """Whether a refusal means the first delivery's call went through (a redelivery only)."""
    return redelivered and any(p in error.reason.lower() for p in _ALREADY_DONE)


def refusal(cmd: Interaction) -> tuple[str, str, str] | None:
    """(field, reason, code) of an interaction its provider is bound to refuse, else None:
    what a user account cannot make, an edit over Telegram's limits, HTML a bot cannot
    parse. The API answers them 422 at once; the lane fails them without a call."""
    if cmd.channel is Channel.MTPROTO and (problem := unchangeable(cmd)) is not None:
        return *problem, "unsupported_content"
    if not isinstance(cmd, EditMessage):
        return None
    if (long := edit_too_long(cmd)) is not None:
        return long.field, long.reason, "too_long"
    bad = unparsable_edit(cmd) if cmd.channel is Channel.TELEGRAM else None
    return None if bad is None else (*bad, "telegram_unsupported")


@dataclass
class Interactions:
    bus: Bus
    accounts: AccountCache
    attempts: Attempts
    breakers: Breakers
    telegram: TelegramClient
    call_timeout: float = 15.0
    # User accounts' edits and deletions (None: refused as unsupported).
    gateway: GatewayClient | None = None
    # Deliveries count as attempts here (no attempt record), so a rate-limited one counts.
    policy: ProviderPolicy = field(
        default_factory=lambda: ProviderPolicy(
            max_attempts=10, backoff_base_s=0.5, backoff_max_s=30.0
        )
    )

    async def handle(self, msg: Msg) -> None:
        """Make one interaction; it is always settled here (ack, or nak with a delay)."""
        decoded = decode_or_reject(msg)
        cmd = decoded.model
        if not isinstance(cmd, AnswerCallback | EditMessage | DeleteMessage | SetBotCommands):
            raise PermanentError(f"{cmd.name} is not an interaction")
        env = decoded.envelope
        outcome = _Outcome(self.bus, cmd, env)
        account = self.accounts.owned(cmd.channel, cmd.account, env.workspace_id)
        if account is None:
            await outcome.failed(
                f"unknown account {cmd.channel.value}/{cmd.account}", "unknown_account"
            )
            await msg.ack()
            return
        client = self._client(cmd.channel)
        if client is None:
            await outcome.failed(f"{cmd.channel.value} has no such call here", "unsupported")
            await msg.ack()
            return
        if (refused := refusal(cmd)) is not None:  # the provider would refuse it
            field, reason, code = refused
            await outcome.failed(reason if code == "too_long" else f"{field}: {reason}", code)
            await msg.ack()
            return
        target: Target | None = None
        if isinstance(cmd, EditMessage | DeleteMessage):
            target = await self._target(cmd, env.workspace_id)
            if target is None:
                await outcome.failed(
                    f"message_id {cmd.message_id!r} names no sent message of this account",
                    "unknown_message",
                )
                await msg.ack()
                return
            outcome.target = target
        breaker = self.breakers.get(cmd.channel.value, cmd.account)
        allowed, wait = breaker.allow()
        if not allowed:
            await msg.nak(delay=wait)
            return
        started = time.perf_counter()
        deliveries = msg.metadata.num_delivered
        try:
            async with asyncio.timeout(self.call_timeout):
                await client.interact(account, cmd, target)
        except (TimeoutError, ProviderError) as exc:
            err = exc if isinstance(exc, ProviderError) else timed_out()
            if already_done(err, deliveries > 1):
                breaker.success()
                await outcome.applied(None)
                await msg.ack()
                return
            breaker.hear(breaker_signal(err.failure), str(err))
            await self._on_error(msg, outcome, err, deliveries)
            return
        breaker.success()
        await outcome.applied((time.perf_counter() - started) * 1000)
        await msg.ack()

    def _client(self, channel: Channel) -> TelegramClient | GatewayClient | None:
        if channel is Channel.TELEGRAM:
            return self.telegram
        return self.gateway if channel is Channel.MTPROTO else None

    async def _target(self, cmd: EditMessage | DeleteMessage, workspace: str) -> Target | None:
        if cmd.message_id is None:
            assert cmd.recipient is not None
            assert cmd.provider_message_id is not None
            return Target(cmd.recipient, cmd.provider_message_id)
        record = await self.attempts.get(workspace, cmd.message_id)
        if (
            record is None
            or record.provider_message_id is None
            or (record.channel, record.account) != (cmd.channel.value, cmd.account)
        ):
            return None
        return Target(record.recipient, record.provider_message_id)

    async def _on_error(
        self, msg: Msg, outcome: _Outcome, err: ProviderError, deliveries: int
    ) -> None:
        """Retry later (a delayed redelivery), or announce the failure and settle."""
        decided = decide(err.as_failure(), deliveries, self.policy)
        if isinstance(decided, DeadLetter):
            await outcome.failed(decided.reason, err.code)
            await msg.ack()
            return
        # A rate limit holds this command only: interactions take no shared rate slot.
        await msg.nak(delay=decided.delay_s)


@dataclass
class _Outcome:
    bus: Bus
    cmd: Interaction
    env: Envelope
    target: Target | None = None

    def base(self) -> dict[str, Any]:
        cmd = self.cmd
        return {
            "request_id": cmd.request_id,
            "action": ACTIONS[type(cmd)],
            "channel": cmd.channel,
            "account": cmd.account,
            "message_id": getattr(cmd, "message_id", None),
            "recipient": self.target.recipient if self.target else None,
            "provider_message_id": self.target.provider_message_id if self.target else None,
            "callback_query_id": getattr(cmd, "callback_query_id", None),
            "at": datetime.now(UTC),
        }

    async def applied(self, latency_ms: float | None) -> None:
        latency = None if latency_ms is None else round(latency_ms, 1)
        await pii.publish_sealed(
            self.bus, InteractionApplied(**self.base(), latency_ms=latency), cause=self.env
        )

    async def failed(self, reason: str, code: str) -> None:
        await pii.publish_sealed(
            self.bus,
            InteractionFailed(**self.base(), reason=reason, error_code=code),
            cause=self.env,
        )
