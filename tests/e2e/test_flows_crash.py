"""Flows survive crashes without doubling or losing a step.

A decision recorded by an instance that died before carrying it out is carried out once by
the next delivery; conversations driven through two flows processes, one of them SIGKILLed
and restarted mid-way, each get every message exactly once and finish, a delay included.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.stack import API_KEY, keyring, service_env
from tests.support.telegram import text_update

from switchboard.events import encode
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.conv import MessageReceived
from switchboard.events.catalog.flows import FlowConversation
from switchboard.flows.app import create_app as flows_app
from switchboard.flows.document import validate
from switchboard.flows.engine import Input
from switchboard.flows.sessions import plan, session_filter, session_id
from switchboard.flows.settings import FlowsSettings
from switchboard.flows.triggers import Published
from switchboard.ingest.app import create_app as ingest_app
from switchboard.ingest.settings import IngestSettings
from switchboard.outbound.app import create_app as outbound_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.aggregates import append_expecting
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import free_port
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import ServiceProcess, eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TOKEN = "400000002:flows-crash"
SECRET = "flows-crash-secret"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
_updates = itertools.count(90_000)
# The full run is 500 conversations through 3 instances; the default keeps a shared
# two-core machine responsive.
CONVERSATIONS = int(os.environ.get("FLOWS_CRASH_CONVERSATIONS", "30"))
INSTANCES = 3

FLOW: dict[str, Any] = {
    "name": "Crash-proof quote",
    "triggers": [{"type": "start"}],
    "start": "greet",
    "steps": {
        "greet": {
            "type": "send",
            "text": "Hello!",
            "buttons": [[{"text": "Quote", "data": "quote", "next": "name"}]],
        },
        "name": {"type": "ask", "text": "Name?", "var": "name", "next": "phone"},
        "phone": {
            "type": "ask",
            "text": "Phone?",
            "var": "phone",
            "validate": "phone",
            "retry_text": "Phone, please?",
            "next": "pause",
        },
        "pause": {"type": "delay", "seconds": 1, "next": "bye"},
        "bye": {"type": "end", "text": "Thanks {{ vars.name }}"},
    },
}


@dataclass
class Env:
    box: Sandbox
    ingest: str
    http: httpx.AsyncClient
    nats_url: str

    async def webhook(self, update: dict[str, Any]) -> None:
        # As Telegram does, post again when the connection breaks (a kept-alive connection
        # closed by the server under load); ingest drops the repeat by its update_id.
        for attempt in range(3):
            try:
                r = await self.http.post(
                    f"{self.ingest}/webhooks/telegram/demo",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                )
            except httpx.TransportError:
                if attempt == 2:
                    raise
                continue
            assert r.status_code == 200, r.text
            return

    async def say(self, chat: int, text: str) -> None:
        await self.webhook(text_update(next(_updates), text, chat_id=chat))

    async def press(self, chat: int, data: str) -> None:
        update_id = next(_updates)
        message = {"message_id": 1, "chat": {"id": chat, "type": "private"}, "date": 0}
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

    def texts(self, chat: int) -> list[str]:
        return [m["text"] for m in self.box.telegram.messages(TOKEN, chat)]

    async def until(self, chat: int, count: int, timeout: float = 60) -> list[str]:
        async def probe() -> list[str] | None:
            found = self.texts(chat)
            return found if len(found) >= count else None

        return await eventually(probe, timeout=timeout, message=f"{count} messages in {chat}")


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "crash_bot")
    port = free_port()
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        for key, value in service_env(
            nats_url,
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
        await stack.enter_async_context(serve_app(outbound_app(load_settings(OutboundSettings))))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield Env(box, ingest, http, nats_url)


async def _publish_flow(http: httpx.AsyncClient, flows: str) -> str:
    r = await http.post(f"{flows}/v1/flows", json=FLOW, headers=AUTH)
    assert r.status_code == 201, r.text
    flow_id: str = r.json()["id"]
    r = await http.post(f"{flows}/v1/flows/{flow_id}/publish", headers=AUTH)
    assert r.status_code == 200, r.text
    return flow_id


async def _converse(env: Env, chat: int, greeted_after: list[float]) -> None:
    """A customer who answers each question once it arrives (one wrong phone number)."""
    started = time.monotonic()
    await env.say(chat, "/start")
    await env.until(chat, 1)
    greeted_after.append((time.monotonic() - started) * 1000)
    await env.press(chat, "quote")
    await env.until(chat, 2)
    await env.say(chat, f"Customer {chat}")
    await env.until(chat, 3)
    await env.say(chat, "not a number")
    await env.until(chat, 4)
    await env.say(chat, "+44 20 7946 0958")
    await env.until(chat, 5)


def _expected(chat: int) -> list[str]:
    return ["Hello!", "Name?", "Phone?", "Phone, please?", f"Thanks Customer {chat}"]


async def test_a_decision_recorded_before_a_crash_is_carried_out_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state a SIGKILL between recording a decision and acknowledging its input leaves
    behind: the decision is in FLOWS, its send never went out, the input is unacknowledged.
    The next instance to get the input sends the greeting, once; a redelivery sends nothing."""
    async with serve_app(flows_app(load_settings(FlowsSettings))) as flows:
        flow_id = await _publish_flow(env.http, flows)
    chat = 9001
    session = session_id("demo", Channel.TELEGRAM, "demo", str(chat))
    bus = await Bus.connect(env.nats_url, name="crashed-instance")
    try:
        # What the crashed instance did: decide on the /start it was handed and record it.
        inp = Input("text", "crashed-start", datetime.now(UTC), text="/start")
        conv = FlowConversation(
            channel=Channel.TELEGRAM, account="demo", chat_id=str(chat), sender_id=str(chat)
        )
        (record,) = plan(
            session=session,
            current=None,
            active_doc=None,
            published=[Published(flow_id, 1, validate(FLOW))],
            inp=inp,
            conversation=conv,
        )
        await append_expecting(
            bus, record, session_filter(session), 0, aggregate=session, workspace_id="demo"
        )
    finally:
        await bus.close()
    assert env.texts(chat) == []  # it died before sending
    # The input comes back to a live instance (here: published again with its id, as the
    # redelivery of the unacknowledged message would be).
    async with serve_app(flows_app(load_settings(FlowsSettings))):
        received = MessageReceived.model_validate(
            {
                "channel": "telegram",
                "account": "demo",
                "chat": {"id": str(chat)},
                "sender": {"id": str(chat), "first_name": "Ada"},
                "content": {"kind": "text", "text": "/start"},
                "provider": {"message_id": "1"},
                "sent_at": inp.at.isoformat(),
                "received_at": inp.at.isoformat(),
            }
        )
        bus = await Bus.connect(env.nats_url, name="redelivery")
        try:
            for n in range(2):  # delivered, then delivered again (same event id)
                enc = encode(received, source="test", id="crashed-start", workspace_id="demo")
                headers = {**enc.headers, "Nats-Msg-Id": f"delivery-{n}"}
                await bus.publish_raw(enc.subject, enc.body, headers)
                await env.until(chat, 1)
        finally:
            await bus.close()
        await env.press(chat, "quote")
        assert await env.until(chat, 2) == ["Hello!", "Name?"]
    assert env.texts(chat) == ["Hello!", "Name?"]


async def _timer_lateness_ms(http: httpx.AsyncClient, flows: str) -> list[float]:
    """Per run: from its delay's due time to the recorded decision that the delay elapsed."""
    runs = (await http.get(f"{flows}/v1/runs", params={"limit": 1000}, headers=AUTH)).json()
    out = []
    for run in runs["items"]:
        detail = (await http.get(f"{flows}/v1/runs/{run['id']}", headers=AUTH)).json()
        due = next(
            s["detail"]["due_at"]
            for h in detail["history"]
            for s in h["steps"]
            if s["outcome"] == "waiting"
        )
        fired = next(h["at"] for h in detail["history"] if h["input"]["kind"] == "timer")
        delta = datetime.fromisoformat(fired) - datetime.fromisoformat(due)
        out.append(delta.total_seconds() * 1000)
    return sorted(out)


async def test_conversations_complete_exactly_once_while_an_instance_is_killed(
    env: Env, tmp_path: Path
) -> None:
    environment = service_env(env.nats_url)
    procs = []
    for i in range(INSTANCES):
        port = free_port()
        procs.append(
            ServiceProcess(
                "switchboard.flows",
                {**environment, "SWITCHBOARD_FLOWS_HTTP_PORT": str(port)},
                tmp_path / f"flows{i}.log",
                port=port,
            ).start()
        )
    try:
        for proc in procs:
            await proc.ready(60)
        await _publish_flow(env.http, procs[1].url)
        chats = list(range(9100, 9100 + CONVERSATIONS))
        greeted_after: list[float] = []
        conversations = asyncio.gather(*(_converse(env, c, greeted_after) for c in chats))

        async def greeted(n: int) -> bool:
            return sum(1 for c in chats if env.texts(c)) >= n

        for wave in (10, 25):  # kill in the middle of the traffic, twice
            await eventually(lambda n=wave: greeted(n), timeout=60, message=f"{wave} greeted")
            procs[0].kill()
            procs[0].start()
            await procs[0].ready(60)
        await conversations
        for chat in chats:
            assert env.texts(chat) == _expected(chat), chat
        # Measured, not asserted (the machine's load decides): printed for the report.
        late = await _timer_lateness_ms(env.http, procs[1].url)
        assert len(late) == len(chats)
        print(
            f"flows_crash conversations={len(chats)} instances={INSTANCES} kills=2 "
            f"timer_lateness_ms p50={late[len(late) // 2]:.0f} max={late[-1]:.0f} "
            f"start_to_greeting_ms p50={statistics.median(greeted_after):.0f} "
            f"max={max(greeted_after):.0f}"
        )
    finally:
        for proc in procs:
            proc.stop()
