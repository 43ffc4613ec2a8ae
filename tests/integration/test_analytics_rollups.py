"""Analytics over real NATS and Postgres with events published as the services would: every
rollup answers the API with numbers worked out by hand, percentiles are exact, redelivered
and re-published events count once, a lead converts once, poison goes to the DLQ, a key
sees only its workspace, and bad parameters are a 400 naming the parameter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from tests.support.conv import T0, received, sent
from tests.support.db import assert_rebuilt_as_live, projected
from tests.support.stack import API_KEY, OTHER_KEY, service_env

from switchboard.analytics.app import create_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events import decode_message
from switchboard.events.catalog.common import Channel, Chat
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactIdentityLinked,
    ContactUpdated,
    Identity,
    LeadCreated,
    LeadStageChanged,
)
from switchboard.events.catalog.delivery import (
    DeliveryFailed,
    DeliveryQueued,
    DeliveryReceipt,
    DeliverySent,
)
from switchboard.events.catalog.mtproto import (
    BackfillCompleted,
    BackfillProgressed,
    FloodWaited,
    SessionConnected,
    SessionDisconnected,
)
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.identity import keyed_hash
from switchboard.runtime.pii import identity_hash
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

AUTH = {"Authorization": f"Bearer {API_KEY}"}
RANGE = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}


@dataclass
class Env:
    url: str
    http: httpx.AsyncClient
    bus: Bus
    db: str
    commands: list[Any]

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.http.get(f"{self.url}{path}", headers=AUTH, params={**RANGE, **params})
        assert r.status_code == 200, r.text
        return r.json()

    async def until(self, path: str, check: Any, **params: Any) -> Any:
        async def probe() -> Any:
            body = await self.get(path, **params)
            return body if check(body) else None

        return await eventually(probe, timeout=20, message=f"{path} {params}")

    async def publish(self, *models: Any, at: Any = None, **headers: str) -> None:
        for i, model in enumerate(models):
            extra = {"time": at + timedelta(seconds=i)} if at is not None else {}
            await self.bus.publish(model, workspace_id="demo", headers=headers or None, **extra)


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    for key, value in service_env(
        nats_url,
        postgres_url,
        SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL="px-1",
        SWITCHBOARD_ANALYTICS_CONVERSION_EVENTS="qualified=Lead,won=Purchase",
        SWITCHBOARD_ANALYTICS_CONVERSION_CURRENCY="EUR",
        # the events are dated 2026-11-20, past Meta's 7 days by now: no age limit here
        SWITCHBOARD_ANALYTICS_CONVERSION_MAX_AGE_S="0",
    ).items():
        monkeypatch.setenv(key, value)
    bus = await Bus.connect(nats_url, name="test-publisher")
    await bus.provision()
    commands: list[Any] = []

    async def seen(msg: Any) -> None:
        commands.append(msg)

    sub = await bus.nc.subscribe("cmd.outbound.conversion.>", cb=seen)
    async with (
        serve_app(create_app(load_settings(AnalyticsSettings))) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Env(url, http, bus, postgres_url, commands)
    await sub.unsubscribe()
    await bus.close()


def _delivery(kind: Any, message_id: str, seconds: float, **kw: Any) -> Any:
    return kind(
        message_id=message_id,
        channel=Channel.TELEGRAM,
        account="shop",
        recipient="555",
        at=T0 + timedelta(seconds=seconds),
        **kw,
    )


def _receipt(status: str, seconds: float) -> DeliveryReceipt:
    """The provider's receipt for the send it knows as "900"."""
    return DeliveryReceipt(
        channel=Channel.TELEGRAM,
        account="shop",
        recipient="555",
        status=status,
        provider_message_id="900",
        at=T0 + timedelta(seconds=seconds),
    )


async def test_every_stream_rolls_up_into_the_api(env: Env) -> None:
    a1 = received(Channel.TELEGRAM, "shop", "555", "hi", 1)
    a2 = received(Channel.TELEGRAM, "shop", "555", "anyone?", 30)
    b1 = received(Channel.WHATSAPP, "wa1", "4917600000001", "hallo", 3600, phone="4917600000001")
    reply = sent(Channel.TELEGRAM, "shop", "555", "m-1", "900", "hello!", 61)
    later = sent(Channel.TELEGRAM, "shop", "555", "m-2", "901", "more", 200)
    await env.publish(a1, a2, b1, reply, later)
    deliveries = [
        _delivery(DeliveryQueued, "m-1", 60, campaign_id="spring"),
        # the "delivered" receipt overtakes the send it reports on
        _receipt("delivered", 62),
        _delivery(DeliverySent, "m-1", 60.25, provider_message_id="900"),
        _delivery(DeliveryQueued, "m-2", 199),
        _delivery(DeliverySent, "m-2", 200, provider_message_id="901"),
        _delivery(DeliveryQueued, "m-3", 300, campaign_id="spring"),
        _delivery(
            DeliveryFailed,
            "m-3",
            301,
            reason="Forbidden: bot was blocked by the user",
            error_code="telegram_403",
            permanent=True,
            attempts=1,
        ),
        _receipt("read", 90),
    ]
    await env.publish(*deliveries)

    msgs = await env.until("/v1/messages", lambda b: b["totals"] == {"inbound": 3, "outbound": 2})
    assert msgs["by_channel"] == [
        {"channel": "telegram", "account": "shop", "inbound": 2, "outbound": 2},
        {"channel": "whatsapp", "account": "wa1", "inbound": 1, "outbound": 0},
    ]
    hours = {p["bucket"]: p for p in msgs["series"] if p["inbound"] or p["outbound"]}
    assert hours == {
        "2026-11-20T09:00:00Z": {"bucket": "2026-11-20T09:00:00Z", "inbound": 2, "outbound": 2},
        "2026-11-20T10:00:00Z": {"bucket": "2026-11-20T10:00:00Z", "inbound": 1, "outbound": 0},
    }
    days = await env.get("/v1/messages", bucket="day", channel="telegram")
    assert [(p["bucket"], p["inbound"]) for p in days["series"]] == [("2026-11-20T00:00:00Z", 2)]

    dels = await env.until("/v1/deliveries", lambda b: b["totals"]["read"] == 1)
    assert {k: dels["totals"][k] for k in ("queued", "sent", "failed", "delivered", "read")} == {
        "queued": 3,
        "sent": 2,
        "failed": 1,
        "delivered": 1,
        "read": 1,
    }
    assert dels["failure_reasons"] == [
        {
            "provider": "telegram",
            "outcome": "failed",
            "reason": "telegram_403",
            "example": "Forbidden: bot was blocked by the user",
            "count": 1,
        },
    ]
    camp = await env.get("/v1/campaigns")
    # the receipt that came before its send was credited to the campaign once it showed up
    assert camp["items"] == [
        {
            "campaign_id": "spring",
            "queued": 2,
            "sent": 1,
            "retrying": 0,
            "failed": 1,
            "delivered": 1,
            "read": 1,
            "undelivered": 0,
            "delivery_rate": 1.0,
            "failure_rate": 0.5,
            "read_rate": 1.0,
            "leads": 0,
            "conversions": 0,
        },
    ]

    lat = await env.get("/v1/latency")
    send = lat["send"]["overall"]
    assert (send["count"], send["p50_ms"], send["p99_ms"]) == (2, 250.0, 1000.0)
    assert lat["end_to_end"]["overall"]["count"] == 3

    frt = await env.get("/v1/first-response")
    # telegram: first message at +1 s, first reply at +61 s; whatsapp: never answered
    assert frt["overall"]["conversations"] == 2
    assert frt["overall"]["answered"] == 1
    assert frt["overall"]["awaiting_reply"] == 1
    assert frt["overall"]["p50_ms"] == 60000.0
    per = await env.get("/v1/first-response/conversations")

    def chat(channel: str, chat_id: str) -> str:  # the chat's identity hash (pii)
        return identity_hash("demo", channel, chat_id)

    # conversations are keyed by a keyed hash: a chat id is often a phone number
    assert [(c["conversation"], c["response_ms"]) for c in per["items"]] == [
        (keyed_hash("conversation", "whatsapp", "wa1", chat("whatsapp", "4917600000001")), None),
        (keyed_hash("conversation", "telegram", "shop", chat("telegram", "555")), 60000.0),
    ]
    assert "4917600000001" not in json.dumps(per)


async def test_funnel_conversions_once_and_workspace_isolation(env: Env) -> None:
    contact = ContactCreated(
        contact_id="ct_1",
        display_name="Ada Lovelace",
        phone="4917611111111",
        identities=(Identity(channel=Channel.TELEGRAM, external_id="555"),),
        source_channel=Channel.TELEGRAM,
        attributes={"email": "ada@example.com"},
    )
    leads = [
        LeadCreated(
            lead_id="ld_1",
            contact_id="ct_1",
            stage="new",
            source_channel=Channel.TELEGRAM,
            value=Decimal("120.50"),
        ),
        LeadCreated(
            lead_id="ld_2",
            contact_id="ct_2",
            stage="new",
            source_channel=Channel.WHATSAPP,
            campaign_id="spring",
        ),
        LeadCreated(
            lead_id="ld_3", contact_id="ct_3", stage="new", source_channel=Channel.WHATSAPP
        ),
    ]
    moves = [
        LeadStageChanged(lead_id="ld_1", contact_id="ct_1", from_stage="new", to_stage="qualified"),
        LeadStageChanged(
            lead_id="ld_1",
            contact_id="ct_1",
            from_stage="qualified",
            to_stage="won",
            value=Decimal("1500"),
        ),
        LeadStageChanged(lead_id="ld_2", contact_id="ct_2", from_stage="new", to_stage="lost"),
        # back and forth: won again must not report a second Purchase
        LeadStageChanged(lead_id="ld_1", contact_id="ct_1", from_stage="won", to_stage="qualified"),
        LeadStageChanged(lead_id="ld_1", contact_id="ct_1", from_stage="qualified", to_stage="won"),
    ]
    await env.publish(contact, ContactUpdated(contact_id="ct_1", phone="4917622222222"), at=T0)
    await env.publish(*leads, at=T0 + timedelta(minutes=1))
    await env.publish(*moves, at=T0 + timedelta(hours=2))

    fun = await env.until("/v1/funnel", lambda b: b["current"] and b["created"] == 3)

    def stages(rows: list[dict[str, Any]]) -> dict[str, tuple[int, Any]]:
        return {s["stage"]: (s["reached"], s["rate"]) for s in rows}

    def entered(b: Any) -> int:
        return sum(sum(v for k, v in e.items() if k != "bucket") for e in b["entries"])

    await env.until("/v1/funnel", lambda b: entered(b) == 3 + len(moves))  # all applied
    fun = await env.get("/v1/funnel")
    assert stages(fun["stages"]) == {
        "new": (3, 1.0),
        "contacted": (0, 0.0),
        "qualified": (1, 0.3333),
        "won": (1, 0.3333),
        "lost": (1, 0.3333),
    }
    assert {s["source"]: s["created"] for s in fun["by_source"]} == {"telegram": 1, "whatsapp": 2}
    assert fun["current"] == [
        {"stage": "new", "leads": 1},
        {"stage": "won", "leads": 1},
        {"stage": "lost", "leads": 1},
    ]
    entries = {e["bucket"]: e for e in fun["entries"] if any(e[s] for s in ("new", "won"))}
    assert entries["2026-11-20T09:00:00Z"]["new"] == 3
    assert entries["2026-11-20T11:00:00Z"]["won"] == 2  # entered twice, reached once
    only_spring = await env.get("/v1/funnel", campaign="spring")
    assert (only_spring["created"], stages(only_spring["stages"])["lost"]) == (1, (1, 1.0))

    async def two_commands() -> bool:
        return len(env.commands) >= 2

    await eventually(two_commands, message="qualified=Lead and won=Purchase published")

    sent_cmds = {
        (c := decode_message(m.subject, dict(m.headers), m.data).model).event_name: c
        for m in env.commands
    }
    purchase = sent_cmds["Purchase"]
    assert purchase.conversion_id == "ld_1:won"
    assert purchase.event_id == "lead.ld_1.won"
    assert purchase.account == "px-1"
    assert (purchase.value, purchase.currency) == (1500.0, "EUR")
    assert purchase.user_data.ph == ("4917622222222", "4917611111111")
    assert purchase.user_data.em == ("ada@example.com",)
    assert (purchase.user_data.fn, purchase.user_data.ln) == ("Ada", "Lovelace")
    assert purchase.user_data.external_id == ("ct_1",)
    assert purchase.event_time == T0 + timedelta(hours=2, seconds=1)
    assert sent_cmds["Lead"].value == 120.5
    assert [m.subject for m in env.commands].count("cmd.outbound.conversion.v1.metacapi.px-1") == 2
    listed = await env.get("/v1/conversions")
    assert sorted((c["conversion_id"], c["published"]) for c in listed["items"]) == [
        ("ld_1:qualified", True),
        ("ld_1:won", True),
    ]

    # Replaying the whole CRM stream (the checkpoint forgotten) decides nothing again.
    conn = await asyncpg.connect(env.db)
    try:
        await conn.execute("DELETE FROM analytics.checkpoints WHERE projection = 'analytics_crm'")
        await env.publish(
            LeadCreated(
                lead_id="ld_4", contact_id="ct_4", stage="won", source_channel=Channel.VIBER
            ),
            at=T0,
        )
        await eventually(lambda: _has_lead(conn, "ld_4"), message="projected after the replay")
        ledger = await conn.fetchval("SELECT count(*) FROM analytics.conversion_ledger")
    finally:
        await conn.close()
    assert ledger == 3  # ld_1 qualified and won, ld_4 created at won
    await eventually(lambda: _count(env.commands, 3), message="ld_4's Purchase")
    assert len(env.commands) == 3
    again = await env.get("/v1/funnel")
    assert again["created"] == 4

    other = await env.http.get(
        f"{env.url}/v1/funnel", params=RANGE, headers={"Authorization": f"Bearer {OTHER_KEY}"}
    )
    assert other.status_code == 200
    assert other.json()["created"] == 0
    assert (await env.http.get(f"{env.url}/v1/funnel")).status_code == 401


async def _has_lead(conn: asyncpg.Connection, lead: str) -> bool:
    return bool(
        await conn.fetchval("SELECT count(*) FROM analytics.leads WHERE lead_id = $1", lead)
    )


async def _count(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def test_redelivered_events_count_once_and_poison_goes_to_the_dlq(env: Env) -> None:
    first = received(Channel.TELEGRAM, "shop", "555", "hi", 1)
    await env.publish(first)
    # the same event again under a new stream sequence (past the duplicate window)
    await env.publish(first, **{"Nats-Msg-Id": "republished-1"})
    await env.bus.js.publish(
        "conv.message_received.v1.telegram.shop",
        b'{"channel": "telegram"}',
        headers={
            "ce-id": "poison-1",
            "ce-type": "switchboard.conv.message_received.v1",
            "ce-source": "test",
            "ce-specversion": "1.0",
            "workspace-id": "demo",
            "Nats-Msg-Id": "poison-1",
        },
    )
    await env.publish(received(Channel.TELEGRAM, "shop", "556", "after the poison", 2))
    body = await env.until("/v1/messages", lambda b: b["totals"]["inbound"] == 2)
    assert body["totals"]["inbound"] == 2

    async def dead() -> Any:
        found = await list_dead_letters(env.bus, limit=10)
        return found or None

    letters = await eventually(dead, message="poison in the DLQ")
    assert letters[0].consumer == "analytics_conv"
    assert "does not validate" in letters[0].reason
    assert (await env.get("/v1/latency"))["end_to_end"]["overall"]["count"] == 2


async def test_mtproto_sessions_and_backfill(env: Env) -> None:
    at = T0 + timedelta(minutes=5)
    events = [
        SessionConnected(session_id="s1", at=at, instance="i-1"),
        FloodWaited(
            session_id="s1",
            at=at,
            operation="get_history",
            seconds=7,
            action="wait",
            resume_at=at + timedelta(seconds=7),
        ),
        BackfillProgressed(
            session_id="s1", at=at, job_id="j1", chat=Chat(id="-100"), fetched=100, offset_id=900
        ),
        BackfillProgressed(
            session_id="s1", at=at, job_id="j1", chat=Chat(id="-100"), fetched=200, offset_id=800
        ),
        BackfillCompleted(
            session_id="s1",
            at=at,
            job_id="j1",
            chat=Chat(id="-100"),
            fetched=250,
            stopped_by="history_start",
        ),
        SessionDisconnected(session_id="s1", at=at, instance="i-1", reason="network"),
        SessionConnected(session_id="s1", at=at, instance="i-1", reconnect=True),
    ]
    await env.publish(*events, at=at)
    body = await env.until(
        "/v1/mtproto",
        lambda b: b["sessions"] and b["backfill"] and b["sessions"][0]["connects"] == 2,
    )
    s = body["sessions"][0]
    assert (s["state"], s["disconnects"], s["flood_waits"], s["flood_wait_seconds"]) == (
        "connected",
        1,
        1,
        7,
    )
    job = body["backfill"][0]
    assert (job["status"], job["pages"], job["fetched"], job["chat"]) == (
        "completed",
        2,
        250,
        "-100",
    )
    assert {e["name"]: e["count"] for e in body["events"]}["mtproto.backfill_progress"] == 2


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"bucket": "week"}, "bucket"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "bucket"),
        ({"chanel": "telegram"}, "chanel"),
        ({"source": "telegram"}, "source"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    env: Env, params: dict[str, str], parameter: str
) -> None:
    r = await env.http.get(f"{env.url}/v1/messages", headers=AUTH, params=params)
    assert r.status_code in (400, 422), r.text
    problem = r.json()
    paths = [e["path"] for e in problem.get("errors") or []]
    assert any(parameter in p for p in paths) or parameter in problem["detail"], problem


async def test_rebuild_is_byte_identical_and_decides_no_conversion_again(env: Env) -> None:
    from switchboard.analytics.rebuild import rebuild

    chat = received(Channel.TELEGRAM, "shop", "555", "hi", 1)
    await env.publish(
        chat,
        received(Channel.WHATSAPP, "wa1", "4917600000001", "hallo", 5, phone="4917600000001"),
        sent(Channel.TELEGRAM, "shop", "555", "m-1", "900", "hello!", 61),
        _delivery(DeliveryQueued, "m-1", 60, campaign_id="spring"),
        _receipt("read", 70),
        _delivery(DeliverySent, "m-1", 60.5, provider_message_id="900"),
        SessionConnected(session_id="s1", at=T0, instance="i-1"),
    )
    await env.publish(
        ContactCreated(
            contact_id="ct_1",
            identities=(Identity(channel=Channel.TELEGRAM, external_id="555"),),
            source_channel=Channel.TELEGRAM,
            phone="4917611111111",
        ),
        ContactIdentityLinked(  # the nameless contact takes its name from a linked identity
            contact_id="ct_1",
            identity=Identity(channel=Channel.WHATSAPP, external_id="4917611111111"),
            matched_by="phone",
            display_name="Grace Hopper",
        ),
        LeadCreated(
            lead_id="ld_1", contact_id="ct_1", stage="new", source_channel=Channel.TELEGRAM
        ),
        LeadStageChanged(lead_id="ld_1", contact_id="ct_1", from_stage="new", to_stage="won"),
        at=T0,
    )
    await eventually(lambda: _count(env.commands, 1), message="the Purchase")
    (first,) = env.commands
    purchase = decode_message(first.subject, dict(first.headers), first.data).model
    assert (purchase.user_data.fn, purchase.user_data.ln) == ("Grace", "Hopper")
    await eventually(lambda: projected(env.bus, env.db, CHECKPOINTS), message="live caught up")

    report = await rebuild(load_settings(AnalyticsSettings), keep_old=True, log=lambda _: None)
    assert report.schema_old
    tables, compared = await assert_rebuilt_as_live(env.db, "analytics", report.schema_old)
    assert "conversion_ledger" not in tables
    assert compared > 25
    # The live service carries on over the swapped tables; the replay decided nothing again.
    await env.publish(
        LeadCreated(lead_id="ld_2", contact_id="ct_2", stage="won", source_channel=Channel.VIBER),
        at=T0,
    )
    await eventually(lambda: _count(env.commands, 2), message="ld_2's Purchase")
    ids = sorted(dict(m.headers)["Nats-Msg-Id"] for m in env.commands)
    assert ids == ["conversion:ld_1:won", "conversion:ld_2:won"]
    assert (await env.get("/v1/funnel"))["created"] == 2


CHECKPOINTS = (
    ("analytics", "analytics_conv", "CONV"),
    ("analytics", "analytics_delivery", "DELIVERY"),
    ("analytics", "analytics_crm", "CRM"),
)


async def test_conversion_and_dispatch_outcomes_count_per_provider(env: Env) -> None:
    """Outcomes of non-chat provider commands are read by name and fields, whether or not
    this build's catalog has their classes yet."""
    at = "2026-11-20T09:30:00Z"
    events = [
        (
            "delivery.conversion_sent.v1.metacapi.px-1",
            "switchboard.delivery.conversion_sent.v1",
            {
                "conversion_id": "ld_1:won",
                "account": "px-1",
                "event_name": "Purchase",
                "event_id": "lead.ld_1.won",
                "at": at,
            },
        ),
        (
            "delivery.conversion_failed.v1.metacapi.px-1",
            "switchboard.delivery.conversion_failed.v1",
            {
                "conversion_id": "ld_2:won",
                "account": "px-1",
                "event_name": "Purchase",
                "event_id": "lead.ld_2.won",
                "at": at,
                "reason": "no account",
                "error_code": "unknown_account",
                "permanent": True,
                "attempts": 0,
            },
        ),
    ]
    for subject, ce_type, body in events:
        await env.bus.js.publish(
            subject,
            json.dumps(body).encode(),
            headers={
                "ce-id": f"x-{body['conversion_id']}",
                "ce-type": ce_type,
                "ce-source": "test",
                "ce-specversion": "1.0",
                "ce-time": at,
                "workspace-id": "demo",
                "Nats-Msg-Id": f"x-{body['conversion_id']}",
            },
        )
    dels = await env.until("/v1/deliveries", lambda b: b["by_provider"])
    [row] = dels["by_provider"]
    assert (row["provider"], row["account"], row["sent"], row["failed"]) == (
        "metacapi",
        "px-1",
        1,
        1,
    )
    assert [(r["reason"], r["example"]) for r in dels["failure_reasons"]] == [
        ("unknown_account", "no account")
    ]
