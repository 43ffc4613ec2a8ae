"""The send pipeline: one command from OUTBOUND to a provider call and delivery events.

Order of things for one command: skip it if its record says it is done; fail it if it
expired; queue it (first time only); wait for the circuit breaker; reserve a shared rate
slot; record the attempt as in flight; call the provider once; record and announce the
outcome. Retries are redeliveries with a delay (backoff with jitter), so a retry survives a
crash of this instance like everything else.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nats.aio.msg import Msg
from prometheus_client import Counter

from switchboard.events import Envelope, decode_message
from switchboard.events.catalog.common import Chat
from switchboard.events.catalog.conv import MessageSent
from switchboard.events.catalog.delivery import (
    DeliveryFailed,
    DeliveryQueued,
    DeliveryRetrying,
    DeliverySent,
)
from switchboard.events.catalog.outbound import OutMedia, OutMediaGroup, OutText, SendMessage
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.breaker import Breakers
from switchboard.outbound.limits import limit_keys, pause_name
from switchboard.outbound.providers.base import Failure, MessagingClient, ProviderError, Scope
from switchboard.outbound.ratelimit import LimitKey, SharedLimiter
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError
from switchboard.runtime.dlq import dead_letter
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
LATE_SLOTS = Counter(
    "switchboard_outbound_late_slots_total", "Slots given up because the send woke too late"
)


@dataclass
class SendPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    call_timeout: float = 15.0
    # A send that wakes this late after its slot (a busy process, a GC pause) gives the slot
    # up and takes a new one: late sends bunched with on-time ones would break the
    # provider's sliding windows even though every slot was correctly spaced.
    max_lateness: float = 0.025

    def backoff(self, attempt: int) -> float:
        """Exponential with full jitter (AWS style), capped."""
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, cap)  # noqa: S311 (jitter, not a secret)


@dataclass
class Sender:
    bus: Bus
    accounts: AccountCache
    attempts: Attempts
    limiter: SharedLimiter
    breakers: Breakers
    clients: dict[str, MessagingClient]
    policy: SendPolicy

    async def handle(self, msg: Msg) -> bool:
        """Process one command; it is always settled here (ack, or nak with a delay)."""
        try:
            decoded = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        cmd, env = decoded.model, decoded.envelope
        if not isinstance(cmd, SendMessage):
            raise PermanentError(f"{cmd.name} is not a send command")
        await self.process(cmd, env, msg)
        return True

    async def process(self, cmd: SendMessage, env: Envelope, msg: Msg) -> None:
        record = await self.attempts.get(cmd.message_id)
        if record is not None and record.done:
            await msg.ack()  # completed before (a redelivery, or the same id sent twice)
            return
        now = datetime.now(UTC)
        if record is None:
            record = Attempt(
                message_id=cmd.message_id,
                workspace_id=env.workspace_id,
                channel=cmd.channel.value,
                account=cmd.account,
                recipient=cmd.recipient,
            ).step("queued")
            await self.attempts.put(record)
            await self._announce(
                DeliveryQueued(
                    **self._base(cmd), priority=cmd.priority.value, campaign_id=cmd.campaign_id
                ),
                env,
            )
        if cmd.expires_at is not None and now >= cmd.expires_at:
            await self._fail(
                cmd,
                env,
                record,
                "expired before it could be sent",
                "expired",
                permanent=True,
                msg=msg,
            )
            return
        if cmd.not_before is not None and now < cmd.not_before:
            await msg.nak(delay=(cmd.not_before - now).total_seconds())
            return
        account = self.accounts.get(cmd.channel, cmd.account)
        client = self.clients.get(cmd.channel.value)
        if account is None or client is None:
            what = "account" if account is None else "channel"
            await self._fail(
                cmd,
                env,
                record,
                f"unknown {what} {cmd.channel.value}/{cmd.account}",
                "unknown_account",
                permanent=True,
                msg=msg,
            )
            return
        breaker = self.breakers.get(cmd.channel.value, cmd.account)
        allowed, wait = breaker.allow()
        if not allowed:
            await msg.nak(delay=wait)  # the provider is down for this account: hold on
            return
        keys, pauses = limit_keys(account, cmd)
        await self._wait_slot(keys, pauses, msg)
        # A 429 seen by another instance while we waited for our slot: do not send into it.
        until = await self.limiter.paused_until(pauses[0])
        if until > self.limiter.clock():
            breaker.release()
            await msg.nak(delay=until - self.limiter.clock())
            return
        record = record.step("in_flight", attempts=record.attempts + 1)
        await self.attempts.put(record)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.policy.call_timeout + 1):
                sent = await client.send(account, cmd)
        except TimeoutError:
            breaker.failure("timeout")
            await self._retry(cmd, env, record, "provider call timed out", "timeout", msg)
            return
        except ProviderError as err:
            await self._on_error(cmd, env, record, err, msg, account_scope=err.scope)
            if err.failure is Failure.RETRYABLE:
                breaker.failure(str(err))
            elif err.failure is Failure.RATE_LIMITED:
                breaker.release()
            else:
                breaker.success()  # the provider answered; it is the request that is bad
            return
        breaker.success()
        latency = (time.perf_counter() - started) * 1000
        record = record.step("sent", provider_message_id=sent.provider_message_id)
        await self.attempts.put(record)
        await self._announce(
            DeliverySent(
                **self._base(cmd),
                attempt=record.attempts,
                provider_message_id=sent.provider_message_id,
                latency_ms=round(latency, 1),
            ),
            env,
        )
        await self._announce(
            MessageSent(
                channel=cmd.channel,
                account=cmd.account,
                chat=Chat(id=cmd.recipient),
                message_id=cmd.message_id,
                provider_message_id=sent.provider_message_id,
                text=_text(cmd),
                content_kind=cmd.content.kind,
                sent_at=datetime.now(UTC),
                campaign_id=cmd.campaign_id,
            ),
            env,
        )
        await msg.ack()

    async def _wait_slot(self, keys: list[LimitKey], pauses: list[str], msg: Msg) -> None:
        while True:
            at, retry = await self.limiter.reserve(keys[0], keys[1:], pauses)
            target = at if at is not None else retry
            # Long waits (a bot paused by a 429): keep telling JetStream we are on it.
            while (delay := target - self.limiter.clock()) > 0:
                await asyncio.sleep(min(delay, 10.0))
                if delay > 10.0:
                    await msg.in_progress()
            if at is not None and self.limiter.clock() - at <= self.policy.max_lateness:
                return
            if at is not None:
                LATE_SLOTS.inc()

    async def _on_error(
        self,
        cmd: SendMessage,
        env: Envelope,
        record: Attempt,
        err: ProviderError,
        msg: Msg,
        account_scope: Scope,
    ) -> None:
        if err.failure is Failure.PERMANENT:
            await self._fail(cmd, env, record, err.reason, err.code, permanent=True, msg=msg)
            return
        if err.failure is Failure.RATE_LIMITED:
            account = self.accounts.get(cmd.channel, cmd.account)
            assert account is not None
            wait = err.retry_after or 1.0
            name = pause_name(account, cmd.recipient, account_scope is Scope.RECIPIENT)
            await self.limiter.pause(name, wait)
            log.warning(
                "rate limited by provider; paused for every instance", pause=name, seconds=wait
            )
            # Not counted as a failed attempt: the message goes again once the pause ends.
            record = record.step("retrying", reason=str(err), attempts=record.attempts - 1)
            await self.attempts.put(record)
            await self._announce(
                DeliveryRetrying(
                    **self._base(cmd),
                    attempt=max(record.attempts, 1),
                    reason=err.reason,
                    error_code=err.code,
                    retry_at=datetime.now(UTC) + timedelta(seconds=wait),
                ),
                env,
            )
            await msg.nak(delay=wait)
            return
        await self._retry(cmd, env, record, err.reason, err.code, msg)

    async def _retry(
        self, cmd: SendMessage, env: Envelope, record: Attempt, reason: str, code: str, msg: Msg
    ) -> None:
        if record.attempts >= self.policy.max_attempts:
            await self._fail(
                cmd,
                env,
                record,
                f"gave up after {record.attempts} attempts: {reason}",
                code,
                permanent=False,
                msg=msg,
            )
            return
        delay = self.policy.backoff(record.attempts)
        record = record.step("retrying", reason=f"{code}: {reason}")
        await self.attempts.put(record)
        await self._announce(
            DeliveryRetrying(
                **self._base(cmd),
                attempt=record.attempts,
                reason=reason,
                error_code=code,
                retry_at=datetime.now(UTC) + timedelta(seconds=delay),
            ),
            env,
        )
        await msg.nak(delay=delay)

    async def _fail(
        self,
        cmd: SendMessage,
        env: Envelope,
        record: Attempt,
        reason: str,
        code: str,
        *,
        permanent: bool,
        msg: Msg,
    ) -> None:
        record = record.step("failed", reason=f"{code}: {reason}")
        await self.attempts.put(record)
        await self._announce(
            DeliveryFailed(
                **self._base(cmd),
                reason=reason,
                error_code=code,
                permanent=permanent,
                attempts=record.attempts,
            ),
            env,
        )
        meta = msg.metadata
        await dead_letter(
            self.bus,
            subject=msg.subject,
            headers=dict(msg.headers or {}),
            body=msg.data,
            reason=f"{code}: {reason}",
            stream=meta.stream,
            sequence=meta.sequence.stream,
            consumer="outbound-sends",
            deliveries=meta.num_delivered,
        )
        await msg.ack()

    async def _announce(self, event: object, env: Envelope) -> None:
        await self.bus.publish(event, cause=env)  # type: ignore[arg-type]

    @staticmethod
    def _base(cmd: SendMessage) -> dict[str, object]:
        return {
            "message_id": cmd.message_id,
            "channel": cmd.channel,
            "account": cmd.account,
            "recipient": cmd.recipient,
            "at": datetime.now(UTC),
        }


def _text(cmd: SendMessage) -> str | None:
    content = cmd.content
    if isinstance(content, OutText):
        return content.text
    if isinstance(content, OutMedia):
        return content.caption
    if isinstance(content, OutMediaGroup):
        return next((i.caption for i in content.items if i.caption), None)
    return None
