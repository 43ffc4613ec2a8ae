"""Flows end to end over real NATS and Postgres with the sandbox Telegram: a ``/start``
webhook makes the demo flow's greeting arrive at the sandbox with its two buttons; pressing
"Get a quote" and answering (a wrong phone number re-prompts) tags the contact and moves its
lead to ``qualified``; a delay fires through a JetStream message schedule."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.support.stack import API_KEY, OTHER_KEY, keyring, service_env
from tests.support.telegram import text_update

from switchboard.crm.app import create_app as crm_app
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel
from switchboard.flows import cli
from switchboard.flows.app import create_app as flows_app
from switchboard.flows.demo import DEMO_FLOW
from switchboard.flows.settings import FlowsSettings
from switchboard.ingest.app import create_app as ingest_app
from switchboard.ingest.settings import IngestSettings
from switchboard.outbound.app import create_app as outbound_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import free_port
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = pytest.mark.e2e
TOKEN = "400000001:flows-e2e"
SECRET = "flows-secret-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
_updates = itertools.count(70_000)


@dataclass
class Env:
    box: Sandbox
    ingest: str
    crm: str
    flows: str
    http: httpx.AsyncClient

    async def webhook(self, update: dict[str, Any]) -> None:
        r = await self.http.post(
            f"{self.ingest}/webhooks/telegram/demo",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        )
        assert r.status_code == 200, r.text

    async def say(self, chat: int, text: str) -> None:
        await self.webhook(text_update(next(_updates), text, chat_id=chat))

    async def press(self, chat: int, data: str, message: dict[str, Any]) -> None:
        update_id = next(_updates)
        await self.webhook(
            {
                "update_id": update_id,
                "callback_query": {
                    "id": f"cb{update_id}",
                    "from": {"id": chat, "is_bot": False, "first_name": "Ada"},
                    "message": message,
                    "chat_instance": "1",
                    "data": data,
                },
            }
        )

    def sent(self, chat: int) -> list[dict[str, Any]]:
        return self.box.telegram.messages(TOKEN, chat)

    async def until_sent(self, chat: int, count: int) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            found = self.sent(chat)
            return found if len(found) >= count else None

        return await eventually(probe, timeout=30, message=f"{count} messages in chat {chat}")

    async def flow(self, doc: dict[str, Any]) -> str:
        r = await self.http.post(f"{self.flows}/v1/flows", json=doc, headers=AUTH)
        assert r.status_code == 201, r.text
        flow_id: str = r.json()["id"]
        r = await self.http.post(f"{self.flows}/v1/flows/{flow_id}/publish", headers=AUTH)
        assert r.status_code == 200, r.text
        return flow_id


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "flows_bot")
    port = free_port()
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        for key, value in service_env(
            nats_url,
            postgres_url,
            SWITCHBOARD_INGEST_PUBLIC_URL=f"http://127.0.0.1:{port}",
            SWITCHBOARD_OUTBOUND_BACKOFF_BASE_S=0.1,
        ).items():
            monkeypatch.setenv(key, value)
        bus = await Bus.connect(nats_url, name="setup")
        await bus.provision()
        await AccountStore(await bus.kv("accounts"), keyring()).put(
            Account(
                channel=Channel.TELEGRAM,
                id="demo",
                workspace_id="demo",
                settings={"api_base_url": f"{sandbox}/telegram"},
                secrets={"token": TOKEN, "webhook_secret": SECRET},
            )
        )
        await bus.close()
        ingest = await stack.enter_async_context(
            serve_app(ingest_app(load_settings(IngestSettings)), port=port)
        )
        crm = await stack.enter_async_context(serve_app(crm_app(load_settings(CrmSettings))))
        await stack.enter_async_context(serve_app(outbound_app(load_settings(OutboundSettings))))
        flows = await stack.enter_async_context(serve_app(flows_app(load_settings(FlowsSettings))))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield Env(box, ingest, crm, flows, http)


def _buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def test_start_greets_and_a_quote_reaches_qualified(env: Env) -> None:
    await env.flow(DEMO_FLOW)
    chat = 8101
    await env.say(chat, "/start")
    (greeting,) = await env.until_sent(chat, 1)
    assert greeting["text"] == "Hi Ada! How can we help you today?"
    assert _buttons(greeting) == [("Get a quote", "quote"), ("Talk to a person", "person")]

    async def greeting_in_crm() -> list[dict[str, Any]] | None:
        convs = (await env.http.get(f"{env.crm}/v1/conversations", headers=AUTH)).json()
        if not convs["items"]:
            return None
        url = f"{env.crm}/v1/conversations/{convs['items'][0]['id']}/messages"
        items: list[dict[str, Any]] = (await env.http.get(url, headers=AUTH)).json()["items"]
        return items if any(m["direction"] == "out" for m in items) else None

    shown = await eventually(greeting_in_crm, timeout=30, message="greeting in the CRM")
    assert [m["text"] for m in shown if m["direction"] == "out"] == [greeting["text"]]

    await env.press(chat, "quote", greeting)
    await env.until_sent(chat, 2)
    await env.say(chat, "Ada <Lovelace>")
    await env.until_sent(chat, 3)
    await env.say(chat, "call me maybe")  # not a phone number: asked again
    await env.until_sent(chat, 4)
    await env.say(chat, "+44 20 7946 0958")
    texts = [m["text"] for m in await env.until_sent(chat, 5)]
    assert texts[1:] == [
        "Happy to help. What is your name?",
        # Sent with parse_mode HTML: the customer's "<Lovelace>" is escaped, shown as typed.
        "Thanks, Ada &lt;Lovelace&gt;. Which phone number can we call, with country code?",
        "That does not look like a phone number. Please send it with the country code, "
        "for example +44 20 7946 0958.",
        "Thank you, Ada &lt;Lovelace&gt;! We will call you at +442079460958 shortly.",
    ]

    async def qualified() -> dict[str, Any] | None:
        r = await env.http.get(f"{env.crm}/v1/leads", headers=AUTH)
        leads = r.json()["items"]
        return leads[0] if leads and leads[0]["stage"] == "qualified" else None

    lead = await eventually(qualified, timeout=30, message="lead qualified")

    async def tagged() -> dict[str, Any] | None:
        r = await env.http.get(f"{env.crm}/v1/contacts/{lead['contact_id']}", headers=AUTH)
        body: dict[str, Any] = r.json()
        return body if "quote-request" in (body.get("tags") or []) else None

    await eventually(tagged, timeout=30, message="contact tagged")

    runs = (await env.http.get(f"{env.flows}/v1/runs", headers=AUTH)).json()["items"]
    (run,) = runs
    assert run["status"] == "ended"
    assert run["variables"] == {"name": "Ada <Lovelace>", "phone": "+442079460958"}
    detail = (await env.http.get(f"{env.flows}/v1/runs/{run['id']}", headers=AUTH)).json()
    assert [h["input"]["kind"] for h in detail["history"]] == [
        "start:start",
        "button",
        "text",
        "text",
        "text",
    ]
    assert len(env.sent(chat)) == 5  # every step's message exactly once


async def test_talk_to_a_person_hands_off_and_pauses(env: Env) -> None:
    await env.flow(DEMO_FLOW)
    chat = 8102
    await env.say(chat, "/start")
    (greeting,) = await env.until_sent(chat, 1)
    await env.press(chat, "person", greeting)
    sent = await env.until_sent(chat, 2)
    assert sent[1]["text"] == "A person will answer you here shortly."
    await env.say(chat, "hello?")  # the flow is paused: a person answers, not the bot

    async def handed_off() -> dict[str, Any] | None:
        runs = (await env.http.get(f"{env.flows}/v1/runs", headers=AUTH)).json()["items"]
        return runs[0] if runs and runs[0]["status"] == "handed_off" else None

    run = await eventually(handed_off, timeout=30, message="run handed off")
    assert run["current_step"] == "handoff"
    assert len(env.sent(chat)) == 2
    # The person is done: the run goes on after its hand-off step (here: the end).
    url = f"{env.flows}/v1/runs/{run['id']}/release"
    released = await env.http.post(url, headers=AUTH)
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "ended"
    assert (await env.http.post(url, headers=AUTH)).status_code == 409
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert (await env.http.post(url, headers=other)).status_code == 404  # another workspace's


async def test_a_delay_fires_from_a_message_schedule(env: Env) -> None:
    await env.flow(
        {
            "name": "Delayed",
            "triggers": [{"type": "keyword", "keywords": ["later"]}],
            "start": "wait",
            "steps": {
                "wait": {"type": "delay", "seconds": 2, "next": "hello"},
                "hello": {"type": "end", "text": "Two seconds later."},
            },
        }
    )
    chat = 8103
    await env.say(chat, "tell me later")
    (message,) = await env.until_sent(chat, 1)
    assert message["text"] == "Two seconds later."
    runs = (await env.http.get(f"{env.flows}/v1/runs", headers=AUTH)).json()["items"]
    detail = (await env.http.get(f"{env.flows}/v1/runs/{runs[0]['id']}", headers=AUTH)).json()
    outcomes = [(s["step"], s["outcome"]) for h in detail["history"] for s in h["steps"]]
    assert outcomes == [("wait", "waiting"), ("wait", "elapsed"), ("hello", "ended")]


async def test_the_demo_flow_is_published_once_by_the_cli(env: Env) -> None:
    """What `just up` runs: publishing the demo twice leaves one published flow."""
    args = ["--url", env.flows, "--api-key", API_KEY, "demo"]
    assert await asyncio.to_thread(cli.main, args) == 0
    assert await asyncio.to_thread(cli.main, args) == 0
    items = (await env.http.get(f"{env.flows}/v1/flows", headers=AUTH)).json()["items"]
    assert [(f["name"], f["status"], f["published_revision"]) for f in items] == [
        (DEMO_FLOW["name"], "published", 1)
    ]


async def test_invalid_documents_get_422_with_every_path_and_the_schema_is_published(
    env: Env,
) -> None:
    schema = await env.http.get(f"{env.flows}/v1/flows/schema", headers=AUTH)
    assert schema.status_code == 200
    assert "steps" in schema.json()["properties"]
    bad = {**DEMO_FLOW, "start": "nowhere", "triggers": [{"type": "start", "payload": 5}]}
    r = await env.http.post(f"{env.flows}/v1/flows", json=bad, headers=AUTH)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_flow"
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"body.triggers[0].payload"}  # structure first; references once it parses
    bad["triggers"] = [{"type": "start"}]
    r = await env.http.post(f"{env.flows}/v1/flows", json=bad, headers=AUTH)
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["body.start"]
    assert (await env.http.post(f"{env.flows}/v1/flows", json=DEMO_FLOW)).status_code == 401
    # another workspace's flow does not exist for it
    flow_id = await env.flow(DEMO_FLOW)
    # a dry run answers each input's decision and sends nothing
    script = {"transcript": [{"button": "quote"}, {"text": "Ada"}]}
    r = await env.http.post(f"{env.flows}/v1/flows/{flow_id}/dry-run", json=script, headers=AUTH)
    assert r.status_code == 200, r.text
    assert [d["current_step"] for d in r.json()["decisions"]] == ["greet", "ask_name", "ask_phone"]
    r = await env.http.post(
        f"{env.flows}/v1/flows/{flow_id}/dry-run", json={"transcript": [{}]}, headers=AUTH
    )
    assert r.status_code == 422
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert (await env.http.get(f"{env.flows}/v1/flows/{flow_id}", headers=other)).status_code == 404
    # a running conversation stays on the revision it started with
    chat = 8104
    await env.say(chat, "/start")
    (greeting,) = await env.until_sent(chat, 1)
    changed = {**DEMO_FLOW, "steps": {**DEMO_FLOW["steps"], "ask_name": {
        "type": "ask", "text": "Revision two asks differently.", "var": "name"}}}  # fmt: skip
    r = await env.http.put(f"{env.flows}/v1/flows/{flow_id}", json=changed, headers=AUTH)
    assert r.status_code == 200, r.text
    r = await env.http.post(f"{env.flows}/v1/flows/{flow_id}/publish", headers=AUTH)
    assert r.json()["published_revision"] == 2
    await env.press(chat, "quote", greeting)
    sent = await env.until_sent(chat, 2)
    assert sent[1]["text"] == "Happy to help. What is your name?"  # still revision 1
