"""One workspace's slow webhook receiver cannot stop another workspace's flows: a
workspace's webhook calls hold at most a quarter of an instance's handlers
(``FLOWS_CONCURRENCY``); its other inputs are handed back to the stream and come again.
Before, a tenant's receiver that answered slowly (a step waits up to 8 s) held every
handler, and every other workspace's runs waited behind it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks import Webhook
from tests.support.flows import AUTH, FlowsEnv, flows_stack
from tests.support.stack import OTHER_KEY, keyring
from tests.support.telegram import text_update

from switchboard.events.catalog.common import Channel
from switchboard.flows.app import create_app as flows_app
from switchboard.flows.settings import FlowsSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.runtime.testing.receivers import webhook_receiver

pytestmark = pytest.mark.e2e
TOKEN = "400000002:flows-fair-demo"
SECRET = "flows-fair-secret-demo"
OTHER_TOKEN = "400000003:flows-fair-other"
OTHER_SECRET = "flows-fair-secret-other"
SIGNING = "whsec_" + base64.b64encode(b"flows-fairness-signing-secret-32").decode()
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}


@pytest.fixture
async def env(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FlowsEnv, str]]:
    async with flows_stack(
        nats_url,
        monkeypatch,
        token=TOKEN,
        secret=SECRET,
        SWITCHBOARD_FLOWS_CONCURRENCY="4",  # a quarter: one call of a workspace at a time
        SWITCHBOARD_FLOWS_WEBHOOK_SECRETS=f"demo/slow={SIGNING}",
        SWITCHBOARD_FLOWS_WEBHOOK_PRIVATE="true",  # the test's receiver is local
    ) as base:
        base.box.telegram.add_bot(OTHER_TOKEN, "fair_other_bot")
        bus = await Bus.connect(nats_url, name="setup-other")
        try:
            store = AccountStore(await bus.kv("accounts"), keyring())
            demo = await store.get(Channel.TELEGRAM, "demo")
            assert demo is not None
            await store.put(
                Account(
                    channel=Channel.TELEGRAM, id="otherbot", workspace_id="other",
                    settings=demo.settings,
                    secrets={"token": OTHER_TOKEN, "webhook_secret": OTHER_SECRET},
                )
            )  # fmt: skip
        finally:
            await bus.close()
        async with serve_app(flows_app(load_settings(FlowsSettings))) as flows:
            yield base, flows


async def say_other(env: FlowsEnv, chat: int, text: str, update_id: int) -> None:
    """A customer writes to workspace other's bot (once ingest knows the account)."""

    async def accepted() -> bool:
        r = await env.http.post(
            f"{env.ingest}/webhooks/telegram/otherbot",
            json=text_update(update_id, text, chat_id=chat),
            headers={"X-Telegram-Bot-Api-Secret-Token": OTHER_SECRET},
        )
        return r.status_code == 200

    await eventually(accepted, timeout=30, message="ingest knows the other bot")


async def publish(env: FlowsEnv, flows: str, doc: dict[str, Any], auth: dict[str, str]) -> None:
    r = await env.http.post(f"{flows}/v1/flows", json=doc, headers=auth)
    assert r.status_code == 201, r.text
    r = await env.http.post(f"{flows}/v1/flows/{r.json()['id']}/publish", headers=auth)
    assert r.status_code == 200, r.text


async def test_a_slow_receiver_of_one_workspace_leaves_the_others_flows_running(
    env: tuple[FlowsEnv, str],
) -> None:
    base, flows = env
    release = asyncio.Event()

    async def slow(_path: str, _payload: Any) -> tuple[int, dict[str, Any]]:
        await release.wait()
        return 200, {"ok": True}

    async with webhook_receiver(Webhook(SIGNING).verify, slow) as (url, seen):
        await publish(base, flows, {
            "name": "Slow lookup",
            "triggers": [{"type": "keyword", "keywords": ["slow"]}],
            "start": "ask",
            "steps": {
                "ask": {"type": "webhook", "url": url + "/lookup", "secret": "slow",
                        "timeout_s": 8, "next": "done", "on_failure": "failed"},
                "done": {"type": "end", "text": "done"},
                "failed": {"type": "end", "text": "failed"},
            },
        }, AUTH)  # fmt: skip
        await publish(base, flows, {
            "name": "Hello",
            "triggers": [{"type": "keyword", "keywords": ["hello"]}],
            "start": "hi",
            "steps": {"hi": {"type": "end", "text": "hi from other"}},
        }, OTHER)  # fmt: skip
        demo_chats = [9301 + i for i in range(6)]  # more than the instance's 4 handlers
        for chat in demo_chats:
            await base.say(chat, "slow please")

        async def waiting() -> bool:
            return len(seen) >= 1  # demo's first call is at the receiver, held there

        await eventually(waiting, timeout=30, message="demo's first call arrived")
        await say_other(base, 9401, "hello there", 90_001)

        async def answered() -> list[dict[str, Any]] | None:
            found = base.box.telegram.messages(OTHER_TOKEN, 9401)
            return found or None

        (reply,) = await eventually(answered, timeout=30, message="other's flow answered")
        assert reply["text"] == "hi from other"
        # demo's calls are all still waiting: none ended (answered or timed out), and only
        # its share of them was ever at the receiver at once
        assert [base.texts(chat) for chat in demo_chats] == [[]] * len(demo_chats)
        assert len(seen) == 1
        release.set()

        async def all_done() -> list[list[str]] | None:
            texts = [base.texts(chat) for chat in demo_chats]
            return texts if all(texts) else None

        assert await eventually(all_done, timeout=120) == [["done"]] * len(demo_chats)
        assert len({call["headers"]["webhook-id"] for call in seen}) == len(demo_chats)
