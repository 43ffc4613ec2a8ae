"""The provider commands that are not chat messages, over real NATS against the sandbox:
Meta CAPI conversions (batched per pixel, hashed as Meta's SDK does, idempotent by
conversion_id, a bad event failing alone) and SendPulse email, SMS and address-book sync."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from tests.support.outbound import capi_pixel, register
from tests.support.stack import service_env
from tests.support.streams import stream_messages

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    SendConversion,
    SendEmail,
    SendSms,
    SyncAddressBook,
)
from switchboard.outbound.app import create_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import Account
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = pytest.mark.e2e
PIXEL, CAPI_TOKEN = "1234567890", "EAAtest-capi"
SP_ID, SP_SECRET, BOOK = "sp-client", "sp-secret", 77


@dataclass
class Env:
    box: Sandbox
    nats_url: str

    async def publish(self, *commands: Any, **envelope: Any) -> None:
        bus = await Bus.connect(self.nats_url, name="producer")
        try:
            for cmd in commands:
                await bus.publish(cmd, **{"workspace_id": "demo", **envelope})
        finally:
            await bus.close()

    async def events(self, *names: str) -> list[Any]:
        found = [d.model for d in await stream_messages(self.nats_url, "DELIVERY")]
        return [e for e in found if e.name in names]

    async def dead_letters(self) -> list[str]:
        """The reasons of the DLQ's entries."""
        bus = await Bus.connect(self.nats_url, name="dlq-reader")
        try:
            return [d.reason for d in await list_dead_letters(bus, 100)]
        finally:
            await bus.close()


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.metacapi.add_pixel(PIXEL, CAPI_TOKEN)
    box.sendpulse.add_address_book(box.sendpulse.add_account(SP_ID, SP_SECRET), "VIP", BOOK)
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        for key, value in service_env(nats_url).items():
            monkeypatch.setenv(key, value)
        bus = await Bus.connect(nats_url, name="setup")
        await register(
            bus,
            capi_pixel(sandbox, PIXEL, CAPI_TOKEN),
            Account(
                channel=Channel.GENERIC,
                id="sp-main",
                workspace_id="demo",
                settings={"provider": "sendpulse", "api_base_url": f"{sandbox}/sendpulse"},
                secrets={"client_id": SP_ID, "client_secret": SP_SECRET},
            ),
        )
        await bus.close()
        await stack.enter_async_context(serve_app(create_app(load_settings(OutboundSettings))))
        yield Env(box, nats_url)


def conversion(n: int, **changes: Any) -> SendConversion:
    data: dict[str, Any] = {
        "conversion_id": f"lead:{n}/won",
        "account": PIXEL,
        "event_name": "Purchase",
        "event_time": datetime.now(UTC) - timedelta(minutes=5),
        "event_id": f"crm:lead:{n}:won",
        "user_data": {"em": [f" Buyer{n}@Example.COM "], "ph": ["+1 (650) 555-1212"]},
        "value": 10.0 + n,
        "currency": "USD",
        "lead_id": str(n),
    }
    data.update(changes)
    return SendConversion.model_validate(data)


async def test_conversions_are_batched_hashed_once_each_and_a_bad_one_fails_alone(
    env: Env,
) -> None:
    firsts = [conversion(n) for n in range(12)]
    await env.publish(*firsts)

    async def first_twelve() -> list[Any] | None:
        sent = await env.events("delivery.conversion_sent")
        return sent if len(sent) == 12 else None

    sent = await eventually(first_twelve, timeout=30, message="12 conversions sent")
    requests = env.box.recorder.requests(provider="metacapi", ok=True)
    assert len(requests) == 1  # one request carried the twelve
    assert {e.batch_size for e in sent} == {12}
    received = env.box.metacapi.events(PIXEL)
    by_id = {e.event_id: e.event for e in received}
    assert set(by_id) == {f"crm:lead:{n}:won" for n in range(12)}
    user = by_id["crm:lead:3:won"]["user_data"]
    assert user["em"] == [hashlib.sha256(b"buyer3@example.com").hexdigest()]
    assert user["ph"] == [hashlib.sha256(b"16505551212").hexdigest()]
    assert by_id["crm:lead:3:won"]["custom_data"] == {"value": 13.0, "currency": "USD"}

    # the same conversion again (a new message id, past JetStream's dedup): not sent twice;
    # another body under its id is refused to the DLQ with the reason, not sent either
    await env.publish(firsts[3], id="another-envelope")
    await env.publish(conversion(3, value=99.0), id="a-changed-one")
    # three good ones and one Meta refuses: the batch is refused, then each goes alone
    bad = conversion(99, action_source="website")  # website events need a source URL
    await env.publish(conversion(20), conversion(21), bad, conversion(22))

    async def settled() -> tuple[list[Any], list[Any]] | None:
        ok = await env.events("delivery.conversion_sent")
        failed = await env.events("delivery.conversion_failed")
        return (ok, failed) if len(ok) == 15 and failed else None

    found = await eventually(settled, timeout=30, message="the second round settled")
    assert found is not None
    ok, failed = found
    assert [f.conversion_id for f in failed] == ["lead:99/won"]
    assert failed[0].permanent
    assert "event_source_url" in failed[0].reason
    assert {e.conversion_id for e in ok} == {f"lead:{n}/won" for n in (*range(12), 20, 21, 22)}
    assert env.box.metacapi.counts(PIXEL).received == 15  # lead 3 went once
    bus = await Bus.connect(env.nats_url, name="dlq-reader")
    try:
        dead = sorted(d.reason for d in await list_dead_letters(bus, 10))
    finally:
        await bus.close()
    assert len(dead) == 2, dead
    assert dead[0].startswith("idempotency_conflict: conversion 'lead:3/won'"), dead


async def test_sendpulse_email_sms_and_address_book_are_commands(env: Env) -> None:
    await env.publish(
        SendEmail.model_validate(
            {
                "message_id": "order-77",
                "account": "sp-main",
                "sender": {"email": "shop@example.com", "name": "Shop"},
                "to": [{"email": "jane@example.com", "name": "Jane"}],
                "subject_line": "Your order",
                "html": "<p>Thanks!</p>",
            }
        ),
        SendSms.model_validate(
            {
                "message_id": "otp-1",
                "account": "sp-main",
                "sender": "Shop",
                "phones": ["+380501234567"],
                "body": "Your code is 4242",
            }
        ),
        SyncAddressBook.model_validate(
            {
                "sync_id": "vip-1",
                "account": "sp-main",
                "address_book_id": str(BOOK),
                "contacts": [{"email": "jane@example.com", "variables": {"name": "Jane"}}],
            }
        ),
        SendSms.model_validate(
            {
                "message_id": "otp-2",
                "account": "nobody",
                "sender": "Shop",
                "phones": ["+380501234567"],
                "body": "lost",
            }
        ),
    )

    async def all_four() -> list[Any] | None:
        found = await env.events("delivery.dispatched", "delivery.dispatch_failed")
        return found if len(found) == 4 else None

    outcomes = await eventually(all_four, timeout=30, message="four outcomes")
    assert outcomes is not None
    done = {(e.name, e.command, e.id) for e in outcomes}
    assert done == {
        ("delivery.dispatched", "outbound.email", "order-77"),
        ("delivery.dispatched", "outbound.sms", "otp-1"),
        ("delivery.dispatched", "outbound.address_book_sync", "vip-1"),
        ("delivery.dispatch_failed", "outbound.sms", "otp-2"),
    }
    failed = next(e for e in outcomes if e.name == "delivery.dispatch_failed")
    assert (failed.error_code, failed.permanent) == ("unknown_account", True)
    state = env.box.sendpulse.state
    assert [e.subject for e in state.emails] == ["Your order"]
    assert [s.body for s in state.sms] == ["Your code is 4242"]
    assert [c["email"] for c in env.box.sendpulse.contacts(BOOK)] == ["jane@example.com"]

    # another body under a taken id: refused to the DLQ with the reason, nothing sent
    changed = SendSms.model_validate(
        {"message_id": "otp-1", "account": "sp-main", "sender": "Shop",
         "phones": ["+380501234567"], "body": "Your code is 9999"}
    )  # fmt: skip
    await env.publish(changed, id="otp-1-changed")

    async def refused() -> list[str] | None:
        found = [r for r in await env.dead_letters() if r.startswith("idempotency_conflict")]
        return found or None

    assert "outbound.sms 'otp-1'" in (await eventually(refused, timeout=30))[0]
    assert [s.body for s in state.sms] == ["Your code is 4242"]


async def test_another_workspaces_provider_accounts_are_unknown_and_nothing_is_sent(
    env: Env,
) -> None:
    # Workspace "other" names demo's SendPulse account and Meta pixel: both are unknown to
    # it, the outcome says so, and neither provider is called.
    await env.publish(
        SendSms.model_validate(
            {
                "message_id": "otp-9",
                "account": "sp-main",
                "sender": "Shop",
                "phones": ["+380501234567"],
                "body": "not yours",
            }
        ),
        conversion(9),
        workspace_id="other",
    )

    async def both() -> list[Any] | None:
        found = await env.events("delivery.dispatch_failed", "delivery.conversion_failed")
        return found if len(found) == 2 else None

    outcomes = await eventually(both, timeout=30, message="two refusals")
    assert outcomes is not None
    assert {e.error_code for e in outcomes} == {"unknown_account"}
    assert env.box.sendpulse.state.sms == []
    assert env.box.recorder.requests(provider="metacapi") == []


async def test_outcomes_lost_to_an_outage_are_announced_when_redelivered(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command's record and its outcome event are written side by side. When the event's
    publish fails (an outage) after the record was stored, the redelivery finds the record
    done: it announces the outcome again (and dead-letters a failure), sending nothing
    twice. (It acked in silence: the email went out and nobody heard of it.)"""
    real, lost = Bus.publish, []

    async def outage_once(self: Bus, model: Any, **kw: Any) -> Any:
        if model.name in ("delivery.dispatched", "delivery.conversion_failed") and (
            model.name not in lost
        ):
            lost.append(model.name)
            raise NatsTimeoutError
        return await real(self, model, **kw)

    monkeypatch.setattr(Bus, "publish", outage_once)
    email = SendEmail.model_validate(
        {"message_id": "order-lost", "account": "sp-main",
         "sender": {"email": "shop@example.com", "name": "Shop"},
         "to": [{"email": "jo@example.com", "name": "Jo"}], "subject_line": "Lost?",
         "html": "<p>Hi</p>"}
    )  # fmt: skip
    stale = conversion(50, event_time=datetime.now(UTC) - timedelta(days=8))
    await env.publish(email, stale)

    async def both() -> list[Any] | None:
        found = await env.events("delivery.dispatched", "delivery.conversion_failed")
        return found if len(found) == 2 else None

    outcomes = await eventually(both, timeout=30, message="both outcomes announced")
    assert sorted(lost) == ["delivery.conversion_failed", "delivery.dispatched"]
    assert {(e.name, getattr(e, "id", None) or e.conversion_id) for e in outcomes} == {
        ("delivery.dispatched", "order-lost"),
        ("delivery.conversion_failed", "lead:50/won"),
    }
    assert [e.subject for e in env.box.sendpulse.state.emails] == ["Lost?"]  # sent once

    async def dead_lettered() -> list[str] | None:
        found = [r for r in await env.dead_letters() if r.startswith("metacapi_stale")]
        return found or None

    assert len(await eventually(dead_lettered, timeout=30, message="the stale one")) == 1
