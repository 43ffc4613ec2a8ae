"""Erasure over real NATS and Postgres, on every channel: after ``erase`` no CRM read model
(API or table) holds the person's identifiers, name, texts in either direction or
recipients, also for what arrives after the erasure, and a rebuild equals the live tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from tests.support.conv import T0, publish_all, received, sent
from tests.support.crm import AUTH, Crm, running_crm
from tests.support.db import table_checksum

from switchboard.crm.rebuild import rebuild
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import DeliveryReceipt, DeliverySent
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually

pytestmark = pytest.mark.e2e

# The person on each channel, by the id the provider gives (a phone number on WhatsApp).
PEOPLE = {
    Channel.TELEGRAM: "7770001",
    Channel.WHATSAPP: "4917612345678",
    Channel.VIBER: "vb-zoe-id==",
    Channel.GENERIC: "gen-zoe-id",
    Channel.MTPROTO: "8880002",
}
# What must not be readable after the erasure, besides the ids above.
SECRETS = ("Zoe Quux", "secret-in", "secret-out")


@pytest.fixture
async def crm(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Crm]:
    async with running_crm(nats_url, postgres_url, monkeypatch) as crm:
        yield crm


def _exchange(channel: Channel, who: str, n: int) -> list[object]:
    """A message from the person, our reply, its delivery and its receipt."""
    account = f"acct-{channel.value}"
    out_id, provider_id = f"m-{channel.value}-{n}", f"p-{channel.value}-{n}"
    phone = who if channel is Channel.WHATSAPP else None
    return [
        received(channel, account, who, f"secret-in {n}", n, phone=phone, name="Zoe Quux"),
        sent(channel, account, who, out_id, provider_id, f"secret-out {n}", n + 1),
        DeliverySent(
            message_id=out_id,
            channel=channel,
            account=account,
            recipient=who,
            at=T0 + timedelta(seconds=n + 1),
            provider_message_id=provider_id,
        ),
        DeliveryReceipt(
            channel=channel,
            account=account,
            recipient=who,
            status="delivered",
            provider_message_id=provider_id,
            at=T0 + timedelta(seconds=n + 2),
        ),
    ]


async def _caught_up(nats_url: str, postgres_url: str) -> bool:
    bus = await Bus.connect(nats_url, name="probe")
    conn = await asyncpg.connect(postgres_url)
    try:
        for projection, stream in (
            ("conversations", "CONV"),
            ("crm", "CRM"),
            ("deliveries", "DELIVERY"),
        ):
            last = (await bus.js.stream_info(stream)).state.last_seq
            seq = await conn.fetchval(
                "SELECT seq FROM crm.checkpoints WHERE projection = $1", projection
            )
            if (seq or 0) < last:
                return False
        return True
    finally:
        await conn.close()
        await bus.close()


async def _readable(postgres_url: str, schema: str) -> list[str]:
    """Every (table, needle) where a row of ``schema`` still shows the person."""
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema
            )
        ]
        found = []
        for table in tables:
            for needle in (*PEOPLE.values(), *SECRETS):
                n = await conn.fetchval(
                    f'SELECT count(*) FROM "{schema}"."{table}" t WHERE strpos(t::text, $1) > 0',
                    needle,
                )
                if n:
                    found.append(f"{table}: {needle}")
        return found
    finally:
        await conn.close()


async def test_erasure_leaves_nothing_of_the_person_on_any_channel(
    crm: Crm, nats_url: str, postgres_url: str
) -> None:
    await publish_all(nats_url, [ev for ch, who in PEOPLE.items() for ev in _exchange(ch, who, 1)])
    contacts = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == len(PEOPLE)))["items"]
    await eventually(lambda: _caught_up(nats_url, postgres_url), message="projected")
    assert await _readable(postgres_url, "crm")  # the probe sees the person before

    for contact in contacts:
        r = await crm.http.post(f"{crm.url}/v1/contacts/{contact['id']}/erase", headers=AUTH)
        assert r.status_code == 200, r.text
    # what arrives (or replays) after the erasure is blanked on sight
    await publish_all(nats_url, [ev for ch, who in PEOPLE.items() for ev in _exchange(ch, who, 10)])
    await eventually(lambda: _caught_up(nats_url, postgres_url), message="projected")

    assert await _readable(postgres_url, "crm") == []
    inbox = (await crm.get("/v1/conversations"))["items"]
    assert len(inbox) == len(PEOPLE)
    for conv in inbox:
        assert conv["chat_id"] not in PEOPLE.values()
        assert (conv["title"], conv["last_preview"]) == (None, None)
        msgs = (await crm.get(f"/v1/conversations/{conv['id']}/messages"))["items"]
        assert len(msgs) == 4  # counts and times stay
        for m in msgs:
            assert (m["text"], m["sender_id"], m["sender_name"]) == (None, None, None), m
            assert m["content"] == {"kind": "erased"}
        # receipts still find our replies: recipient and chat id are the same marker
        assert [m["status"] for m in msgs if m["direction"] == "out"] == ["delivered"] * 2

    report = await rebuild(load_settings(CrmSettings), keep_old=True, log=lambda _: None)
    assert report.schema_old
    assert await _readable(postgres_url, "crm") == []
    conn = await asyncpg.connect(postgres_url)
    tables = [
        r["tablename"]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'crm'")
    ]
    await conn.close()
    for table in tables:
        if table in ("checkpoints", "schema_migrations"):
            continue
        live = await table_checksum(postgres_url, f"{report.schema_old}.{table}", "t::text")
        assert await table_checksum(postgres_url, f"crm.{table}", "t::text") == live, table
