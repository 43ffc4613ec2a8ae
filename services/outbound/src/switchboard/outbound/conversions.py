"""Conversions to Meta's Conversions API (``outbound.conversion``, ``outbound-conversions``
durable): idempotent by ``conversion_id`` (an attempt record like a send's), hashed by the
CAPI client exactly as Meta's SDK does, and batched: conversions pending for the same pixel
(and test code) within ``linger`` seconds go as one request of up to 1000 events.

Outcomes are ``delivery.conversion_sent`` / ``delivery.conversion_failed`` (the chat
delivery events name a chat channel, which a pixel is not). One invalid event makes Meta
refuse the whole request, so a batch refused as a bad request is retried one event per
request, and only the bad ones fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from nats.aio.msg import Msg

from switchboard.events import Envelope
from switchboard.events.catalog.delivery import ConversionFailed, ConversionSent
from switchboard.events.catalog.outbound import SendConversion
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.limits import account_key
from switchboard.outbound.provider_accounts import provider_account
from switchboard.outbound.providers.base import Failure, ProviderError
from switchboard.outbound.providers.metacapi import (
    GRAPH_API,
    MAX_BATCH,
    CapiClient,
    CapiEvent,
    CapiResult,
)
from switchboard.outbound.ratelimit import SharedLimiter
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
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
PROVIDER = "metacapi"


@dataclass(eq=False)
class _Item:
    cmd: SendConversion
    env: Envelope
    msg: Msg
    record: Attempt
    dropped: tuple[str, ...] = ()
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def capi_event(cmd: SendConversion) -> CapiEvent:
    """The command as a CAPI event, user_data still plain (the client hashes it)."""
    user = cmd.user_data.model_dump(mode="json", exclude_none=True)
    user = {k: list(v) if isinstance(v, tuple) else v for k, v in user.items() if v not in ((), [])}
    custom: dict[str, Any] = dict(cmd.custom_data)
    if cmd.value is not None:
        custom.update(value=cmd.value, currency=cmd.currency)
    return CapiEvent(
        event_name=cmd.event_name,
        event_time=int(cmd.event_time.timestamp()),
        action_source=cmd.action_source,
        user_data=user,
        event_id=cmd.event_id,
        event_source_url=cmd.event_source_url,
        custom_data=custom or None,
        # business_messaging events name their channel; ctwa_clid rides in user_data plain
        extra={"messaging_channel": cmd.messaging_channel} if cmd.messaging_channel else {},
    )


def _about(cmd: SendConversion) -> dict[str, Any]:
    """What names the conversion in both of its outcome events."""
    return {
        "conversion_id": cmd.conversion_id,
        "account": cmd.account,
        "event_name": cmd.event_name,
        "event_id": cmd.event_id,
        "lead_id": cmd.lead_id,
        "at": datetime.now(UTC),
    }


@dataclass
class ConversionSender:
    bus: Bus
    accounts: AccountCache
    attempts: Attempts
    limiter: SharedLimiter
    breakers: Breakers
    http: httpx.AsyncClient
    policy: SendPolicy
    linger: float = 0.2
    consumer: str = "outbound-conversions"
    provider: ClassVar[str] = PROVIDER
    _queues: dict[tuple[str, str | None], list[_Item]] = field(default_factory=dict)
    _flushers: dict[tuple[str, str | None], asyncio.Task[None]] = field(default_factory=dict)
    _clients: dict[str, CapiClient] = field(default_factory=dict)

    async def handle(self, msg: Msg, phase: Phase) -> None:
        decoded = decode_or_reject(msg)
        cmd, env = decoded.model, decoded.envelope
        if not isinstance(cmd, SendConversion):
            raise PermanentError(f"{cmd.name} is not a conversion command")
        name = ("conversion", cmd.conversion_id)
        record = await open_record(self, cmd, env, msg, name, recipient=cmd.event_name)
        if record is None:
            return
        item = _Item(cmd, env, msg, record)
        key = (cmd.account, cmd.test_event_code)
        queue = self._queues.setdefault(key, [])
        queue.append(item)
        task = self._flushers.get(key)
        if task is None or task.done():
            self._flushers[key] = asyncio.get_running_loop().create_task(self._flush(key))
        phase.calling = True  # batched with others: let it finish at a stop
        await item.done

    async def _flush(self, key: tuple[str, str | None]) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.sleep(self.linger)  # let the conversions pending for this pixel gather
        queue = self._queues.get(key, [])
        while queue:
            items = queue[:MAX_BATCH]
            del queue[:MAX_BATCH]
            try:
                await self._send(key[0], key[1], items)
            except Exception as exc:
                log.exception("conversion batch failed", pixel=key[0])
                for item in items:
                    if not item.done.done():
                        item.done.set_exception(exc)

    def _client(self, base_url: str) -> CapiClient:
        if base_url not in self._clients:
            self._clients[base_url] = CapiClient(self.http, base_url=base_url)
        return self._clients[base_url]

    async def _send(self, pixel: str, test_code: str | None, items: list[_Item]) -> None:
        # A batch may mix workspaces naming the same pixel: each item may use it only when
        # its own workspace owns it.
        usable: list[_Item] = []
        account = None
        for item in items:
            found = provider_account(self.accounts, PROVIDER, pixel, item.env.workspace_id)
            if found is None or not found.secrets.get("access_token"):
                await self._fail(item, f"no metacapi account {pixel}", "unknown_account", True)
            else:
                account, usable = found, [*usable, item]
        if account is None:
            return
        items = usable
        breaker = self.breakers.get(PROVIDER, pixel)
        allowed, wait = breaker.allow()
        if not allowed:
            for item in items:
                await self._settle(item, item.msg.nak(delay=wait))
            return
        client = self._client(str(account.settings.get("api_base_url") or GRAPH_API))
        result = CapiResult()
        prepared = client.prepare([capi_event(i.cmd) for i in items], result)
        stale = {p.index for p in result.skipped}
        for problem in result.invalid:
            items[problem.index].dropped += (problem.field,)
        live = [item for i, item in enumerate(items) if i not in stale]
        for i in sorted(stale):
            await self._fail(items[i], "event_time is older than 7 days", "metacapi_stale", True)
        if live:
            await self._post(account, test_code, live, prepared)

    async def _post(
        self,
        account: Account,
        test_code: str | None,
        items: list[_Item],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        pixel, secrets, settings = account.id, account.secrets, account.settings
        breaker = self.breakers.get(PROVIDER, pixel)
        key = account_key(account, PROVIDER)
        slot = await self.limiter.wait(key, (), (f"{PROVIDER}.{pixel}",))
        client = self._client(str(settings.get("api_base_url") or GRAPH_API))
        for item in items:
            item.record = item.record.step(
                "in_flight", attempts=item.record.attempts + 1, at=datetime.now(UTC)
            )
        try:
            answer = await client.send_batch(
                pixel,
                secrets["access_token"],
                payloads,
                test_code,
                app_secret=secrets.get("app_secret"),
                graph_version=settings.get("graph_version"),
            )
        except ProviderError as err:
            self.limiter.ended(key, slot, heard=err.heard)
            await self._on_error(err, account, test_code, items, payloads)
            return
        self.limiter.ended(key, slot)
        breaker.success()
        trace = str(answer.get("fbtrace_id")) if answer.get("fbtrace_id") else None
        await asyncio.gather(*(self._sent(item, trace, len(items)) for item in items))

    async def _on_error(
        self,
        err: ProviderError,
        account: Account,
        test_code: str | None,
        items: list[_Item],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        pixel = account.id
        self.breakers.get(PROVIDER, pixel).hear(breaker_signal(err.failure), str(err))
        if err.failure is Failure.PERMANENT and len(items) > 1:
            # One bad event sinks the batch: send each alone, so only the bad ones fail.
            for item, payload in zip(items, payloads, strict=True):
                item.record = item.record.step("retrying", reason=str(err))
                await self._post(account, test_code, [item], [payload])
            return
        paused = False
        for item in items:
            outcome = decide(err.as_failure(), item.record.attempts, self.policy.failures)
            if isinstance(outcome, DeadLetter):
                await self._fail(item, outcome.reason, err.code, outcome.permanent)
                continue
            if isinstance(outcome, PauseUntil) and not paused:
                # The pixel's limit key too: no slot is reserved inside the pause.
                key = account_key(account, PROVIDER)
                await self.limiter.pause(f"{PROVIDER}.{pixel}", outcome.delay_s, key)
                paused = True
            item.record = item.record.step(
                "retrying", reason=outcome.reason, attempts=outcome.attempts
            )
            await self.attempts.put(item.record)
            await self._settle(item, item.msg.nak(delay=outcome.delay_s))

    async def _sent(self, item: _Item, trace: str | None, size: int) -> None:
        item.record = item.record.step("sent", provider_message_id=trace or item.cmd.event_id)
        sent = ConversionSent(
            **_about(item.cmd),
            fbtrace_id=trace,
            batch_size=size,
            attempt=max(1, item.record.attempts),
            dropped_fields=item.dropped,
        )
        item.record = await record_outcome(self, item.record, sent, item.env, item.msg)
        await self._settle(item, item.msg.ack())

    async def _fail(self, item: _Item, reason: str, code: str, permanent: bool) -> None:
        item.record = item.record.step(
            "failed", reason=f"{code}: {reason}", error_code=code, permanent=permanent
        )
        failed = ConversionFailed(
            **_about(item.cmd),
            reason=reason,
            error_code=code,
            permanent=permanent,
            attempts=item.record.attempts,
        )
        item.record = await record_outcome(self, item.record, failed, item.env, item.msg)
        await self._settle(item, item.msg.ack())

    @staticmethod
    async def _settle(item: _Item, settling: Any) -> None:
        try:
            await settling
        finally:
            if not item.done.done():
                item.done.set_result(None)
