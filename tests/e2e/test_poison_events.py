"""Malformed events reach every consumer of the CRM and outbound services (resolver,
commands, projections, sender): each goes to the DLQ at its first delivery with a reason,
and the valid messages behind it are processed as if nothing happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from tests.support.conv import publish_all, received
from tests.support.outbound import register, telegram_shop, text_send
from tests.support.stack import service_env
from tests.support.telegram_sandbox import serve_telegram_sandbox

from switchboard.crm.app import create_app as crm_app
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel
from switchboard.outbound.app import create_app as outbound_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import DeadLetter, list_dead_letters
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

pytestmark = pytest.mark.e2e
TOKEN = "300000009:poison"


def _headers(ce_type: str, msg_id: str) -> dict[str, str]:
    return {
        "Nats-Msg-Id": msg_id,
        "ce-id": msg_id,
        "ce-type": ce_type,
        "ce-source": "test://poison",
        "ce-specversion": "1.0",
        "ce-time": "2026-11-21T07:00:00Z",
        "workspace-id": "demo",
    }


# (subject, ce-type or None for no CloudEvents headers, body)
POISON: list[tuple[str, str | None, bytes]] = [
    ("conv.message_received.v1.telegram.shop", "switchboard.conv.message_received.v1", b"{nope"),
    ("conv.message_received.v1.telegram.shop", "switchboard.conv.message_received.v1", b"[]"),
    ("conv.message_received.v1.telegram.shop", None, b'{"channel": "telegram"}'),
    ("conv.message_edited.v1.telegram.shop", "switchboard.conv.message_edited.v9", b"{}"),
    ("delivery.sent.v1.telegram.shop", "switchboard.delivery.sent.v1", b'{"message_id": 1}'),
    ("crm.contact_created.v1.c-poison", "switchboard.crm.contact_created.v1", b"\xff\xfe"),
    ("cmd.crm.change_lead_stage.v1.l-1", "switchboard.crm.change_lead_stage.v1", b'{"x": 1}'),
    ("cmd.outbound.send.v1.telegram.shop", "switchboard.outbound.send.v1", b'{"content": 5}'),
    ("cmd.outbound.send.v1.telegram.shop", "switchboard.nope", b"{}"),
]


@pytest.fixture
async def services(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    async with serve_telegram_sandbox((TOKEN, "poison_bot")) as (_, sandbox, stack):
        for key, value in service_env(nats_url, postgres_url).items():
            monkeypatch.setenv(key, value)
        bus = await Bus.connect(nats_url, name="setup")
        await register(bus, telegram_shop(sandbox, TOKEN))
        await bus.close()
        crm = await stack.enter_async_context(serve_app(crm_app(load_settings(CrmSettings))))
        await stack.enter_async_context(serve_app(outbound_app(load_settings(OutboundSettings))))
        yield crm


async def _letters(nats_url: str) -> list[DeadLetter]:
    bus = await Bus.connect(nats_url, name="dlq-reader")
    try:
        return await list_dead_letters(bus, limit=1000)
    finally:
        await bus.close()


async def test_poison_goes_to_the_dlq_at_once_and_valid_messages_flow_on(
    services: str, nats_url: str, postgres_url: str
) -> None:
    bus = await Bus.connect(nats_url, name="poisoner")
    try:
        for i, (subject, ce_type, body) in enumerate(POISON):
            headers = _headers(ce_type, f"poison-{i}") if ce_type else {"Nats-Msg-Id": f"p-{i}"}
            await bus.publish_raw(subject, body, headers)
        await bus.publish(
            text_send("after-poison", "4242", "still sending"),
            workspace_id="demo",
        )
    finally:
        await bus.close()
    await publish_all(nats_url, [received(Channel.TELEGRAM, "shop", "777", "still here", 1)])

    async def crm_has_the_valid_message() -> Any:
        async with httpx.AsyncClient(timeout=5) as http:
            r = await http.get(
                f"{services}/v1/conversations", headers={"Authorization": "Bearer test-key-000001"}
            )
        return r.status_code == 200 and r.json()["items"]

    await eventually(crm_has_the_valid_message, timeout=30, message="valid message projected")

    async def sent() -> bool:
        conn = await asyncpg.connect(postgres_url)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM crm.deliveries WHERE message_id = 'after-poison'"
                    " AND status = 'sent'"
                )
            )
        finally:
            await conn.close()

    await eventually(sent, timeout=30, message="the valid send went out and was projected")

    # Every consumer that saw a poison message dead-lettered it on its first delivery.
    consumers_of = {
        "conv.message_received": {"crm-resolver", "conversations"},
        "conv.message_edited": {"conversations"},
        "delivery.sent": {"deliveries"},
        "crm.contact_created": {"crm"},
        "cmd.crm.change_lead_stage": {"crm-commands"},
        "cmd.outbound.send": {"outbound-sends"},
    }

    async def all_dead_lettered() -> list[DeadLetter] | None:
        letters = await _letters(nats_url)
        for subject, _, _ in POISON:
            prefix = next(p for p in consumers_of if subject.startswith(p + "."))
            seen = {d.consumer for d in letters if d.subject == subject}
            if not consumers_of[prefix] <= seen:
                return None
        return letters

    letters = await eventually(all_dead_lettered, timeout=30, message="every poison in the DLQ")
    assert all(d.reason for d in letters), "each entry says why"
    assert {d.deliveries for d in letters} == {1}, "no retries for what can never decode"


async def test_a_message_with_nul_characters_reaches_the_crm_not_the_dlq(
    services: str, nats_url: str
) -> None:
    # Found by probing: Postgres text cannot hold U+0000, so every projection dead-lettered
    # such a message and the customer's words were lost from the CRM.
    await publish_all(
        nats_url,
        [received(Channel.GENERIC, "shop", "u-1", "hello\x00world", 1, name="Ni\x00na")],
    )

    async def messages() -> Any:
        async with httpx.AsyncClient(timeout=5) as http:
            auth = {"Authorization": "Bearer test-key-000001"}
            convs = (await http.get(f"{services}/v1/conversations", headers=auth)).json()
            if not convs["items"]:
                return None
            cid = convs["items"][0]["id"]
            r = await http.get(f"{services}/v1/conversations/{cid}/messages", headers=auth)
            return r.json()["items"] or None

    items = await eventually(messages, timeout=30, message="the message is in the CRM")
    assert items[0]["text"] == "hello\ufffdworld"
    assert await _letters(nats_url) == []
