"""The stack the flows e2e, crash and benchmark runs share: the sandbox Telegram with one
bot, ingest and outbound (and the CRM when Postgres is given) in process, a Telegram
account ``demo`` of workspace ``demo``, and a customer's side of the conversation."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from switchboard.crm.app import create_app as crm_app
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel
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
from tests.support.stack import API_KEY, keyring, service_env
from tests.support.telegram import text_update

AUTH = {"Authorization": f"Bearer {API_KEY}"}
_updates = itertools.count(70_000)


@dataclass
class FlowsEnv:
    """The customer's side (webhooks into ingest) and what the bot sent (the sandbox)."""

    box: Sandbox
    token: str
    secret: str
    ingest: str
    crm: str | None
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
                    headers={"X-Telegram-Bot-Api-Secret-Token": self.secret},
                )
            except httpx.TransportError:
                if attempt == 2:
                    raise
                continue
            assert r.status_code == 200, r.text
            return

    async def say(self, chat: int, text: str) -> None:
        await self.webhook(text_update(next(_updates), text, chat_id=chat))

    async def press(self, chat: int, data: str) -> str:
        """Press the button carrying ``data`` under the bot's latest message that has one,
        as the sandbox's user does (so answerCallbackQuery can answer it); the query id."""
        message = next(
            m
            for m in reversed(self.sent(chat))
            for row in m.get("reply_markup", {}).get("inline_keyboard", [])
            for b in row
            if b.get("callback_data") == data
        )
        query = await self.box.telegram.press_button(self.token, chat, message["message_id"], data)
        await self.webhook({"update_id": next(_updates), "callback_query": query})
        return str(query["id"])

    def answered(self, query_id: str) -> bool:
        """Whether the bot answered this callback query (answerCallbackQuery)."""
        return bool(self.box.telegram.bot(self.token).callbacks.get(query_id))

    def sent(self, chat: int) -> list[dict[str, Any]]:
        return self.box.telegram.messages(self.token, chat)

    def texts(self, chat: int) -> list[str]:
        return [m["text"] for m in self.sent(chat)]

    async def until_sent(self, chat: int, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            found = self.sent(chat)
            return found if len(found) >= count else None

        return await eventually(probe, timeout=timeout, message=f"{count} messages in {chat}")

    async def until(self, chat: int, count: int, timeout: float = 60) -> list[str]:
        return [m["text"] for m in await self.until_sent(chat, count, timeout)]

    async def publish_flow(self, flows: str, doc: dict[str, Any]) -> str:
        """Create and publish a flow on the flows API at ``flows``; its id."""
        r = await self.http.post(f"{flows}/v1/flows", json=doc, headers=AUTH)
        assert r.status_code == 201, r.text
        flow_id: str = r.json()["id"]
        r = await self.http.post(f"{flows}/v1/flows/{flow_id}/publish", headers=AUTH)
        assert r.status_code == 200, r.text
        return flow_id


@asynccontextmanager
async def flows_stack(
    nats_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    token: str,
    secret: str,
    postgres_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[FlowsEnv]:
    """The stack, with ``SWITCHBOARD_*`` settings in the environment for flows instances
    started later (in process or as processes: ``service_env`` has the same)."""
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(token, "flows_bot")
    port = free_port()
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        for key, value in service_env(
            nats_url,
            postgres_url,
            SWITCHBOARD_INGEST_PUBLIC_URL=f"http://127.0.0.1:{port}",
            SWITCHBOARD_OUTBOUND_BACKOFF_BASE_S=0.1,
            **settings,
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
                secrets={"token": token, "webhook_secret": secret},
            )
        )
        await bus.close()
        ingest = await stack.enter_async_context(
            serve_app(ingest_app(load_settings(IngestSettings)), port=port)
        )
        crm = None
        if postgres_url:
            crm = await stack.enter_async_context(serve_app(crm_app(load_settings(CrmSettings))))
        await stack.enter_async_context(serve_app(outbound_app(load_settings(OutboundSettings))))
        # Hundreds of customers at once share the pool: they wait for a connection as long
        # as it takes (bounded load), each request itself has its timeout.
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, pool=None),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        )
        yield FlowsEnv(box, token, secret, ingest, crm, http, nats_url)
