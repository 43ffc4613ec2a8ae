"""Flows end to end over real NATS and Postgres with the sandbox Telegram: a ``/start``
webhook makes the demo flow's greeting arrive at the sandbox with its two buttons; pressing
"Get a quote" and answering (a wrong phone number re-prompts) tags the contact and moves its
lead to ``qualified``; a delay fires through a JetStream message schedule."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.flow_docs import keyword_flow
from tests.support.flows import AUTH, FlowsEnv, flows_stack
from tests.support.stack import API_KEY, OTHER_KEY
from tests.support.streams import keep_only
from tests.support.webhooks import receiver

from switchboard.analytics.app import create_app as analytics_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events.catalog.conv import ContactStatusChanged, MessageReceived
from switchboard.flows import cli
from switchboard.flows.app import create_app as flows_app
from switchboard.flows.demo import DEMO_FLOW
from switchboard.flows.settings import FlowsSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.runtime.testing.dumps import stream_dump

pytestmark = pytest.mark.e2e
TOKEN = "400000001:flows-e2e"
SECRET = "flows-secret-1"
SIGNING = "whsec_" + base64.b64encode(b"flows-e2e-signing-secret-32bytes").decode()


@dataclass
class Env(FlowsEnv):
    flows: str = ""

    async def flow(self, doc: dict[str, Any]) -> str:
        return await self.publish_flow(self.flows, doc)


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    async with (
        flows_stack(
            nats_url,
            monkeypatch,
            token=TOKEN,
            secret=SECRET,
            postgres_url=postgres_url,
            SWITCHBOARD_FLOWS_WEBHOOK_SECRETS=f"demo/quotes={SIGNING}",
            SWITCHBOARD_FLOWS_WEBHOOK_PRIVATE="true",  # the test's receivers are local
        ) as base,
        serve_app(flows_app(load_settings(FlowsSettings))) as flows,
    ):
        yield Env(**vars(base), flows=flows)


async def _true(value: bool) -> bool | None:
    return value or None


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

    assert env.crm is not None

    async def greeting_in_crm() -> list[dict[str, Any]] | None:
        convs = (await env.http.get(f"{env.crm}/v1/conversations", headers=AUTH)).json()
        if not convs["items"]:
            return None
        url = f"{env.crm}/v1/conversations/{convs['items'][0]['id']}/messages"
        items: list[dict[str, Any]] = (await env.http.get(url, headers=AUTH)).json()["items"]
        return items if any(m["direction"] == "out" for m in items) else None

    shown = await eventually(greeting_in_crm, timeout=30, message="greeting in the CRM")
    assert [m["text"] for m in shown if m["direction"] == "out"] == [greeting["text"]]

    pressed = await env.press(chat, "quote")
    await env.until_sent(chat, 2)
    # The button stops spinning: the press is answered (answerCallbackQuery), once.
    await eventually(lambda: _true(env.answered(pressed)), timeout=30, message="answered")
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

    # What FLOWS keeps of the run names no one and holds nothing they said: sealed under
    # the customer's key, so their erasure reaches it (the API above read it opened).
    records = await stream_dump(env.nats_url, ("FLOWS",))
    assert "flows.run_recorded" in records
    # (quoted or spaced: a sealed value's base64 or a hash could hold "8101" by chance)
    for personal in ("Lovelace", "call me maybe", "+442079460958", '"Ada"', f'"{chat}"'):
        assert personal not in records, personal


async def test_an_erased_customers_run_is_gone_and_they_start_afresh(env: Env) -> None:
    """Erasing the customer shreds the key their run is sealed with: the run waiting for
    their name reads as erased, takes their next message for no one, and a new /start
    begins a new run."""
    await env.flow(DEMO_FLOW)
    chat = 8109
    await env.say(chat, "/start")
    await env.until_sent(chat, 1)
    await env.press(chat, "quote")
    assert (await env.until(chat, 2))[1] == "Happy to help. What is your name?"
    assert env.crm is not None

    async def contact() -> str | None:
        items = (await env.http.get(f"{env.crm}/v1/contacts", headers=AUTH)).json()["items"]
        return str(items[0]["id"]) if items else None

    erase = f"{env.crm}/v1/contacts/{await eventually(contact, timeout=30)}/erase"
    assert (await env.http.post(erase, headers=AUTH)).status_code == 200

    async def erased_run() -> dict[str, Any] | None:
        runs = (await env.http.get(f"{env.flows}/v1/runs", headers=AUTH)).json()["items"]
        return runs[0] if runs and runs[0]["conversation"]["first_name"] == "[erased]" else None

    run = await eventually(erased_run, timeout=30, message="the run reads as erased")
    assert run["status"] == "waiting"
    await env.say(chat, "Ada Lovelace")  # the answer the erased run waited for
    await env.say(chat, "/start")
    texts = await env.until(chat, 3)
    assert texts[2] == "Hi Ada! How can we help you today?"  # a new run, not "Thanks, Ada"
    runs = (await env.http.get(f"{env.flows}/v1/runs", headers=AUTH)).json()["items"]
    assert len(runs) == 2


async def test_talk_to_a_person_hands_off_and_pauses(env: Env) -> None:
    await env.flow(DEMO_FLOW)
    chat = 8102
    await env.say(chat, "/start")
    (_greeting,) = await env.until_sent(chat, 1)
    await env.press(chat, "person")
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
        keyword_flow(
            "Delayed",
            "later",
            wait={"type": "delay", "seconds": 2, "next": "hello"},
            hello={"type": "end", "text": "Two seconds later."},
        )
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
    (_greeting,) = await env.until_sent(chat, 1)
    changed = {**DEMO_FLOW, "steps": {**DEMO_FLOW["steps"], "ask_name": {
        "type": "ask", "text": "Revision two asks differently.", "var": "name"}}}  # fmt: skip
    r = await env.http.put(f"{env.flows}/v1/flows/{flow_id}", json=changed, headers=AUTH)
    assert r.status_code == 200, r.text
    r = await env.http.post(f"{env.flows}/v1/flows/{flow_id}/publish", headers=AUTH)
    assert r.json()["published_revision"] == 2
    await env.press(chat, "quote")
    sent = await env.until_sent(chat, 2)
    assert sent[1]["text"] == "Happy to help. What is your name?"  # still revision 1


async def test_a_webhook_step_calls_a_real_receiver_and_uses_its_answer(env: Env) -> None:
    """The call is signed (the receiver verifies it with the standardwebhooks library), its
    answer lands in variables; a receiver that fails sends the run to its failure branch."""
    async with receiver(SIGNING, {"quote": {"price": 42}}) as (url, seen):
        await env.flow(
            keyword_flow(
                "Price check",
                "price",
                ask={
                    "type": "webhook",
                    "url": url + "/quote",
                    "secret": "quotes",
                    "fields": {"said": "{{ message.text }}"},
                    "save": {"price": "quote.price"},
                    "next": "tell",
                    "on_failure": "sorry",
                },
                tell={"type": "end", "text": "The price is {{ vars.price }}."},
                sorry={"type": "end", "text": "No price right now."},
            )
        )
        await env.say(8105, "what is the price?")
        assert await env.until(8105, 1) == ["The price is 42."]
        (call,) = seen
        assert call["payload"]["data"]["fields"] == {"said": "what is the price?"}
        assert call["headers"]["webhook-id"].endswith(":1")  # the call's effect id
    # The receiver is gone now: the next run takes the failure branch.
    await env.say(8106, "price please")
    assert await env.until(8106, 1) == ["No price right now."]


def _price_check(url: str) -> dict[str, Any]:
    return keyword_flow(
        "Price check",
        "price",
        ask={"type": "webhook", "url": url, "secret": "quotes", "next": "tell"},
        tell={"type": "end", "text": "{{ vars.price }}"},
    )


async def test_a_webhook_step_signs_only_with_its_own_workspace_s_secrets(env: Env) -> None:
    """Signing secrets belong to a workspace (``demo/quotes=whsec_...``). A flow of another
    workspace naming ``quotes`` is refused when saved or validated (422 naming the step's
    secret), so it can never have demo's secret sign a payload and a URL of its choosing,
    which demo's receiver would take as demo's. Before, any workspace's flow signed with
    any secret of the deployment."""
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    doc = _price_check("https://receiver.example/quote")
    for path in ("/v1/flows", "/v1/flows/validate"):
        r = await env.http.post(f"{env.flows}{path}", json=doc, headers=other)
        assert r.status_code == 422, r.text
        assert [e["path"] for e in r.json()["errors"]] == ["body.steps.ask.secret"]
        assert "quotes" in r.json()["errors"][0]["message"]
    r = await env.http.post(f"{env.flows}/v1/flows", json=doc, headers=AUTH)
    assert r.status_code == 201, r.text  # demo's own secret


async def test_crm_facts_in_conditions_attributes_and_a_lead_stage_trigger(env: Env) -> None:
    """Branches read the contact's lead stage from the CRM, a step sets a contact attribute,
    and moving the lead in the CRM starts the flow that waits for that stage."""
    assert env.crm is not None
    await env.flow(
        keyword_flow(
            "Status",
            "status",
            check={
                "type": "branch",
                "cases": [{"when": {"type": "lead_stage", "stages": ["won"]}, "next": "yes"}],
                "default": "no",
            },
            yes={"type": "end", "text": "You are a customer."},
            no={"type": "set_attribute", "attributes": {"asked": "{{ message.text }}"},
                "next": "not_yet"},
            not_yet={"type": "end", "text": "Not yet."},
        )
    )  # fmt: skip
    await env.flow(
        {
            "name": "Won",
            "triggers": [{"type": "lead_stage", "stage": "won"}],
            "start": "congrats",
            "steps": {
                "congrats": {"type": "end", "text": "Welcome aboard, {{ contact.first_name }}!"}
            },
        }
    )  # fmt: skip
    chat = 8107
    await env.say(chat, "status?")
    assert await env.until(chat, 1) == ["Not yet."]

    async def lead() -> dict[str, Any] | None:
        items = (await env.http.get(f"{env.crm}/v1/leads", headers=AUTH)).json()["items"]
        return items[0] if items else None

    found = await eventually(lead, timeout=30, message="the contact's lead")

    async def asked() -> dict[str, Any] | None:
        url = f"{env.crm}/v1/contacts/{found['contact_id']}"
        body: dict[str, Any] = (await env.http.get(url, headers=AUTH)).json()
        return body if (body.get("attributes") or {}).get("asked") == "status?" else None

    await eventually(asked, timeout=30, message="the attribute set by the flow")
    r = await env.http.post(
        f"{env.crm}/v1/leads/{found['id']}/stage", json={"to_stage": "won"}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    assert (await env.until(chat, 2))[1] == "Welcome aboard, Ada!"
    await env.say(chat, "status now?")
    assert (await env.until(chat, 3))[2] == "You are a customer."


async def test_a_campaign_step_sends_to_a_crm_segment(env: Env) -> None:
    """The step's command goes to the CRM over the bus; the CRM expands the segment (the
    contacts tagged ``vip``) and outbound sends to each of them once."""
    await env.flow(
        {
            "name": "Broadcast",
            "triggers": [{"type": "command", "command": "broadcast"}],
            "start": "send",
            "steps": {
                "send": {
                    "type": "campaign",
                    "segment": {"channel": "telegram", "tags": ["vip"]},
                    "text": "A sale for our VIPs, from {{ contact.first_name }}.",
                    "next": "done",
                },
                "done": {"type": "end", "text": "Campaign started."},
            },
        }
    )
    await env.flow(
        keyword_flow(
            "Join",
            "join",
            tag={"type": "tag", "add": ["vip"], "next": "ok"},
            ok={"type": "end", "text": "You are in."},
        )
    )
    vips, other, manager = (8110, 8111), 8112, 8113
    for chat in vips:
        await env.say(chat, "join")
        await env.until(chat, 1)
    await env.say(other, "hello")
    assert env.crm is not None

    async def tagged() -> bool | None:
        # What the segment reads: the contacts' tags and their conversations (projected
        # apart, so both are waited for).
        r = await env.http.get(f"{env.crm}/v1/contacts", params={"tag": "vip"}, headers=AUTH)
        items = r.json()["items"]
        convs = (await env.http.get(f"{env.crm}/v1/conversations", headers=AUTH)).json()
        chats = {c.get("chat_id") for c in convs["items"]}
        both = {str(v) for v in vips} <= chats
        return (
            True
            if both and len([c for c in items if "vip" in (c.get("tags") or [])]) >= 2
            else None
        )

    await eventually(tagged, timeout=30, message="two vip contacts in the CRM")
    await env.say(manager, "/broadcast")
    assert await env.until(manager, 1) == ["Campaign started."]
    for chat in vips:
        texts = await env.until(chat, 2)
        assert texts == ["You are in.", "A sale for our VIPs, from Ada."]
    assert env.texts(other) == []
    assert env.texts(manager) == ["Campaign started."]  # not in the segment


async def test_a_send_step_sends_a_file_with_its_caption_and_buttons(env: Env) -> None:
    """A flow's send step carries any file kind by URL (issue #17: "send (any content kind
    with keyboards)"); it could send only a text. Its HTML caption reaches the bot as the
    words it shows (a caption goes without a parse mode)."""
    await env.flow(
        keyword_flow(
            "Catalog",
            "catalog",
            pdf={
                "type": "send",
                "media": {"kind": "document", "url": "https://cdn.example.com/catalog.pdf",
                          "file_name": "catalog.pdf"},
                "text": "<b>Our catalog</b>, {{ contact.first_name }}",
                "buttons": [[{"text": "Order", "data": "order"}]],
                "next": "photo",
            },
            photo={"type": "send", "media": {"kind": "photo",
                                             "url": "https://cdn.example.com/sofa.jpg"}},
        )
        # Telegram only: a Viber file message has no caption and states its size.
        | {"channels": [{"channel": "telegram"}]}
    )  # fmt: skip
    chat = 8120
    await env.say(chat, "catalog")
    document, photo = await env.until_sent(chat, 2)
    assert document["document"]["file_name"] == "catalog.pdf"
    assert document["caption"] == "<b>Our catalog</b>, Ada"  # the fake keeps what was sent
    (sent,) = env.box.recorder.requests(provider="telegram", method="sendDocument", ok=True)
    assert sent.params["parse_mode"] == "HTML"
    assert _buttons(document) == [("Order", "order")]
    assert "photo" in photo
    assert "caption" not in photo


async def test_the_bots_menu_follows_its_published_flows(env: Env) -> None:
    """Publishing the demo flow sets the demo bot's command menu (setMyCommands through
    outbound, recorded by the sandbox); archiving it clears the menu."""
    flow_id = await env.flow(DEMO_FLOW)

    async def menu_is(expected: list[dict[str, str]]) -> bool | None:
        return True if env.box.telegram.commands(TOKEN) == expected else None

    quote = [{"command": "quote", "description": "Get a quote or talk to a person"}]
    await eventually(lambda: menu_is(quote), timeout=30, message="the menu set")
    r = await env.http.post(f"{env.flows}/v1/flows/{flow_id}/archive", headers=AUTH)
    assert r.status_code == 200, r.text
    await eventually(lambda: menu_is([]), timeout=30, message="the menu cleared")
    calls = env.box.telegram.bot(TOKEN).command_calls
    assert [c["commands"] for c in calls] == [quote, []]  # each change once
    # The menu's command starts the flow it belongs to.
    await env.flow(DEMO_FLOW)
    await env.say(8114, "/quote")
    assert (await env.until(8114, 1))[0] == "Hi Ada! How can we help you today?"


async def test_the_flow_funnel_in_analytics(env: Env) -> None:
    """Analytics projects the run records: runs started, completed, handed off, and per step
    how many reached it and stopped there."""
    async with serve_app(analytics_app(load_settings(AnalyticsSettings))) as analytics:
        flow_id = await env.flow(DEMO_FLOW)
        quote, person, idle = 8120, 8121, 8122
        for chat in (quote, person, idle):
            await env.say(chat, "/start")
            await env.until(chat, 1)
        await env.press(quote, "quote")
        await env.until(quote, 2)
        await env.say(quote, "Ada")
        await env.until(quote, 3)
        await env.say(quote, "+44 20 7946 0958")
        await env.until(quote, 4)
        await env.press(person, "person")
        await env.until(person, 2)

        async def funnel() -> dict[str, Any] | None:
            r = await env.http.get(
                f"{analytics}/v1/flows/funnel", params={"flow": flow_id}, headers=AUTH
            )
            assert r.status_code == 200, r.text
            flows = r.json()["flows"]
            done = flows and flows[0]["completed"] == 1 and flows[0]["handed_off"] == 1
            return flows[0] if done else None

        found = await eventually(funnel, timeout=60, message="the funnel")
        assert found["name"] == DEMO_FLOW["name"]
        assert (found["runs_started"], found["completed"], found["handed_off"]) == (3, 1, 1)
        steps = {s["step"]: (s["reached"], s["dropped"]) for s in found["steps"]}
        assert steps == {
            "greet": (3, 1),  # the idle customer never pressed a button
            "ask_name": (1, 0),
            "ask_phone": (1, 0),
            "tag": (1, 0),
            "qualify": (1, 0),
            "thanks": (1, 0),
            "handoff": (1, 1),  # with a person: not completed
        }
        assert found["steps"][0]["step"] == "greet"  # the most reached first
        bad = await env.http.get(
            f"{analytics}/v1/flows/funnel", params={"stage": "x"}, headers=AUTH
        )
        assert bad.status_code == 400
        page = await env.http.get(f"{analytics}/", headers=AUTH)
        assert page.status_code == 200
        assert 'id="chart-flow_funnel"' in page.text
        assert "greet 3/1" in page.text


async def test_viber_conversation_started_and_a_whatsapp_ad_referral_start_their_flows(
    env: Env,
) -> None:
    """The conversation events as ingest normalizes them (stored in CONV here): a Viber
    chat opened with a context, and a WhatsApp message that came from an ad."""
    opened = await env.flow(
        {
            "name": "Opened",
            "triggers": [{"type": "conversation_started", "context": "promo"}],
            "start": "hi",
            "steps": {"hi": {"type": "end", "text": "Welcome from the promo."}},
        }
    )
    from_ad = await env.flow(
        {
            "name": "From the ad",
            "triggers": [{"type": "referral", "source": "ad", "campaign": "ad-7"}],
            "start": "hi",
            "steps": {
                "hi": {
                    "type": "end",
                    "text": "Thanks for clicking our ad, {{ contact.first_name }}.",
                }
            },
        }
    )
    now = datetime.now(UTC).isoformat()
    viber = ContactStatusChanged.model_validate(
        {
            "channel": "viber", "account": "vb", "chat": {"id": "v-1"},
            "provider": {"message_id": "tok-1"}, "received_at": now, "at": now,
            "sender": {"id": "v-1", "display_name": "Ada"}, "status": "conversation_started",
            "referral": {"source": "deep_link", "campaign": "promo"},
        }
    )  # fmt: skip
    whatsapp = MessageReceived.model_validate(
        {
            "channel": "whatsapp", "account": "wa", "chat": {"id": "4915112345678"},
            # as ingest normalizes WhatsApp: the profile's one name, no first name
            "sender": {"id": "4915112345678", "display_name": "Ada Lovelace"},
            "content": {"kind": "text", "text": "Hi, is this available?"},
            "provider": {"message_id": "wamid.1"}, "sent_at": now, "received_at": now,
            "referral": {"source": "ad", "campaign": "ad-7", "click_id": "clid"},
        }
    )  # fmt: skip
    bus = await Bus.connect(env.nats_url, name="conv-events")
    try:
        for ev in (viber, whatsapp):
            await bus.publish(ev, workspace_id="demo")
    finally:
        await bus.close()

    async def started() -> dict[str, dict[str, Any]] | None:
        r = await env.http.get(f"{env.flows}/v1/runs", headers=AUTH)
        runs = {run["flow_id"]: run for run in r.json()["items"]}
        return runs if {opened, from_ad} <= set(runs) else None

    runs = await eventually(started, timeout=30, message="both flows started")
    viber_run, ad_run = runs[opened], runs[from_ad]
    assert (viber_run["conversation"]["channel"], ad_run["conversation"]["channel"]) == (
        "viber", "whatsapp")  # fmt: skip
    # {{ contact.first_name }} on WhatsApp is the profile's name (it was empty: "Hi !").
    assert ad_run["conversation"]["first_name"] == "Ada Lovelace"
    r = await env.http.get(f"{env.flows}/v1/runs/{ad_run['id']}", headers=AUTH)
    (sent,) = [e for h in r.json()["history"] for e in h["effects"] if e["kind"] == "send"]
    assert sent["data"]["text"] == "Thanks for clicking our ad, Ada Lovelace."


# A keyword flow: a chat that says "hello" has talked with flows (a schedule's scope).
HELLO_FLOW = keyword_flow("Hello", "hello", hi={"type": "end", "text": "Hello!"})


def news_flow(name: str, at: datetime, text: str) -> dict[str, Any]:
    """A flow its schedule trigger starts at ``at``: it says ``text`` and ends."""
    return {
        "name": name,
        "triggers": [{"type": "schedule", "at": at.isoformat()}],
        "start": "news",
        "steps": {"news": {"type": "end", "text": text}},
    }


async def test_a_schedule_starts_its_flow_in_the_conversations_flows_knows(env: Env) -> None:
    """A JetStream message schedule fires the trigger at its time: the flow starts in each
    conversation that had a run and runs none now (not in one that still waits)."""
    await env.flow(HELLO_FLOW)
    await env.flow(DEMO_FLOW)
    done, waiting = 8130, 8131
    await env.say(done, "hello")
    assert await env.until(done, 1) == ["Hello!"]
    await env.say(waiting, "/start")  # waits for a button: not interrupted
    await env.until(waiting, 1)
    at = datetime.now(UTC) + timedelta(seconds=3)
    await env.flow(news_flow("Morning news", at, "Scheduled news."))
    assert (await env.until(done, 2))[1] == "Scheduled news."
    assert len(env.sent(waiting)) == 1


async def test_a_schedule_due_after_its_stream_would_drop_it_still_fires_once(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLOW_TIMERS drops a message 90 days after it was stored, a schedule too: a trigger
    whose first fire was further ahead never fired. Here the stream keeps a message 3 s and
    the hop is 1 s: the trigger's schedule is held again and again and fires once."""
    async with (
        flows_stack(
            nats_url, monkeypatch, token=TOKEN, secret=SECRET, postgres_url=postgres_url,
            SWITCHBOARD_FIRE_HOP_S="1",
        ) as base,
        serve_app(flows_app(load_settings(FlowsSettings))) as flows,
    ):  # fmt: skip
        env = Env(**vars(base), flows=flows)
        await env.flow(HELLO_FLOW)
        chat = 8135
        await env.say(chat, "hello")
        assert await env.until(chat, 1) == ["Hello!"]
        bus = await Bus.connect(nats_url, name="test")
        await keep_only(bus, "FLOW_TIMERS", 3.0)
        await bus.close()
        at = datetime.now(UTC) + timedelta(seconds=7)
        await env.flow(news_flow("Later news", at, "Held news."))
        news = (await env.until_sent(chat, 2, timeout=60))[1]
        assert news["text"] == "Held news."
        assert news["date"] >= int(at.timestamp())  # not early: at its time, after the hops
        assert env.texts(chat).count("Held news.") == 1


async def test_a_lead_step_creates_a_new_lead_once_and_moves_that_one(env: Env) -> None:
    """``create`` opens a second lead for the contact through ``crm.create_lead`` (its id
    derived from the run's effect) and the run's later ``move_stage`` moves that lead, not
    the contact's first one."""
    assert env.crm is not None
    await env.flow(
        keyword_flow(
            "Deal",
            "deal",
            open={"type": "lead", "action": "create", "stage": "new", "next": "win"},
            win={"type": "lead", "action": "move_stage", "stage": "won", "next": "bye"},
            bye={"type": "end", "text": "{{ vars.lead_id }}"},
        )
    )
    chat = 8140
    await env.say(chat, "deal")
    created = (await env.until(chat, 1))[0]
    assert created.startswith("ld_")

    async def both() -> list[dict[str, Any]] | None:
        r = await env.http.get(f"{env.crm}/v1/leads", headers=AUTH)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        mine = [i for i in items if i["id"] == created]
        if not mine or mine[0]["stage"] != "won":
            return None
        return [i for i in items if i["contact_id"] == mine[0]["contact_id"]]

    leads = await eventually(both, timeout=30, message="the created lead, won")
    # The contact's first lead (opened by the CRM on the first message) and the created one.
    assert sorted(i["id"] == created for i in leads) == [False, True]
    assert [i["stage"] for i in leads if i["id"] != created] == ["new"]


async def test_a_schedule_with_a_segment_starts_its_flow_in_the_crm_segment(env: Env) -> None:
    """A schedule trigger with a segment: at its time flows asks the CRM (``crm.start_flow``),
    the CRM expands the segment (contacts tagged ``vip``) and hands the conversations back
    (``flows.start_runs``): the flow starts in a tagged conversation flows never talked
    with, and not in an untagged one."""
    assert env.crm is not None
    vip, other = 8150, 8151
    await env.say(vip, "hi")  # no flow answers: only the CRM knows these conversations
    await env.say(other, "hi")

    async def contact_of(chat: int) -> str | None:
        r = await env.http.get(f"{env.crm}/v1/conversations", headers=AUTH)
        assert r.status_code == 200, r.text
        found = [c for c in r.json()["items"] if c.get("chat_id") == str(chat)]
        return found[0].get("contact_id") if found else None

    contact = await eventually(lambda: contact_of(vip), timeout=30, message="vip's contact")
    await eventually(lambda: contact_of(other), timeout=30, message="other's contact")
    r = await env.http.post(
        f"{env.crm}/v1/contacts/{contact}", json={"tags_added": ["vip"]}, headers=AUTH
    )
    assert r.status_code == 200, r.text

    async def tagged() -> bool | None:
        r = await env.http.get(f"{env.crm}/v1/contacts", params={"tag": "vip"}, headers=AUTH)
        return True if [c for c in r.json()["items"] if c["id"] == contact] else None

    await eventually(tagged, timeout=30, message="the vip tag in the CRM projection")
    at = datetime.now(UTC) + timedelta(seconds=3)
    await env.flow(
        {
            "name": "VIP news",
            "triggers": [
                {
                    "type": "schedule",
                    "at": at.isoformat(),
                    "segment": {"channel": "telegram", "tags": ["vip"]},
                }
            ],
            "start": "news",
            "steps": {"news": {"type": "end", "text": "News for our VIPs."}},
        }
    )
    assert await env.until(vip, 1) == ["News for our VIPs."]
    assert env.texts(other) == []


async def test_a_publish_says_which_published_flow_already_holds_its_trigger(env: Env) -> None:
    """Two flows on one keyword were both published with a plain 200, and one of them never
    started; the second publish now lists the trigger and the flow that holds it."""
    ids = []
    try:
        for name in ("First on the keyword", "Second on the keyword"):
            doc = {"name": name, "triggers": [{"type": "keyword", "keywords": ["Overlapcheck"]}],
                   "start": "a", "steps": {"a": {"type": "end", "text": name}}}  # fmt: skip
            r = await env.http.post(f"{env.flows}/v1/flows", json=doc, headers=AUTH)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            r = await env.http.post(f"{env.flows}/v1/flows/{ids[-1]}/publish", headers=AUTH)
            assert r.status_code == 200, r.text
            if len(ids) == 1:
                assert "overlaps" not in r.json(), r.text
        assert r.json()["overlaps"] == [{"trigger": "keyword:overlapcheck", "flow_id": ids[0]}]
    finally:
        for flow_id in ids:  # the module's other tests see only the demo flow's triggers
            await env.http.post(f"{env.flows}/v1/flows/{flow_id}/archive", headers=AUTH)
