"""Provider commands that are not chat messages: SendPulse email, SMS and address-book sync
(``outbound-dispatch`` durable). Same rules as a send: an attempt record per command id
(done once), the account's shared rate limit and a 429 pause for every instance, a circuit
breaker, retries as delayed redeliveries, and ``delivery.dispatched`` /
``delivery.dispatch_failed`` (with a DLQ entry) as outcomes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from nats.aio.msg import Msg

from switchboard.events import Envelope
from switchboard.events.catalog.delivery import Dispatched, DispatchFailed
from switchboard.events.catalog.outbound import SendEmail, SendSms, SyncAddressBook
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.limits import account_key
from switchboard.outbound.provider_accounts import provider_account
from switchboard.outbound.providers.base import ProviderError, timed_out
from switchboard.outbound.providers.sendpulse import (
    Address,
    Contact,
    Email,
    SendPulseAccount,
    SendPulseClient,
    Sms,
)
from switchboard.outbound.ratelimit import LimitKey, SharedLimiter
from switchboard.outbound.sender import Phase, SendPolicy, open_record, record_outcome
from switchboard.runtime.accounts import Account, AccountCache
from switchboard.runtime.breaker import Breakers
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError, decode_or_reject
from switchboard.runtime.delivery.provider_failures import (
    DeadLetter,
    PauseUntil,
    breaker_signal,
    decide,
)

PROVIDER = "sendpulse"
Command = SendEmail | SendSms | SyncAddressBook


def command_id(cmd: Command) -> str:
    return cmd.sync_id if isinstance(cmd, SyncAddressBook) else cmd.message_id


def _about(cmd: Command) -> dict[str, Any]:
    """What names the command in both of its outcome events."""
    return {
        "command": cmd.name,
        "id": command_id(cmd),
        "provider": PROVIDER,
        "account": cmd.account,
        "at": datetime.now(UTC),
    }


async def call(
    client: SendPulseClient, account: Account, cmd: Command
) -> tuple[str | None, dict[str, Any]]:
    """One SendPulse call for ``cmd``: (provider id, details)."""
    creds = SendPulseAccount.from_account(account)
    if isinstance(cmd, SendEmail):
        email = Email(
            sender=Address(cmd.sender.email, cmd.sender.name),
            to=[Address(a.email, a.name) for a in cmd.to],
            subject=cmd.subject_line,
            html=cmd.html,
            text=cmd.text,
            template_id=cmd.template_id,
            template_variables=cmd.template_variables,
        )
        sent = await client.send_email(creds, email)
        return sent.id or None, {}
    if isinstance(cmd, SendSms):
        sms = Sms(cmd.sender, list(cmd.phones), cmd.body, cmd.transliterate)
        result = await client.send_sms(creds, sms)
        detail = {"sends": result.sends} if result.sends is not None else {}
        return (str(result.campaign_id) if result.campaign_id else None), detail
    contacts = [Contact(c.email, c.variables) for c in cmd.contacts]
    await client.add_to_address_book(creds, cmd.address_book_id, contacts)
    return None, {"contacts": len(contacts)}


@dataclass
class ProviderCommands:
    bus: Bus
    accounts: AccountCache
    attempts: Attempts
    limiter: SharedLimiter
    breakers: Breakers
    client: SendPulseClient
    policy: SendPolicy
    consumer: str = "outbound-dispatch"
    provider: ClassVar[str] = PROVIDER

    async def handle(self, msg: Msg, phase: Phase) -> None:
        decoded = decode_or_reject(msg)
        cmd, env = decoded.model, decoded.envelope
        if not isinstance(cmd, SendEmail | SendSms | SyncAddressBook):
            raise PermanentError(f"{cmd.name} is not a SendPulse command")
        name = (cmd.name, command_id(cmd))
        record = await open_record(self, cmd, env, msg, name, recipient=cmd.name)
        if record is None:
            return
        account = provider_account(self.accounts, PROVIDER, cmd.account, env.workspace_id)
        if account is None:
            await self._fail(cmd, env, msg, record, f"no sendpulse account {cmd.account}",
                             "unknown_account", permanent=True)  # fmt: skip
            return
        breaker = self.breakers.get(PROVIDER, cmd.account)
        allowed, wait = breaker.allow()
        if not allowed:
            await msg.nak(delay=wait)
            return
        pause = f"{PROVIDER}.{cmd.account}"
        key = account_key(account, PROVIDER)
        slot = await self.limiter.wait(key, (), (pause,))
        phase.calling = True
        record = record.step("in_flight", attempts=record.attempts + 1)
        try:
            async with asyncio.timeout(self.policy.call_timeout + 1):
                provider_id, detail = await call(self.client, account, cmd)
        except (TimeoutError, ProviderError) as exc:
            err = exc if isinstance(exc, ProviderError) else timed_out()
            self.limiter.ended(key, slot, heard=err.heard)
            await self._on_error(cmd, env, msg, record, err, pause, key)
            return
        self.limiter.ended(key, slot)
        breaker.success()
        record = record.step("sent", provider_message_id=provider_id)
        sent = Dispatched(
            **_about(cmd), provider_id=provider_id, attempt=record.attempts, detail=detail
        )
        await record_outcome(self, record, sent, env, msg)
        await msg.ack()

    async def _on_error(
        self,
        cmd: Command,
        env: Envelope,
        msg: Msg,
        record: Attempt,
        err: ProviderError,
        pause: str,
        key: LimitKey,
    ) -> None:
        self.breakers.get(PROVIDER, cmd.account).hear(breaker_signal(err.failure), str(err))
        outcome = decide(err.as_failure(), record.attempts, self.policy.failures)
        if isinstance(outcome, DeadLetter):
            await self._fail(
                cmd, env, msg, record, outcome.reason, err.code, permanent=outcome.permanent
            )
            return
        if isinstance(outcome, PauseUntil):
            await self.limiter.pause(pause, outcome.delay_s, key)
        record = record.step("retrying", reason=outcome.reason, attempts=outcome.attempts)
        await self.attempts.put(record)
        await msg.nak(delay=outcome.delay_s)

    async def _fail(
        self,
        cmd: Command,
        env: Envelope,
        msg: Msg,
        record: Attempt,
        reason: str,
        code: str,
        *,
        permanent: bool,
    ) -> None:
        record = record.step(
            "failed", reason=f"{code}: {reason}", error_code=code, permanent=permanent
        )
        failed = DispatchFailed(
            **_about(cmd),
            reason=reason,
            error_code=code,
            permanent=permanent,
            attempts=record.attempts,
        )
        await record_outcome(self, record, failed, env, msg)
        await msg.ack()
