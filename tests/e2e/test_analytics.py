"""Analytics end to end: simulated users write to a Telegram bot and a WhatsApp number in
the sandbox, ingest normalizes, the CRM opens leads, outbound answers (one chat has blocked
the bot), WhatsApp reports delivered and read. The rollups and the API must match counts
worked out independently from what the sandbox recorded; a lead that is won becomes one
Meta CAPI conversion command; a rebuild from the streams gives byte-identical tables and
does not emit that conversion again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from nats.aio.msg import Msg
from tests.support.db import assert_rebuilt_as_live, projected
from tests.support.ingest import ADMIN_TOKEN
from tests.support.inprocess import serve_services
from tests.support.outbound import text_send
from tests.support.stack import API_KEY, register_bot, register_number
from tests.support.telegram_sandbox import serve_telegram_sandbox

from switchboard.analytics.rebuild import rebuild
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events import decode_message
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import SendMessage
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TG_TOKEN = "400000001:analytics-e2e"
WA_NUMBER = "109000000000077"
WA_APP_SECRET = "5f0c8e2a9b7d4c1e6a3f8b0d2e4c6a81"  # a Meta app secret: 32 hex characters
BLOCKED_CHAT = 777000


@dataclass
class Env:
    box: Sandbox
    sandbox: str
    ingest: str
    crm: str
    analytics: str
    http: httpx.AsyncClient
    bus: Bus
    outbound: AsyncExitStack
    conversions: list[Msg] = field(default_factory=list)

    async def api(self, path: str, **params: Any) -> Any:
        now = datetime.now(UTC)
        window = {"from": (now - timedelta(hours=2)).isoformat(), "to": now.isoformat()}
        r = await self.http.get(
            f"{self.analytics}{path}", headers=AUTH, params={**window, **params}
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def recorded(self, path: str, **params: Any) -> Any:
        r = await self.http.get(f"{self.sandbox}/_sandbox{path}", params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    async with (
        serve_telegram_sandbox((TG_TOKEN, "analytics_bot")) as (box, sandbox, stack),
        AsyncExitStack() as out,
    ):
        box.whatsapp.add_number(
            WA_NUMBER, "wa-token", app_secret=WA_APP_SECRET, verify_token="wa-verify"
        )
        at = await serve_services(
            stack,
            monkeypatch,
            nats_url,
            postgres_url,
            sandbox,
            outbound=out,
            SWITCHBOARD_OUTBOUND_BACKOFF_BASE_S=0.1,
            SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL="1234567890",
            SWITCHBOARD_ANALYTICS_CONVERSION_EVENTS="won=Purchase",
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        bus = await Bus.connect(nats_url, name="analytics-e2e")
        stack.push_async_callback(bus.close)
        env = Env(box, sandbox, at.ingest, at.crm, at.analytics, http, bus, out)

        async def on_conversion(msg: Msg) -> None:
            env.conversions.append(msg)

        await bus.nc.subscribe("cmd.outbound.conversion.>", cb=on_conversion)
        yield env


async def _register(env: Env) -> None:
    await register_bot(env.http, env.ingest, ADMIN_TOKEN, "shop", TG_TOKEN, env.sandbox)
    await register_number(
        env.http, env.ingest, ADMIN_TOKEN, "wa1", WA_NUMBER, env.sandbox,
        app_secret=WA_APP_SECRET, verify_token="wa-verify",
    )  # fmt: skip
    await env.box.whatsapp.set_webhook(WA_NUMBER, f"{env.ingest}/webhooks/whatsapp/wa1")


def _reply(channel: Channel, account: str, chat: str, i: int, campaign: str | None) -> SendMessage:
    return text_send(
        f"reply-{channel.value}-{i}",
        chat,
        f"Thanks for writing, #{i}",
        account=account,
        channel=channel,
        campaign_id=campaign,
    )


async def test_rollups_match_the_sandbox_and_survive_a_rebuild(env: Env, postgres_url: str) -> None:
    await _register(env)
    await env.box.telegram.generate(TG_TOKEN, count=24, rate=300, seed=8, mix={"text": 1})
    await env.box.whatsapp.generate(WA_NUMBER, count=16, rate=300, seed=8, mix={"text": 1})
    await env.box.telegram.wait_delivered(TG_TOKEN, timeout=30)
    await env.box.whatsapp.wait_delivered(WA_NUMBER, timeout=30)

    # Inbound, from the sandbox's own records of the webhooks it delivered.
    tg_hooks = await env.recorded("/deliveries", provider="telegram", ok="true")
    wa_hooks = await env.recorded("/deliveries", provider="whatsapp", ok="true")
    generated = await env.recorded("/telegram/generated", bot=TG_TOKEN, include="true")
    tg_chats = sorted({str(u["message"]["chat"]["id"]) for u in generated["updates"]})
    wa_users = sorted(
        {g.value["messages"][0]["from"] for g in env.box.whatsapp.generated_events(WA_NUMBER)}
    )
    inbound = {"telegram": _messages(tg_hooks), "whatsapp": _messages(wa_hooks)}
    assert inbound == {"telegram": 24, "whatsapp": 16}

    msgs = await eventually(
        lambda: _when(env.api("/v1/messages"), lambda b: b["totals"]["inbound"] == 40),
        timeout=30,
        message="40 inbound messages rolled up",
    )
    assert {r["channel"]: r["inbound"] for r in msgs["by_channel"]} == inbound

    # The business answers every chat once (half of them as a campaign), and also writes
    # to a chat that has blocked the bot.
    env.box.telegram.add_chat(TG_TOKEN, BLOCKED_CHAT, "private")
    env.box.telegram.block_chat(TG_TOKEN, BLOCKED_CHAT)
    replies = [
        _reply(Channel.TELEGRAM, "shop", chat, i, "promo" if i % 2 else None)
        for i, chat in enumerate([*tg_chats, str(BLOCKED_CHAT)])
    ] + [
        _reply(Channel.WHATSAPP, "wa1", user, i, "promo" if i % 2 else None)
        for i, user in enumerate(wa_users)
    ]
    for cmd in replies:
        await env.bus.publish(cmd, workspace_id="demo")

    async def outcomes_recorded() -> Any:
        tg = await env.recorded("/requests", provider="telegram", method="sendMessage")
        statuses = await env.recorded(f"/whatsapp/numbers/{WA_NUMBER}/statuses")
        wa_sent = [s for s in statuses["statuses"] if s["status"] == "sent"]
        done = tg["count"] == len(tg_chats) + 1 and len(wa_sent) == len(wa_users)
        return (tg["requests"], statuses["statuses"]) if done else None

    tg_sends, wa_statuses = await eventually(
        outcomes_recorded, timeout=30, message="every reply reached the sandbox"
    )
    sent_ok = {"telegram": sum(r["ok"] for r in tg_sends), "whatsapp": len(wa_users)}
    failed = [r for r in tg_sends if not r["ok"]]
    assert [(r["chat"], r["error_code"]) for r in failed] == [(str(BLOCKED_CHAT), 403)]
    delivered = sum(s["status"] == "delivered" for s in wa_statuses)
    read = sum(s["status"] == "read" for s in wa_statuses)
    assert delivered == len(wa_users)

    def settled(b: Any) -> bool:
        t = b["totals"]
        return (t["sent"], t["failed"], t["delivered"], t["read"]) == (
            sum(sent_ok.values()),
            1,
            delivered,
            read,
        )

    dels = await eventually(
        lambda: _when(env.api("/v1/deliveries"), settled), timeout=30, message="outcomes"
    )
    by_provider = {r["provider"]: r for r in dels["by_provider"]}
    assert by_provider["telegram"]["sent"] == sent_ok["telegram"]
    assert by_provider["whatsapp"]["sent"] == sent_ok["whatsapp"]
    assert by_provider["whatsapp"]["delivery_rate"] == 1.0
    assert [(r["provider"], r["reason"], r["count"]) for r in dels["failure_reasons"]] == [
        ("telegram", "telegram_403", 1)
    ]
    promo_expected = sum(1 for c in replies if c.campaign_id == "promo")
    campaigns = (await env.api("/v1/campaigns"))["items"]
    [promo] = campaigns
    assert promo["campaign_id"] == "promo"
    assert promo["queued"] == promo_expected
    assert promo["sent"] + promo["failed"] == promo_expected
    assert promo["delivered"] == sum(
        1 for c in replies if c.campaign_id and c.channel.value == "whatsapp"
    )

    replied = {"inbound": 40, "outbound": sum(sent_ok.values())}
    await eventually(
        lambda: _when(env.api("/v1/messages"), lambda b: b["totals"] == replied),
        message="the replies in the message counts",
    )
    lat = await env.api("/v1/latency")
    assert {r["channel"]: r["count"] for r in lat["send"]["by_channel"]} == sent_ok
    assert {r["channel"]: r["count"] for r in lat["end_to_end"]["by_channel"]} == inbound
    for row in lat["send"]["by_channel"] + lat["end_to_end"]["by_channel"]:
        assert 0 <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    frt = await env.api("/v1/first-response")
    assert frt["overall"]["conversations"] == len(tg_chats) + len(wa_users)
    assert frt["overall"]["answered"] == len(tg_chats) + len(wa_users)

    # Every new person got a lead; winning one reports one Purchase.
    fun = await eventually(
        lambda: _when(
            env.api("/v1/funnel"), lambda b: b["created"] == len(tg_chats) + len(wa_users)
        ),
        timeout=20,
        message="one lead per person",
    )
    assert {s["source"]: s["created"] for s in fun["by_source"]} == {
        "telegram": len(tg_chats),
        "whatsapp": len(wa_users),
    }
    # Outbound stops here, so that the conversion commands stay in its work queue for us to
    # see, and nothing it would do with them arrives during the rebuild below.
    await env.outbound.aclose()
    leads = (await _crm(env, "/v1/leads", limit=100))["items"]
    won, other = leads[0], leads[1]
    r = await env.http.post(
        f"{env.crm}/v1/leads/{won['id']}/stage",
        headers=AUTH,
        json={"to_stage": "won", "value": "99.90"},
    )
    assert r.status_code == 200, r.text
    await eventually(lambda: _count(env.conversions, 1), message="one conversion command")
    cmd = decode_message(
        env.conversions[0].subject, dict(env.conversions[0].headers or {}), env.conversions[0].data
    ).model
    assert (cmd.event_name, cmd.value, cmd.lead_id, cmd.account) == (
        "Purchase",
        99.9,
        won["id"],
        "1234567890",
    )
    assert cmd.event_id == f"lead.{won['id']}.won"
    assert cmd.user_data.external_id == (won["contact_id"],)
    assert await _queued_conversions(env.bus) == 1
    fun = await eventually(
        lambda: _when(env.api("/v1/funnel"), lambda b: _reached(b, "won") == 1),
        message="won in the funnel",
    )

    # A rebuild from the streams gives the same rollups and decides nothing again.
    await eventually(
        lambda: projected(env.bus, postgres_url, CHECKPOINTS), message="live caught up"
    )
    report = await rebuild(load_settings(AnalyticsSettings), keep_old=True, log=lambda _: None)
    assert report.schema_old
    tables, compared = await assert_rebuilt_as_live(postgres_url, "analytics", report.schema_old)
    assert "conversion_ledger" not in tables  # never replaced
    assert compared > 100
    r = await env.http.post(
        f"{env.crm}/v1/leads/{other['id']}/stage", headers=AUTH, json={"to_stage": "won"}
    )
    assert r.status_code == 200, r.text
    await eventually(lambda: _count(env.conversions, 2), message="the second lead's conversion")
    ids = [dict(m.headers or {})["Nats-Msg-Id"] for m in env.conversions]
    assert sorted(ids) == sorted({f"conversion:{won['id']}:won", f"conversion:{other['id']}:won"})
    assert await _queued_conversions(env.bus) == 2
    fun = await eventually(
        lambda: _when(env.api("/v1/funnel"), lambda b: _reached(b, "won") == 2),
        message="the live service carries on after the swap",
    )
    dashboard = await env.http.get(f"{env.analytics}/", headers=AUTH)
    assert dashboard.status_code == 200
    assert 'id="chart-messages"' in dashboard.text


def _messages(hooks: Any) -> int:
    """Webhooks that carried a user's message (not Meta's handshake, not a status)."""
    refs = [d["ref"] for d in hooks["deliveries"]]
    return sum(1 for ref in refs if ref and ref != "verification" and ":" not in ref)


async def _queued_conversions(bus: Bus) -> int:
    """Conversion commands waiting in OUTBOUND (a work queue: read, never consumed here)."""
    info = await bus.js.stream_info("OUTBOUND", subjects_filter="cmd.outbound.conversion.>")
    return sum((info.state.subjects or {}).values())


async def _when(fetch: Any, check: Any) -> Any:
    body = await fetch
    return body if check(body) else None


async def _count(items: list[Any], n: int) -> bool:
    return len(items) >= n


def _reached(funnel: Any, stage: str) -> int:
    return next(s["reached"] for s in funnel["stages"] if s["stage"] == stage)


async def _crm(env: Env, path: str, **params: Any) -> Any:
    r = await env.http.get(f"{env.crm}{path}", headers=AUTH, params=params)
    assert r.status_code == 200, r.text
    return r.json()


CHECKPOINTS = (
    ("analytics", "analytics_conv", "CONV"),
    ("analytics", "analytics_delivery", "DELIVERY"),
    ("analytics", "analytics_crm", "CRM"),
    ("analytics", "analytics_mtproto", "MTPROTO"),
)
