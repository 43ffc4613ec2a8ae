"""Issue 19 end to end: webhooks into ingest, the CRM, outbound, analytics and the sandbox
(Telegram, WhatsApp, Meta CAPI), all on real NATS and Postgres.

- two anonymous admins in one group are two contacts (and GroupAnonymousBot nobody);
- a BSUID-only WhatsApp message and a later one with phone and BSUID are one contact;
- a service message changes no message count and no first-response time;
- a lead from a click-to-WhatsApp ad, moved to ``won``, reaches the sandbox's Conversions
  API as one ``business_messaging`` event with its ``ctwa_clid``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.support.ingest import ADMIN_TOKEN
from tests.support.inprocess import serve_services
from tests.support.outbound import capi_pixel, register, text_send
from tests.support.stack import API_KEY, register_bot, register_number, webhook_secret
from tests.support.streams import stream_messages
from tests.support.telegram_sandbox import serve_telegram_sandbox

from switchboard.events.catalog.conv import MessageReceived
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TG_TOKEN = "400000002:inbound-e2e"
WA_NUMBER = "109000000000019"
WA_SECRET = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # the shape of a Meta app secret
PIXEL, CAPI_TOKEN = "1234567890", "EAAtest-capi"
BSUID = "US.13491208655302741918"
PHONE = "16505551234"
CLICK = "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-"
SUPER = {"id": -1002002, "type": "supergroup", "title": "Owners club"}
ANON = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
ADA = {"id": 555, "is_bot": False, "first_name": "Ada"}
PRIVATE = {"id": 555, "type": "private", "first_name": "Ada"}


@dataclass
class Env:
    box: Sandbox
    nats_url: str
    ingest: str
    crm: str
    analytics: str
    http: httpx.AsyncClient
    tg_secret: str = ""

    async def get(self, base: str, path: str, **params: Any) -> Any:
        r = await self.http.get(f"{base}{path}", headers=AUTH, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def until(self, base: str, path: str, check: Any, **params: Any) -> Any:
        async def probe() -> Any:
            body = await self.get(base, path, **params)
            return body if check(body) else None

        return await eventually(probe, timeout=30, message=f"{path} {params}")

    async def telegram(self, update: dict[str, Any]) -> None:
        r = await self.http.post(
            f"{self.ingest}/webhooks/telegram/shop",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": self.tg_secret},
        )
        assert r.status_code == 200, r.text

    async def whatsapp(self, message: dict[str, Any], contact: dict[str, Any]) -> None:
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": WA_NUMBER},
            "contacts": [contact],
            "messages": [message],
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1022", "changes": [{"field": "messages", "value": value}]}],
            }
        ).encode()
        signature = hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
        r = await self.http.post(
            f"{self.ingest}/webhooks/whatsapp/wa1",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )
        assert r.status_code == 200, r.text


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    async with serve_telegram_sandbox((TG_TOKEN, "inbound_bot")) as (box, sandbox, stack):
        box.whatsapp.add_number(WA_NUMBER, "wa-token", app_secret=WA_SECRET, verify_token="wa-v")
        box.metacapi.add_pixel(PIXEL, CAPI_TOKEN)
        bus = await Bus.connect(nats_url, name="setup")
        await register(bus, capi_pixel(sandbox, PIXEL, CAPI_TOKEN))
        await bus.close()
        at = await serve_services(
            stack,
            monkeypatch,
            nats_url,
            postgres_url,
            sandbox,
            SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL=PIXEL,
            SWITCHBOARD_ANALYTICS_CONVERSION_EVENTS="won=Purchase",
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        env = Env(box, nats_url, at.ingest, at.crm, at.analytics, http)
        await register_bot(http, at.ingest, ADMIN_TOKEN, "shop", TG_TOKEN, sandbox)
        await register_number(
            http, at.ingest, ADMIN_TOKEN, "wa1", WA_NUMBER, sandbox,
            app_secret=WA_SECRET, verify_token="wa-v",
        )  # fmt: skip
        env.tg_secret = await webhook_secret(nats_url, "shop")
        yield env


def tg(update_id: int, chat: dict[str, Any], sender: dict[str, Any], **fields: Any) -> Any:
    date = int(datetime.now(UTC).timestamp())
    message = {"message_id": update_id, "date": date, "chat": chat, "from": sender, **fields}
    return {"update_id": update_id, "message": message}


def wa_text(wamid: str, text: str, *, phone: str | None, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": wamid,
        "timestamp": str(int(datetime.now(UTC).timestamp())),
        "from_user_id": BSUID,
        "type": "text",
        "text": {"body": text},
        **extra,
    }
    if phone:
        msg["from"] = phone
    return msg


async def test_inbound_as_the_providers_mean_it(env: Env) -> None:
    # Telegram: two anonymous admins and a join in a group; in a private chat a pin (a
    # service message) comes before the customer's first message
    await env.telegram(tg(1, SUPER, ANON, sender_chat=SUPER, author_signature="Owner", text="a"))
    await env.telegram(tg(2, SUPER, ANON, sender_chat=SUPER, author_signature="Support", text="b"))
    await env.telegram(tg(3, SUPER, ADA, new_chat_members=[ADA]))
    pinned = {"message_id": 9, "date": 1, "chat": PRIVATE, "text": "pinned note"}
    await env.telegram(tg(4, PRIVATE, ADA, pinned_message=pinned))
    await env.telegram(tg(5, PRIVATE, ADA, text="do you ship to Lisbon?"))
    # WhatsApp: a username user writes from a click-to-WhatsApp ad with their BSUID only
    referral = {
        "source_url": "https://fb.me/3cr4Wqqkv",
        "source_id": "120208901234560001",
        "source_type": "ad",
        "headline": "Spring sale",
        "ctwa_clid": CLICK,
    }
    await env.whatsapp(
        wa_text("wamid.A", "price?", phone=None, referral=referral),
        {"profile": {"name": "Uma", "username": "uma.k"}, "user_id": BSUID},
    )
    contacts = await env.until(env.crm, "/v1/contacts", lambda b: len(b["items"]) == 4)
    names = sorted(c["display_name"] for c in contacts["items"])
    assert names == ["Ada", "Owner", "Support", "Uma"]  # GroupAnonymousBot is nobody
    uma = next(c for c in contacts["items"] if c["display_name"] == "Uma")["id"]

    # later Uma writes with her phone beside the BSUID: the same person
    await env.whatsapp(
        wa_text("wamid.B", "I'll take two", phone=PHONE),
        {"profile": {"name": "Uma"}, "user_id": BSUID, "wa_id": PHONE},
    )

    def phone_linked(body: dict[str, Any]) -> bool:
        return any(i.get("phone") == PHONE for i in body["identities"])

    detail = await env.until(env.crm, f"/v1/contacts/{uma}", phone_linked)
    assert len(detail["leads"]) == 1
    inbox = await env.until(
        env.crm,
        "/v1/conversations",
        lambda b: any(c["chat_id"] == BSUID and c["message_count"] == 2 for c in b["items"]),
    )
    by_chat = {c["chat_id"]: c for c in inbox["items"]}
    assert by_chat[str(SUPER["id"])]["message_count"] == 2  # the join is not a message
    assert by_chat["555"]["message_count"] == 1  # the pin is not a message

    # the business answers Ada: her first response time runs from her message, not the pin
    bus = await Bus.connect(env.nats_url, name="producer")
    try:
        await bus.publish(
            text_send("reply-ada-1", "555", "Yes, we do."),
            workspace_id="demo",
        )
    finally:
        await bus.close()
    now = datetime.now(UTC)
    window = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }

    def answered(body: dict[str, Any]) -> bool:
        return any(c["first_reply_at"] for c in body["items"])

    frt = await env.until(env.analytics, "/v1/first-response/conversations", answered, **window)
    [ada] = [c for c in frt["items"] if c["channel"] == "telegram"]
    received = [
        d.model
        for d in await stream_messages(env.nats_url, "CONV", "conv.message_received.>")
        if isinstance(d.model, MessageReceived) and d.model.chat.id == "555"
    ]
    assert len(received) == 1  # the pin became a service event, not a message
    assert (ada["inbound"], ada["outbound"]) == (1, 1)
    assert datetime.fromisoformat(ada["first_in_at"]) == received[0].received_at

    # Uma's lead came from the ad; won, it is one business_messaging conversion with the click
    lead = (await env.get(env.crm, f"/v1/contacts/{uma}"))["leads"][0]
    full = await env.get(env.crm, f"/v1/leads/{lead['id']}")
    assert (full["referral_source"], full["referral_campaign"], full["click_id"]) == (
        "ad",
        "120208901234560001",
        CLICK,
    )
    r = await env.http.post(
        f"{env.crm}/v1/leads/{lead['id']}/stage", headers=AUTH, json={"to_stage": "won"}
    )
    assert r.status_code == 200, r.text

    async def reported() -> list[Any] | None:
        events = env.box.metacapi.events(PIXEL)
        return events or None

    [event] = await eventually(reported, timeout=30, message="the conversion at Meta")
    body = event.event
    assert (body["event_name"], body["action_source"], body["messaging_channel"]) == (
        "Purchase",
        "business_messaging",
        "whatsapp",
    )
    assert body["user_data"]["ctwa_clid"] == CLICK
    assert event.event_id == f"lead.{lead['id']}.won"
