"""Erasure over real NATS and Postgres, on every channel: after ``erase`` no CRM,
analytics or outbound read model (API, table or attempt record) holds the person's
identifiers, name, texts in either direction or recipients, also for what arrives after the
erasure, and rebuilds equal the live tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta

import asyncpg
import pytest
from nats.js.api import RawStreamMsg
from tests.support.conv import T0, deleted, edited, publish_sealed, received, sent
from tests.support.crm import AUTH, Crm, running_crm
from tests.support.db import assert_rebuilt_as_live, projected, schema_tables

from switchboard.analytics import rebuild as analytics_rebuild
from switchboard.analytics.app import create_app as analytics_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.rebuild import rebuild
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import DeliveryReceipt, DeliverySent
from switchboard.outbound.app import create_app as outbound_app
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

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
# One person's events are published unsealed, as events written before sealing (an
# upgrade) are: the log keeps them readable, but the erasure still blanks them everywhere and
# a rebuild replaying them beside the sealed CRM events stays byte-identical.
UNSEALED = (Channel.MTPROTO.value,)


@pytest.fixture
async def crm(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Crm]:
    """The CRM, and analytics and outbound beside it (same environment)."""
    async with running_crm(nats_url, postgres_url, monkeypatch) as crm, AsyncExitStack() as s:
        await s.enter_async_context(serve_app(analytics_app(load_settings(AnalyticsSettings))))
        crm.outbound = await s.enter_async_context(  # type: ignore[attr-defined]
            serve_app(outbound_app(load_settings(OutboundSettings)))
        )
        yield crm


def _exchange(channel: Channel, who: str, n: int) -> list[object]:
    """A message from the person, our reply, its delivery and its receipt; the person's
    message edited, and (``n`` > 1) the first one deleted, (``n`` = 1) an edit of a message
    that never arrives (it waits in pending_edits)."""
    account = f"acct-{channel.value}"
    out_id, provider_id = f"m-{channel.value}-{n}", f"p-{channel.value}-{n}"
    phone = who if channel is Channel.WHATSAPP else None
    message = received(channel, account, who, f"secret-in {n}", n, phone=phone, name="Zoe Quux")
    first = received(channel, account, who, "secret-in 1", 1, phone=phone, name="Zoe Quux")
    never = received(channel, account, who, "secret-in 5", 5, phone=phone, name="Zoe Quux")
    return [
        message,
        edited(message, f"secret-in {n} edited", 1),
        *([deleted(first)] if n > 1 else [edited(never, "secret-in 5 early edit", 1)]),
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


PROJECTIONS = (
    ("crm", "conversations", "CONV"),
    ("crm", "crm", "CRM"),
    ("crm", "deliveries", "DELIVERY"),
    ("analytics", "analytics_conv", "CONV"),
    ("analytics", "analytics_crm", "CRM"),
    ("analytics", "analytics_delivery", "DELIVERY"),
)


async def _readable(postgres_url: str, schema: str) -> list[str]:
    """Every (table, needle) where a row of ``schema`` still shows the person."""
    conn = await asyncpg.connect(postgres_url)
    try:
        found = []
        for table in await schema_tables(conn, schema):
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


async def _sealed(bus: Bus) -> AsyncIterator[tuple[str, int, RawStreamMsg]]:
    """(stream, sequence, message) of every stored event a sealing producer published."""
    for stream in ("CONV", "DELIVERY", "CRM"):
        last = (await bus.js.stream_info(stream)).state.last_seq
        for seq in range(1, last + 1):
            m = await bus.js.get_msg(stream, seq)
            if not any(f".{ch}." in (m.subject or "") for ch in UNSEALED):
                yield stream, seq, m


async def _readable_in_streams(nats_url: str) -> list[str]:
    """Every (stream, seq, needle) where a stored event (body or headers) of a sealing
    producer shows the person: nothing, ever (crypto-shredding seals at publish)."""
    bus = await Bus.connect(nats_url, name="stream-scan")
    try:
        found = []
        async for stream, seq, m in _sealed(bus):
            body = (m.data or b"").decode()
            headers = repr(sorted((m.headers or {}).items()))
            # A CRM event caused by an unsealed event names that event (its ce-id, with
            # the chat) in its causation id: that person only, headers only.
            cause = [n for c, n in PEOPLE.items() if c.value in UNSEALED]
            needles = (*PEOPLE.values(), *SECRETS)
            found += [
                f"{stream}#{seq}: {n}"
                for n in needles
                if n in body or (n in headers and n not in cause)
            ]
        return found
    finally:
        await bus.close()


async def _opened_in_streams(nats_url: str) -> list[str]:
    """The sealed events' personal fields as a consumer opens them now (fresh keys)."""
    bus = await Bus.connect(nats_url, name="stream-open")
    try:
        opened = []
        async with pii.using(bus):
            async for _, _, m in _sealed(bus):
                await pii.open_messages([m])  # type: ignore[list-item]
                opened.append((m.data or b"").decode())
        return opened
    finally:
        await bus.close()


async def _attempt_records(nats_url: str) -> None:
    """Outbound's records of our replies (as the sender writes them), with a provider
    reason that quotes the recipient."""
    bus = await Bus.connect(nats_url, name="records")
    try:
        await bus.provision()
        attempts = Attempts(await bus.kv("sends"))
        for channel, who in PEOPLE.items():
            record = Attempt(
                message_id=f"m-{channel.value}-1",
                workspace_id="demo",
                channel=channel.value,
                account=f"acct-{channel.value}",
                recipient=who,
            )
            record = record.step("retrying", reason=f"{who} is busy", attempts=1)
            await attempts.put(record.step("sent", provider_message_id=f"p-{channel.value}-1"))
    finally:
        await bus.close()


async def test_erasure_leaves_nothing_of_the_person_on_any_channel(
    crm: Crm, nats_url: str, postgres_url: str
) -> None:
    await _attempt_records(nats_url)
    outbound: str = crm.outbound  # type: ignore[attr-defined]
    await publish_sealed(
        nats_url,
        [ev for ch, who in PEOPLE.items() for ev in _exchange(ch, who, 1)],
        unsealed=UNSEALED,
    )
    contacts = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == len(PEOPLE)))["items"]
    await eventually(lambda: projected(nats_url, postgres_url, PROJECTIONS), message="projected")
    bus = await Bus.connect(nats_url, name="pii-producer")
    keys = pii.PiiKeys(await bus.kv(pii.BUCKET))
    # what a producer seals for the person opens until the erasure, and never after it
    sealed = [await keys.seal("demo", ch.value, who, "Zoe's text") for ch, who in PEOPLE.items()]
    assert [await keys.open(v) for v in sealed] == ["Zoe's text"] * len(PEOPLE)
    # the events are sealed on the wire already, and open for a consumer
    assert await _readable_in_streams(nats_url) == []
    opened = "".join(await _opened_in_streams(nats_url))
    assert all(n in opened for c, n in PEOPLE.items() if c not in UNSEALED)
    assert all(n in opened for n in SECRETS)
    # the probe sees the person before (analytics keeps only what conversions need)
    assert await _readable(postgres_url, "crm")
    assert await _readable(postgres_url, "analytics")

    for contact in contacts:
        r = await crm.http.post(f"{crm.url}/v1/contacts/{contact['id']}/erase", headers=AUTH)
        assert r.status_code == 200, r.text
    assert [await pii.PiiKeys(keys.kv).open(v) for v in sealed] == [pii.ERASED] * len(PEOPLE)
    await bus.close()
    # the log itself: nothing of the person is readable, nor opens any more
    assert await _readable_in_streams(nats_url) == []
    after = await _opened_in_streams(nats_url)
    assert not [b for b in after if any(n in b for n in (*PEOPLE.values(), *SECRETS))]
    # what arrives (or replays) after the erasure is blanked on sight
    await publish_sealed(
        nats_url,
        [ev for ch, who in PEOPLE.items() for ev in _exchange(ch, who, 10)],
        unsealed=UNSEALED,
    )
    await eventually(lambda: projected(nats_url, postgres_url, PROJECTIONS), message="projected")

    assert await _readable(postgres_url, "crm") == []
    assert await _readable(postgres_url, "analytics") == []
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
        # edits and a deletion, before the erasure and after it, stay as metadata
        mine = [m for m in msgs if m["direction"] == "in"]
        assert all(m["edited_at"] for m in mine), mine
        assert sorted(bool(m["deleted_at"]) for m in mine) == [False, True], mine
        # receipts still find our replies: recipient and chat id are the same marker
        assert [m["status"] for m in msgs if m["direction"] == "out"] == ["delivered"] * 2

    # outbound's records no longer name the recipient, nor quote them in a reason
    for channel, who in PEOPLE.items():

        async def scrubbed(channel: Channel = channel) -> bool:
            r = await crm.http.get(f"{outbound}/v1/messages/m-{channel.value}-1", headers=AUTH)
            assert r.status_code == 200, r.text
            return bool(r.json()["recipient"].startswith("erased:"))

        await eventually(scrubbed, message=f"{channel} record scrubbed")
        r = await crm.http.get(f"{outbound}/v1/messages/m-{channel.value}-1", headers=AUTH)
        record = r.json()
        assert who not in r.text
        assert (record["status"], record["attempts"]) == ("sent", 1)  # what stays

    crm_report = await rebuild(load_settings(CrmSettings), keep_old=True, log=lambda _: None)
    analytics_report = await analytics_rebuild.rebuild(
        load_settings(AnalyticsSettings), keep_old=True, log=lambda _: None
    )
    for schema, report in (("crm", crm_report), ("analytics", analytics_report)):
        assert report.schema_old
        assert await _readable(postgres_url, schema) == []
        tables, _ = await assert_rebuilt_as_live(postgres_url, schema, report.schema_old)
        assert tables
